// Package googletest is a fake Google for tests: an httptest JWKS server with its own RSA
// keys, and ID tokens signed by them with any claim changed.
package googletest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Google is the fake. Safe for concurrent use.
type Google struct {
	URL      string // the JWKS URL
	ClientID string

	mu      sync.Mutex
	keys    []*key // published; the last one signs
	fetches atomic.Int64
	failing atomic.Bool
	// CacheControl is sent with the JWKS (default "public, max-age=3600").
	cacheControl string
}

type key struct {
	kid  string
	priv *rsa.PrivateKey
}

// New starts a fake with one key; it stops at cleanup.
func New(t testing.TB) *Google {
	t.Helper()
	g := &Google{ClientID: "client-" + uuid.NewString() + ".apps.googleusercontent.com", cacheControl: "public, max-age=3600"}
	g.keys = []*key{newKey(t)}
	srv := httptest.NewServer(http.HandlerFunc(g.serveJWKS))
	t.Cleanup(srv.Close)
	g.URL = srv.URL + "/oauth2/v3/certs"
	return g
}

func newKey(t testing.TB) *key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &key{kid: uuid.NewString(), priv: priv}
}

// SetCacheControl changes the Cache-Control header of later JWKS answers.
func (g *Google) SetCacheControl(v string) { g.mu.Lock(); g.cacheControl = v; g.mu.Unlock() }

// SetFailing makes the JWKS endpoint answer 503 (or work again).
func (g *Google) SetFailing(f bool) { g.failing.Store(f) }

// Fetches counts JWKS requests served.
func (g *Google) Fetches() int64 { return g.fetches.Load() }

// Rotate publishes a new signing key and drops the old ones, as Google does.
func (g *Google) Rotate(t testing.TB) {
	k := newKey(t)
	g.mu.Lock()
	g.keys = []*key{k}
	g.mu.Unlock()
}

func (g *Google) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	g.fetches.Add(1)
	if g.failing.Load() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	g.mu.Lock()
	type jwk struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	for _, k := range g.keys {
		set.Keys = append(set.Keys, jwk{
			Kty: "RSA", Use: "sig", Alg: "RS256", Kid: k.kid,
			N: base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
		})
	}
	cc := g.cacheControl
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cc)
	_ = json.NewEncoder(w).Encode(set)
}

// Person is who a token is for.
type Person struct {
	Sub, Email, Name, Picture string
}

// NewPerson is a unique verified person.
func NewPerson() Person {
	id := uuid.NewString()
	return Person{Sub: "g-" + id, Email: "user-" + id + "@example.com", Name: "Test User", Picture: "https://example.com/a.png"}
}

// Token is a valid ID token for p at now; edit changes claims or the header before signing.
func (g *Google) Token(t testing.TB, p Person, now time.Time, edit ...func(claims jwt.MapClaims, header map[string]any)) string {
	t.Helper()
	claims := jwt.MapClaims{
		"iss":            "https://accounts.google.com",
		"azp":            g.ClientID,
		"aud":            g.ClientID,
		"sub":            p.Sub,
		"email":          p.Email,
		"email_verified": true,
		"name":           p.Name,
		"picture":        p.Picture,
		"iat":            now.Unix(),
		"exp":            now.Add(time.Hour).Unix(),
	}
	g.mu.Lock()
	k := g.keys[len(g.keys)-1]
	g.mu.Unlock()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = k.kid
	for _, e := range edit {
		if e != nil {
			e(claims, tok.Header)
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ForeignToken is signed by a key Google does not publish, under a published kid.
func (g *Google) ForeignToken(t testing.TB, p Person, now time.Time) string {
	t.Helper()
	other := newKey(t)
	g.mu.Lock()
	kid := g.keys[len(g.keys)-1].kid
	g.mu.Unlock()
	claims := jwt.MapClaims{
		"iss": "accounts.google.com", "aud": g.ClientID, "sub": p.Sub, "email": p.Email,
		"email_verified": true, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(other.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// HS256Token is signed with HMAC (an algorithm Google never uses) under a published kid.
func (g *Google) HS256Token(t testing.TB, p Person, now time.Time) string {
	t.Helper()
	g.mu.Lock()
	kid := g.keys[len(g.keys)-1].kid
	g.mu.Unlock()
	claims := jwt.MapClaims{
		"iss": "accounts.google.com", "aud": g.ClientID, "sub": p.Sub, "email": p.Email,
		"email_verified": true, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
