// Package fakes holds the stand-ins for external providers that the end-to-end suite
// points the services at through their base-URL settings; each speaks the provider's real
// wire format.
package fakes

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// GoogleClientID is the audience the fake's tokens carry; give it to GOOGLE_CLIENT_IDS.
const GoogleClientID = "perpetua-e2e.apps.googleusercontent.com"

// Google serves a JWKS like https://www.googleapis.com/oauth2/v3/certs and signs ID tokens.
type Google struct {
	JWKSURL string
	key     *rsa.PrivateKey
	kid     string
}

// NewGoogle starts the fake for the test.
func NewGoogle(t testing.TB) *Google {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	g := &Google{key: key, kid: "google-e2e-1"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": g.kid,
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(srv.Close)
	g.JWKSURL = srv.URL
	return g
}

// IDToken is a Google ID token for a verified email.
func (g *Google) IDToken(t testing.TB, sub, email string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://accounts.google.com", "aud": GoogleClientID, "sub": sub, "email": email,
		"email_verified": true, "name": "Google User", "picture": "https://example.com/a.png",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = g.kid
	s, err := tok.SignedString(g.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
