package authn

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// wireClaims is the JSON payload of an access token.
type wireClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
	Email     string `json:"email"`
	Tier      string `json:"tier"`
}

// Signer issues access tokens with the newest of its keys and publishes all of them.
type Signer struct {
	key      *rsa.PrivateKey
	kid      string
	issuer   string
	audience string
	jwks     JWKS
	jwksJSON []byte
}

// NewSigner signs with the last key of keys (the newest) and publishes every key, so
// tokens signed by an older key keep verifying until that key is removed.
func NewSigner(keys []*rsa.PrivateKey, issuer, audience string) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("authn: NewSigner: no keys")
	}
	if issuer == "" || audience == "" {
		return nil, errors.New("authn: NewSigner: issuer and audience are required")
	}
	s := &Signer{issuer: issuer, audience: audience, jwks: JWKS{Keys: make([]JWK, 0, len(keys))}}
	seen := map[string]bool{}
	for i, k := range keys {
		if k == nil {
			return nil, fmt.Errorf("authn: NewSigner: key %d is nil", i)
		}
		if err := checkKeySize(&k.PublicKey); err != nil {
			return nil, fmt.Errorf("authn: NewSigner: key %d: %w", i, err)
		}
		jwk := PublicJWK(&k.PublicKey)
		if !seen[jwk.Kid] {
			seen[jwk.Kid] = true
			s.jwks.Keys = append(s.jwks.Keys, jwk)
		}
	}
	s.key = keys[len(keys)-1]
	s.kid = KeyID(&s.key.PublicKey)
	body, err := json.Marshal(s.jwks)
	if err != nil {
		return nil, fmt.Errorf("authn: NewSigner: %w", err)
	}
	s.jwksJSON = append(body, '\n')
	return s, nil
}

// KeyID is the kid of the key that signs.
func (s *Signer) KeyID() string { return s.kid }

// Issuer and Audience are the iss and aud of every token s signs.
func (s *Signer) Issuer() string   { return s.issuer }
func (s *Signer) Audience() string { return s.audience }

// Sign issues a token for c valid for ttl (AccessTokenTTL in production). IssuedAt
// defaults to now and TokenID to a new UUID; ExpiresAt is always IssuedAt + ttl (times
// are whole seconds on the wire). UserID must be a UUID, SessionID set, Tier valid: a
// token that Verify would refuse is never signed.
func (s *Signer) Sign(c Claims, ttl time.Duration) (string, error) {
	if !validUUID(c.UserID) {
		return "", fmt.Errorf("authn: Sign: user id %q is not a UUID", c.UserID)
	}
	if c.SessionID == "" {
		return "", errors.New("authn: Sign: session id is required")
	}
	if !ValidTier(c.Tier) {
		return "", fmt.Errorf("authn: Sign: tier %q is not %s or %s", c.Tier, TierFree, TierPro)
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.TokenID == "" {
		c.TokenID = uuid.NewString()
	}
	wc := wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   c.UserID,
			Audience:  jwt.ClaimStrings{s.audience},
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.IssuedAt.Add(ttl)),
			ID:        c.TokenID,
		},
		SessionID: c.SessionID,
		Email:     c.Email,
		Tier:      c.Tier,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, wc)
	t.Header["typ"] = TokenType
	t.Header["kid"] = s.kid
	raw, err := t.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("authn: Sign: %w", err)
	}
	return raw, nil
}

// JWKS is the public key set to publish, oldest key first.
func (s *Signer) JWKS() JWKS {
	out := JWKS{Keys: make([]JWK, len(s.jwks.Keys))}
	copy(out.Keys, s.jwks.Keys)
	return out
}

// JWKSHandler serves JWKS() with Cache-Control max-age, which verifiers honour: keep it
// well below the rotation grace period (a few minutes is usual).
func (s *Signer) JWKSHandler(maxAge time.Duration) http.Handler {
	body := s.jwksJSON
	cacheControl := "public, max-age=" + strconv.Itoa(int(maxAge/time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", cacheControl)
		_, _ = w.Write(body)
	})
}
