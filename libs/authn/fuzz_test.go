package authn_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
)

// FuzzVerify feeds garbage and mangled tokens to Verify: it never panics, every refusal
// is INVALID_TOKEN or TOKEN_EXPIRED (a 401, never a 500 or 503 while the keys are
// reachable), and whatever it accepts carries exactly the claims we signed — the fuzzer
// cannot make a token with other claims verify.
func FuzzVerify(f *testing.F) {
	iss := authntest.NewIssuer(f)
	v := iss.Verifier()
	user := uuid.NewString()
	valid := iss.TokenWith(f, authn.Claims{UserID: user, SessionID: "s-1", Email: "fuzz@example.test", Tier: authn.TierPro}, time.Hour)
	expired := iss.TokenWith(f, authn.Claims{UserID: user, Tier: authn.TierFree}, -time.Minute)
	parts := strings.Split(valid, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		valid, expired, "", ".", "..", "a.b.c", "a.b", strings.Repeat("A", 9000),
		parts[0] + "." + parts[1] + ".",                                                        // no signature
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])/2],                           // truncated signature
		b64([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".",                    // alg none
		b64([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"x"}`)) + "." + parts[1] + ".sig",      // HS256
		b64([]byte(`{"alg":"RS256","typ":"JWT","kid":"x"}`)) + "." + parts[1] + "." + parts[2], // wrong typ
		b64([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"unknown"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"x","crit":["exp"]}`)) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + b64([]byte(`{"sub":"`+uuid.NewString()+`","tier":"pro"}`)) + "." + parts[2], // edited claims
		parts[0] + "." + parts[1] + "." + parts[2] + "=",
		valid + ".extra",
	} {
		f.Add(s)
	}
	want, err := v.Verify(context.Background(), valid)
	if err != nil {
		f.Fatalf("the valid seed does not verify: %v", err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := v.Verify(context.Background(), raw)
		if err != nil {
			switch code := apperr.CodeOf(err); code {
			case apperr.InvalidToken, apperr.TokenExpired:
			default:
				t.Fatalf("Verify(%q): code %s (%v), want INVALID_TOKEN or TOKEN_EXPIRED", raw, code, err)
			}
			return
		}
		if got != want {
			t.Fatalf("Verify(%q) accepted claims we never signed: %+v", raw, got)
		}
	})
}

// FuzzMiddlewareHeader: whatever the Authorization header holds, the middleware answers
// 401 or lets the request through with the claims — never a panic or a 5xx.
func FuzzMiddlewareHeader(f *testing.F) {
	iss := authntest.NewIssuer(f)
	h := authn.Middleware(iss.Verifier())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := authn.FromContext(r.Context()); !ok {
			w.WriteHeader(http.StatusTeapot) // through without claims: the test fails below
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, s := range []string{
		iss.Bearer(f, "", authn.TierFree), "Bearer", "Bearer ", "bearer x", "Basic dXNlcjpwYXNz", "Bearer a.b.c",
		"Bearer  " + iss.Token(f, "", authn.TierFree), "Token x", strings.Repeat("Bearer ", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/tasks", nil)
		req.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusNoContent {
			t.Fatalf("Authorization %q: status %d %s", header, rec.Code, rec.Body)
		}
	})
}
