package google_test

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/services/auth/internal/google"
	"github.com/perpetua-flow/backend/services/auth/internal/google/googletest"
)

type bundle struct {
	g     *googletest.Google
	clock *clock.Fake
	v     *google.Verifier
}

func setup(t *testing.T) bundle {
	t.Helper()
	g := googletest.New(t)
	clk := clock.NewFake(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	v, err := google.New(google.Config{JWKSURL: g.URL, ClientIDs: []string{"other-client", g.ClientID}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return bundle{g: g, clock: clk, v: v}
}

func TestVerifyValid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := googletest.NewPerson()
	for _, iss := range google.Issuers {
		raw := b.g.Token(t, p, b.clock.Now(), func(c jwt.MapClaims, _ map[string]any) { c["iss"] = iss })
		id, err := b.v.Verify(context.Background(), raw)
		if err != nil {
			t.Fatalf("iss %s: %v", iss, err)
		}
		if id.GoogleID != p.Sub || id.Email != p.Email || id.Name != p.Name || id.AvatarURL != p.Picture {
			t.Fatalf("identity %+v", id)
		}
	}
	// email_verified as the string "true" (older tokens) is accepted too.
	raw := b.g.Token(t, p, b.clock.Now(), func(c jwt.MapClaims, _ map[string]any) { c["email_verified"] = "true" })
	if _, err := b.v.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	if n := b.g.Fetches(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (cached)", n)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.clock.Now()
	p := googletest.NewPerson()
	edit := func(f func(jwt.MapClaims, map[string]any)) string { return b.g.Token(t, p, now, f) }
	tests := []struct {
		name string
		raw  string
	}{
		{"wrong iss", edit(func(c jwt.MapClaims, _ map[string]any) { c["iss"] = "https://evil.example.com" })},
		{"no iss", edit(func(c jwt.MapClaims, _ map[string]any) { delete(c, "iss") })},
		{"wrong aud", edit(func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "someone-else" })},
		{"expired beyond leeway", edit(func(c jwt.MapClaims, _ map[string]any) { c["exp"] = now.Add(-61 * time.Second).Unix() })},
		{"no exp", edit(func(c jwt.MapClaims, _ map[string]any) { delete(c, "exp") })},
		{"iat in the future beyond leeway", edit(func(c jwt.MapClaims, _ map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() })},
		{"email not verified", edit(func(c jwt.MapClaims, _ map[string]any) { c["email_verified"] = false })},
		{"email_verified missing", edit(func(c jwt.MapClaims, _ map[string]any) { delete(c, "email_verified") })},
		{"no email", edit(func(c jwt.MapClaims, _ map[string]any) { delete(c, "email") })},
		{"unknown kid", edit(func(_ jwt.MapClaims, h map[string]any) { h["kid"] = "nobody" })},
		{"no kid", edit(func(_ jwt.MapClaims, h map[string]any) { delete(h, "kid") })},
		{"signed by another key", b.g.ForeignToken(t, p, now)},
		{"HS256", b.g.HS256Token(t, p, now)},
		{"alg none", noneToken(p, now, b.g.ClientID)},
		{"tampered payload", tamper(edit(nil))},
		{"truncated signature", func() string { s := edit(nil); return s[:len(s)-10] }()},
		{"garbage", "not.a.jwt"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.v.Verify(context.Background(), tt.raw)
			e, ok := apperr.As(err)
			if !ok || e.Code != apperr.GoogleAuthFailed {
				t.Fatalf("got %v, want GOOGLE_AUTH_FAILED", err)
			}
			t.Logf("reason: %v", e.Err)
			if e.Err == nil {
				t.Fatal("the reason must be kept for the log")
			}
			if strings.Contains(e.Message, e.Err.Error()) {
				t.Fatal("the reason must not be in the client message")
			}
		})
	}
}

func TestVerifyLeewayAccepts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.clock.Now()
	raw := b.g.Token(t, googletest.NewPerson(), now, func(c jwt.MapClaims, _ map[string]any) {
		c["exp"] = now.Add(-30 * time.Second).Unix()
		c["iat"] = now.Add(30 * time.Second).Unix()
	})
	if _, err := b.v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
}

func TestRotatedKeyPickedUpByRefetch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := googletest.NewPerson()
	if _, err := b.v.Verify(context.Background(), b.g.Token(t, p, b.clock.Now())); err != nil {
		t.Fatal(err)
	}
	b.g.Rotate(t)
	// Within the refetch interval an unknown kid does not cause a second fetch.
	raw := b.g.Token(t, p, b.clock.Now())
	if _, err := b.v.Verify(context.Background(), raw); apperr.CodeOf(err) != apperr.GoogleAuthFailed {
		t.Fatalf("rate-limited refetch: got %v", err)
	}
	if n := b.g.Fetches(); n != 1 {
		t.Fatalf("fetches %d, want 1", n)
	}
	// Later (the cache itself still fresh for an hour) the unknown kid triggers one refetch.
	b.clock.Advance(google.DefaultRefetchInterval + time.Second)
	raw = b.g.Token(t, p, b.clock.Now())
	if _, err := b.v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := b.g.Fetches(); n != 2 {
		t.Fatalf("fetches %d, want 2", n)
	}
	// A flood of unknown kids right after does not refetch.
	for range 5 {
		forged := b.g.Token(t, p, b.clock.Now(), func(_ jwt.MapClaims, h map[string]any) { h["kid"] = "forged" })
		if _, err := b.v.Verify(context.Background(), forged); err == nil {
			t.Fatal("forged kid accepted")
		}
	}
	if n := b.g.Fetches(); n != 2 {
		t.Fatalf("fetches %d after forged kids, want 2", n)
	}
}

func TestCacheFollowsCacheControl(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.g.SetCacheControl("public, max-age=120")
	p := googletest.NewPerson()
	verify := func() {
		t.Helper()
		if _, err := b.v.Verify(context.Background(), b.g.Token(t, p, b.clock.Now())); err != nil {
			t.Fatal(err)
		}
	}
	verify()
	b.clock.Advance(100 * time.Second)
	verify()
	if n := b.g.Fetches(); n != 1 {
		t.Fatalf("fetches %d, want 1 within max-age", n)
	}
	b.clock.Advance(30 * time.Second)
	verify()
	if n := b.g.Fetches(); n != 2 {
		t.Fatalf("fetches %d, want 2 after max-age", n)
	}
}

func TestGoogleOutageKeepsTheCachedKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.g.SetCacheControl("max-age=60")
	p := googletest.NewPerson()
	if _, err := b.v.Verify(context.Background(), b.g.Token(t, p, b.clock.Now())); err != nil {
		t.Fatal(err)
	}
	b.g.SetFailing(true)
	b.clock.Advance(2 * time.Minute)
	if _, err := b.v.Verify(context.Background(), b.g.Token(t, p, b.clock.Now())); err != nil {
		t.Fatalf("during the outage: %v", err)
	}
	// The failed fetch is not retried on every request.
	fetches := b.g.Fetches()
	for range 3 {
		if _, err := b.v.Verify(context.Background(), b.g.Token(t, p, b.clock.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if b.g.Fetches() != fetches {
		t.Fatalf("fetched %d more times during the outage", b.g.Fetches()-fetches)
	}
	// Without any cached keys an outage fails the sign-in.
	fresh := setup(t)
	fresh.g.SetFailing(true)
	if _, err := fresh.v.Verify(context.Background(), fresh.g.Token(t, p, fresh.clock.Now())); apperr.CodeOf(err) != apperr.GoogleAuthFailed {
		t.Fatalf("no keys at all: %v", err)
	}
}

func TestCacheAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cc   string
		want time.Duration
	}{
		{"public, max-age=19845, must-revalidate, no-transform", 19845 * time.Second},
		{"", google.DefaultCacheAge},
		{"no-store", 0},
		{"max-age=999999", google.MaxCacheAge},
		{"max-age=junk", google.DefaultCacheAge},
	}
	for _, tt := range tests {
		if got := google.CacheAge(tt.cc); got != tt.want {
			t.Errorf("CacheAge(%q) = %v, want %v", tt.cc, got, tt.want)
		}
	}
}

func noneToken(p googletest.Person, now time.Time, aud string) string {
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"none","typ":"JWT"}`))
	payload := enc([]byte(`{"iss":"accounts.google.com","aud":"` + aud + `","sub":"` + p.Sub + `","email":"` + p.Email +
		`","email_verified":true,"iat":` + itoa(now.Unix()) + `,"exp":` + itoa(now.Add(time.Hour).Unix()) + `}`))
	return header + "." + payload + "."
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// tamper changes the payload of a signed token without re-signing it.
func tamper(raw string) string {
	parts := strings.Split(raw, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"email_verified":true`, `"email_verified":true,"x":1`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}
