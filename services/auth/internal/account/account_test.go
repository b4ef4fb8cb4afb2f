package account

import (
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"
)

func TestRotationError(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	past := now.Add(-time.Minute)
	tests := []struct {
		name string
		tok  RefreshToken
		s    Session
		want apperr.Code
	}{
		{"fresh", RefreshToken{ExpiresAt: now.Add(time.Hour)}, Session{}, ""},
		{"used", RefreshToken{ExpiresAt: now.Add(time.Hour), UsedAt: &past}, Session{}, apperr.RefreshTokenReused},
		{"expired", RefreshToken{ExpiresAt: now}, Session{}, apperr.InvalidRefreshToken},
		{"revoked session", RefreshToken{ExpiresAt: now.Add(time.Hour)}, Session{RevokedAt: &past}, apperr.InvalidRefreshToken},
		{"used in revoked session", RefreshToken{ExpiresAt: now.Add(time.Hour), UsedAt: &past}, Session{RevokedAt: &past}, apperr.RefreshTokenReused},
		{"used and expired", RefreshToken{ExpiresAt: now, UsedAt: &past}, Session{}, apperr.InvalidRefreshToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := RotationError(tt.tok, tt.s, now)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if got := apperr.CodeOf(err); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRefreshTokenShape(t *testing.T) {
	t.Parallel()
	raw, hash, err := NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}
	if !WellFormedRefreshToken(raw) || len(hash) != 32 || string(HashRefreshToken(raw)) != string(hash) {
		t.Fatalf("token %q hash %x", raw, hash)
	}
	raw2, _, _ := NewRefreshToken()
	if raw == raw2 {
		t.Fatal("two tokens are equal")
	}
	for _, bad := range []string{"", "abc", raw + "A", strings.Repeat("!", 43)} {
		if WellFormedRefreshToken(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestProfileChangeValidate(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	tests := []struct {
		name   string
		change ProfileChange
		fields []string
	}{
		{"empty change", ProfileChange{}, nil},
		{"name ok", ProfileChange{Name: s("Ada")}, nil},
		{"name 100", ProfileChange{Name: s(strings.Repeat("é", 100))}, nil},
		{"name empty", ProfileChange{Name: s("")}, []string{"name"}},
		{"name blank", ProfileChange{Name: s("   ")}, []string{"name"}},
		{"name 101", ProfileChange{Name: s(strings.Repeat("a", 101))}, []string{"name"}},
		{"tz ok", ProfileChange{Timezone: s("Europe/Berlin")}, nil},
		{"tz bad", ProfileChange{Timezone: s("Mars/Olympus")}, []string{"timezone"}},
		{"tz local", ProfileChange{Timezone: s("Local")}, []string{"timezone"}},
		{"tz path", ProfileChange{Timezone: s("../../etc/passwd")}, []string{"timezone"}},
		{"both bad", ProfileChange{Name: s(""), Timezone: s("")}, []string{"name", "timezone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.change.Validate(time.LoadLocation)
			var got []string
			if e, ok := apperr.As(err); ok {
				for _, d := range e.Details {
					got = append(got, d.Field)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("fields %v, want %v", got, tt.fields)
			}
		})
	}
}

func TestProfileName(t *testing.T) {
	t.Parallel()
	if got := ProfileName(Identity{Email: "ada@example.com"}); got != "ada" {
		t.Fatalf("got %q", got)
	}
	if got := ProfileName(Identity{Name: strings.Repeat("x", 150)}); len(got) != NameMaxLen {
		t.Fatalf("len %d", len(got))
	}
}

func TestValidateDevLogin(t *testing.T) {
	t.Parallel()
	if err := ValidateDevLogin("ada@example.com", "Ada"); err != nil {
		t.Fatal(err)
	}
	err := ValidateDevLogin("not-an-email", strings.Repeat("x", 101))
	if e, ok := apperr.As(err); !ok || len(e.Details) != 2 {
		t.Fatalf("got %v", err)
	}
}
