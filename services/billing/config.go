package main

import (
	"net/url"

	"github.com/perpetua-flow/backend/libs/config"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/services/billing/migrations"
)

// DefaultHTTPAddr is billing's port in the local stack.
const DefaultHTTPAddr = "127.0.0.1:8084"

// Config is billing's whole configuration, read from the environment at start.
type Config struct {
	// Base: HTTP_ADDR (default 127.0.0.1:8084), LOG_LEVEL, DATABASE_URL, NATS_URL, … (svc.ReadBase).
	Base svc.Base
	// CheckoutBaseURL is CHECKOUT_BASE_URL, Checkout.com's API (https://api.checkout.com,
	// https://api.sandbox.checkout.com, or a fake in tests). Unset: payments are simulated
	// when BILLING_SIMULATE_PAYMENTS is true, else checkout answers 503.
	CheckoutBaseURL string
	// CheckoutSecretKey is CHECKOUT_SECRET_KEY, sent as the Bearer token; required with
	// CHECKOUT_BASE_URL.
	CheckoutSecretKey string
	// WebhookSecrets is CHECKOUT_WEBHOOK_SECRETS (comma-separated): a webhook signed with
	// any of them is accepted, so a secret can be rotated without downtime.
	WebhookSecrets []string
	// SimulatePayments is BILLING_SIMULATE_PAYMENTS (default false; the local stack sets
	// true): a hosted payment is captured at once by a signed webhook billing sends to its
	// own handler. Never in production; refused together with CHECKOUT_BASE_URL.
	SimulatePayments bool
	// PublicBaseURL is PUBLIC_BASE_URL (default http://localhost:3000), the web app the
	// payment page returns to.
	PublicBaseURL string
	// JWKSURL, AuthIssuer, AuthAudience verify access tokens (JWKS_URL default
	// http://127.0.0.1:8081/.well-known/jwks.json, AUTH_ISSUER default perpetua-auth,
	// AUTH_AUDIENCE default perpetua-api).
	JWKSURL      string
	AuthIssuer   string
	AuthAudience string
}

// ReadConfig reads and validates the configuration; every problem is in the one error.
func ReadConfig(getenv config.Getenv) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Base:              svc.ReadBase(r, migrations.Schema, DefaultHTTPAddr),
		CheckoutBaseURL:   r.String("CHECKOUT_BASE_URL", ""),
		CheckoutSecretKey: r.String("CHECKOUT_SECRET_KEY", ""),
		WebhookSecrets:    r.List("CHECKOUT_WEBHOOK_SECRETS", nil),
		SimulatePayments:  r.Bool("BILLING_SIMULATE_PAYMENTS", false),
		PublicBaseURL:     r.String("PUBLIC_BASE_URL", "http://localhost:3000"),
		JWKSURL:           r.String("JWKS_URL", "http://127.0.0.1:8081/.well-known/jwks.json"),
		AuthIssuer:        r.String("AUTH_ISSUER", "perpetua-auth"),
		AuthAudience:      r.String("AUTH_AUDIENCE", "perpetua-api"),
	}
	r.Check(!(c.SimulatePayments && c.CheckoutBaseURL != ""),
		"BILLING_SIMULATE_PAYMENTS=true and CHECKOUT_BASE_URL cannot be set together: simulated payments never reach a provider")
	r.Check(c.CheckoutBaseURL == "" || c.CheckoutSecretKey != "", "CHECKOUT_SECRET_KEY is required with CHECKOUT_BASE_URL")
	r.Check(c.CheckoutBaseURL == "" || validURL(c.CheckoutBaseURL), "CHECKOUT_BASE_URL: %q is not an http(s) URL", c.CheckoutBaseURL)
	r.Check(validURL(c.PublicBaseURL), "PUBLIC_BASE_URL: %q is not an http(s) URL", c.PublicBaseURL)
	r.Check(validURL(c.JWKSURL), "JWKS_URL: %q is not an http(s) URL", c.JWKSURL)
	return c, r.Err()
}

func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
