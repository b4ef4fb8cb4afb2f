package e2e_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/e2e/fakes"
	"github.com/perpetua-flow/backend/e2e/stack"
)

// Google sign-in through the gateway, then the Google ID token itself presented as an
// access token: only our own tokens open the API.
func testGoogleSignIn(t *testing.T, s *stack.Stack, g *fakes.Google) {
	anon := s.NewClient().For(t)
	addr := email()
	idToken := g.IDToken(t, "google-"+uuid.NewString(), addr)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		User        struct {
			Email    string `json:"email"`
			GoogleID string `json:"google_id"`
		} `json:"user"`
	}
	anon.Must(200, "POST", "/api/v1/auth/google", map[string]string{"id_token": idToken}, nil).JSON(t, &tok)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || tok.User.Email != addr || tok.User.GoogleID == "" {
		t.Fatalf("sign-in answer = %+v", tok)
	}
	me := s.NewClient().For(t)
	me.Token = tok.AccessToken
	me.Must(200, "GET", "/api/v1/users/me", nil, nil)

	asAccess := s.NewClient().For(t)
	asAccess.Token = idToken
	if r := asAccess.Do("GET", "/api/v1/tasks", nil, nil); r.Status != 401 || r.ErrorCode() != "INVALID_TOKEN" {
		t.Fatalf("a Google ID token as an access token: %d %s", r.Status, r.Body)
	}
	if r := anon.Do("POST", "/api/v1/auth/google", map[string]string{"id_token": idToken + "x"}, nil); r.Status != 401 || r.ErrorCode() != "GOOGLE_AUTH_FAILED" {
		t.Fatalf("a tampered Google token: %d %s", r.Status, r.Body)
	}
}

// API.md §10.9: the JWT attack list against the gateway, each 401.
func testJWTAttacks(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	parts := strings.Split(u.Token, ".")
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	enc := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	none := enc([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	edited := parts[0] + "." + enc([]byte(strings.Replace(string(payload), `"tier":"free"`, `"tier":"pro"`, 1))) + "." + parts[2]
	unknownKid := enc([]byte(strings.Replace(string(header), `"kid":"`, `"kid":"x`, 1))) + "." + parts[1] + "." + parts[2]
	hs256 := enc([]byte(`{"alg":"HS256","typ":"at+jwt"}`)) + "." + parts[1] + "." + parts[2]
	cases := map[string]struct{ token, code string }{
		"missing":             {"", "UNAUTHORIZED"},
		"alg none":            {none, "INVALID_TOKEN"},
		"HS256":               {hs256, "INVALID_TOKEN"},
		"edited claims":       {edited, "INVALID_TOKEN"},
		"unknown kid":         {unknownKid, "INVALID_TOKEN"},
		"truncated signature": {u.Token[:len(u.Token)-10], "INVALID_TOKEN"},
		"garbage":             {"not.a.jwt", "INVALID_TOKEN"},
	}
	for name, c := range cases {
		cl := s.NewClient().For(t)
		cl.Token = c.token
		r := cl.Do("GET", "/api/v1/tasks", nil, nil)
		if r.Status != 401 || r.ErrorCode() != c.code {
			t.Errorf("%s: %d %s, want 401 %s", name, r.Status, r.Body, c.code)
		}
	}
	u.Must(200, "GET", "/api/v1/tasks", nil, nil)
}
