package main

import (
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/config"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/services/auth/internal/google"
)

// Name is the service's name and its Postgres schema.
const Name = "auth"

// DefaultHTTPAddr is auth's address when HTTP_ADDR is unset.
const DefaultHTTPAddr = "127.0.0.1:8081"

// Config is everything auth reads from the environment (API.md §8).
type Config struct {
	// Base: HTTP_ADDR (default 127.0.0.1:8081), LOG_LEVEL, DATABASE_URL, NATS_URL, … (svc.ReadBase).
	Base svc.Base
	// SigningKeys is AUTH_SIGNING_KEYS (required): comma-separated PEM files or
	// directories of *.pem; the newest key (last listed; in a directory, the most recently
	// modified) signs, all are published.
	SigningKeys []string
	// Issuer is AUTH_ISSUER (default perpetua-auth), the iss of our tokens.
	Issuer string
	// Audience is AUTH_AUDIENCE (default perpetua-api), the aud of our tokens.
	Audience string
	// GoogleClientIDs is GOOGLE_CLIENT_IDS: the accepted aud of Google ID tokens. When
	// empty, Google sign-in answers GOOGLE_AUTH_FAILED (a dev-only stack needs none).
	GoogleClientIDs []string
	// GoogleJWKSURL is GOOGLE_JWKS_URL (default Google's certs URL); tests point it at a fake.
	GoogleJWKSURL string
	// DevLogin is AUTH_DEV_LOGIN (default false): mounts POST /api/v1/auth/dev/login.
	// Never set it in production.
	DevLogin bool
}

// ReadConfig reads and validates the environment, reporting every problem at once.
func ReadConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Base:            svc.ReadBase(r, Name, DefaultHTTPAddr),
		SigningKeys:     r.List("AUTH_SIGNING_KEYS", nil),
		Issuer:          r.String("AUTH_ISSUER", authn.DefaultIssuer),
		Audience:        r.String("AUTH_AUDIENCE", authn.DefaultAudience),
		GoogleClientIDs: r.List("GOOGLE_CLIENT_IDS", nil),
		GoogleJWKSURL:   r.String("GOOGLE_JWKS_URL", google.DefaultJWKSURL),
		DevLogin:        r.Bool("AUTH_DEV_LOGIN", false),
	}
	r.Check(len(c.SigningKeys) > 0, "AUTH_SIGNING_KEYS is required (PEM files or directories, comma-separated)")
	return c, r.Err()
}
