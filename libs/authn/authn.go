// Package authn owns Perpetua Flow's access tokens (API.md §2): RS256 JWTs with
// typ "at+jwt", signed by the auth service with the newest of its keys and verified by
// every service (and the gateway) against auth's JWKS, which is cached by key id; a
// verified token is remembered for a short while (cache.go), so the RSA check is done
// once per token and process, not once per request.
//
// Signing lives in Signer (auth only); Verifier and Middleware are what the other
// services use; package authntest gives tests an issuer with a served JWKS.
package authn

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Tiers a token may carry.
const (
	TierFree = "free"
	TierPro  = "pro"
)

// AccessTokenTTL is the lifetime of an access token (API.md §2: exp = iat + 15 min).
const AccessTokenTTL = 15 * time.Minute

// Defaults every service reads when JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE are unset.
const (
	DefaultJWKSURL  = "http://127.0.0.1:8081/.well-known/jwks.json"
	DefaultIssuer   = "perpetua-auth"
	DefaultAudience = "perpetua-api"
)

// TokenType is the JOSE typ header of our access tokens (RFC 9068). It is what keeps a
// Google ID token (typ JWT) or any other RS256 JWT from passing as one of ours.
const TokenType = "at+jwt"

// MinKeyBits is the smallest RSA modulus we sign with or accept.
const MinKeyBits = 2048

// Claims are what an access token says about its bearer.
type Claims struct {
	// UserID is the sub claim, a UUID.
	UserID string
	// SessionID is the sid claim: the sign-in (refresh-token family) the token came from.
	SessionID string
	// TokenID is the jti claim, a UUID per token.
	TokenID string
	Email   string
	// Tier is TierFree or TierPro at the time of issue (it may lag by up to 15 min).
	Tier      string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// ValidTier reports whether t is one of the tiers above.
func ValidTier(t string) bool { return t == TierFree || t == TierPro }

// validUUID accepts only the canonical 36-character form, so one user has one spelling.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

type claimsKey struct{}

// WithClaims stores c in ctx (Middleware does this for every authenticated request).
func WithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext is the verified claims of the request, if Middleware ran.
func FromContext(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}
