// Package authntest gives tests a token issuer: a signing key, its JWKS served by an
// httptest server, and tokens any service's Verifier accepts. Point a service's
// JWKS_URL at Issuer.JWKSURL; issuer and audience are the production defaults.
package authntest

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/authn"
)

// JWKSMaxAge is the Cache-Control max-age of the served JWKS.
const JWKSMaxAge = 5 * time.Minute

// sharedKey is generated once per test binary: RSA key generation costs tens of
// milliseconds, and tests need distinct tokens, not distinct keys.
var sharedKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, authn.MinKeyBits)
})

// Key is the process-wide test key (for tests that build their own Signer).
func Key(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := sharedKey()
	if err != nil {
		t.Fatalf("authntest: generate key: %v", err)
	}
	return k
}

// Issuer signs tokens and serves their JWKS until the test ends.
type Issuer struct {
	// JWKSURL serves the public key set.
	JWKSURL string
	// Issuer and Audience are the iss and aud of the tokens (authn.DefaultIssuer and
	// authn.DefaultAudience).
	Issuer   string
	Audience string

	signer *authn.Signer
	once   sync.Once
	ver    *authn.Verifier
}

// NewIssuer starts an issuer whose JWKS server closes with the test.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	signer, err := authn.NewSigner([]*rsa.PrivateKey{Key(t)}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatalf("authntest: %v", err)
	}
	srv := httptest.NewServer(signer.JWKSHandler(JWKSMaxAge))
	t.Cleanup(srv.Close)
	return &Issuer{
		JWKSURL:  srv.URL + "/.well-known/jwks.json",
		Issuer:   authn.DefaultIssuer,
		Audience: authn.DefaultAudience,
		signer:   signer,
	}
}

// Token is a valid access token (15 min) for userID with tier, a new session and a made-up
// email. An empty userID gets a new UUID.
func (i *Issuer) Token(t testing.TB, userID, tier string) string {
	t.Helper()
	if userID == "" {
		userID = uuid.NewString()
	}
	return i.TokenWith(t, authn.Claims{UserID: userID, Tier: tier}, authn.AccessTokenTTL)
}

// TokenWith signs c for ttl; an empty SessionID, Email or Tier is filled in (a negative
// ttl makes an expired token).
func (i *Issuer) TokenWith(t testing.TB, c authn.Claims, ttl time.Duration) string {
	t.Helper()
	if c.SessionID == "" {
		c.SessionID = uuid.NewString()
	}
	if c.Email == "" {
		c.Email = "user-" + c.UserID + "@example.test"
	}
	if c.Tier == "" {
		c.Tier = authn.TierFree
	}
	raw, err := i.signer.Sign(c, ttl)
	if err != nil {
		t.Fatalf("authntest: %v", err)
	}
	return raw
}

// Bearer is the Authorization header value for a token of userID with tier.
func (i *Issuer) Bearer(t testing.TB, userID, tier string) string {
	t.Helper()
	return "Bearer " + i.Token(t, userID, tier)
}

// Verifier is a verifier of this issuer's tokens (one per Issuer).
func (i *Issuer) Verifier() *authn.Verifier {
	i.once.Do(func() {
		i.ver = authn.NewVerifier(authn.VerifierConfig{JWKSURL: i.JWKSURL, Issuer: i.Issuer, Audience: i.Audience})
	})
	return i.ver
}

// Signer is the issuer's signer.
func (i *Issuer) Signer() *authn.Signer { return i.signer }

// Env is the environment a service reads to trust this issuer, for run(ctx, getenv, …).
func (i *Issuer) Env() map[string]string {
	return map[string]string{"JWKS_URL": i.JWKSURL, "AUTH_ISSUER": i.Issuer, "AUTH_AUDIENCE": i.Audience}
}
