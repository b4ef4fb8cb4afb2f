package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
	"github.com/perpetua-flow/backend/services/auth/internal/google/googletest"
	"github.com/perpetua-flow/backend/services/auth/internal/purge"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestDefaults checks a service with the default configuration: ops routes, the JWKS,
// no dev login, and a Google ID token refused as an access token.
func TestDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	t.Run("ops routes", func(t *testing.T) {
		for _, p := range []string{"/health/live", "/health/ready", "/metrics"} {
			if r := b.do("GET", p, "", nil); r.status != http.StatusOK {
				t.Errorf("%s: %d %s", p, r.status, r.body)
			}
		}
		r := b.do("GET", "/api/v1/nothing-here", "", nil)
		if r.status != http.StatusNotFound || r.errorCode() != "NOT_FOUND" || r.header.Get("X-Request-ID") == "" ||
			r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("unknown route: %d %s %v", r.status, r.body, r.header)
		}
	})
	t.Run("JWKS published and cacheable", func(t *testing.T) {
		for _, p := range []string{"/.well-known/jwks.json", "/api/v1/.well-known/jwks.json"} {
			r := b.do("GET", p, "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d", p, r.status)
			}
			if cc := r.header.Get("Cache-Control"); cc != "public, max-age=300" {
				t.Errorf("%s Cache-Control %q", p, cc)
			}
			var set authn.JWKS
			r.json(t, &set)
			if len(set.Keys) != 1 {
				t.Fatalf("%d keys", len(set.Keys))
			}
			k := set.Keys[0]
			if k.Kty != "RSA" || k.Use != "sig" || k.Alg != "RS256" || k.Kid == "" || k.N == "" || k.E == "" {
				t.Fatalf("key %+v", k)
			}
		}
	})
	t.Run("purge job runs on River at start", func(t *testing.T) {
		eventually(t, "a completed auth.purge job", func() bool {
			var n int
			if err := b.pool.QueryRow(context.Background(),
				`SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'`, purge.Kind).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n > 0
		})
	})
	t.Run("dev login absent", func(t *testing.T) {
		r := b.do("POST", "/api/v1/auth/dev/login", "", map[string]string{"email": newEmail(), "name": "x"})
		if r.status != http.StatusNotFound || r.errorCode() != "NOT_FOUND" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("Google ID token is not an access token", func(t *testing.T) {
		idToken := b.google.Token(t, googletest.NewPerson(), b.clock.Now())
		r := b.do("GET", "/api/v1/users/me", idToken, nil)
		if r.status != http.StatusUnauthorized || r.errorCode() != "INVALID_TOKEN" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestConfigRequiresSigningKeys(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1/x", "NATS_URL": "nats://127.0.0.1:1"}
	_, err := ReadConfig(func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "AUTH_SIGNING_KEYS") {
		t.Fatalf("got %v", err)
	}
	env["AUTH_SIGNING_KEYS"] = "/k.pem"
	c, err := ReadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Base.HTTPAddr != DefaultHTTPAddr || c.Issuer != "perpetua-auth" || c.Audience != "perpetua-api" ||
		c.DevLogin || c.GoogleJWKSURL != "https://www.googleapis.com/oauth2/v3/certs" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestMigrateSubcommand(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, "auth-empty", func(context.Context, string) error { return nil })
	env := map[string]string{"DATABASE_URL": dbURL, "NATS_URL": "nats://127.0.0.1:1"}
	for range 2 { // a second run finds nothing to do
		if err := Migrate(context.Background(), func(k string) string { return env[k] }, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := pg.Open(context.Background(), pg.Config{URL: dbURL, Schema: store.Schema})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, table := range []string{"users", "sessions", "refresh_tokens", "outbox", "inbox", "river_job"} {
		var ok bool
		if err := pool.QueryRow(context.Background(), `SELECT to_regclass('auth.' || $1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
			t.Errorf("table auth.%s missing (%v)", table, err)
		}
	}
}

// TestSigningKeyRotation: tokens signed by the old key keep verifying (through a verifier
// on the service's JWKS, as every other service does) while both keys are configured, and
// stop once the old key is removed; the new key signs as soon as it is added, and a
// verifier that cached the old JWKS picks it up through its unknown-kid refetch.
func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldPath, newPath := dir+"/old.pem", dir+"/new.pem"
	if err := authn.GenerateKeyFile(oldPath); err != nil {
		t.Fatal(err)
	}
	if err := authn.GenerateKeyFile(newPath); err != nil {
		t.Fatal(err)
	}
	b := setup(t, withDevLogin, func(o *options) { o.keys = []string{oldPath} })
	// One verifier for the whole test, reaching whichever instance is running.
	v := authn.NewVerifier(authn.VerifierConfig{
		JWKSURL:    "http://auth/.well-known/jwks.json",
		HTTPClient: &http.Client{Transport: followTransport{b}},
		Clock:      b.clock,
	})
	ctx := context.Background()
	email := newEmail()
	oldToken := b.devLogin(email).AccessToken
	if _, err := v.Verify(ctx, oldToken); err != nil {
		t.Fatalf("old token, old key: %v", err)
	}

	// Add the new key: it signs, both verify.
	b.stop()
	b.env["AUTH_SIGNING_KEYS"] = oldPath + "," + newPath
	b.start()
	newToken := b.devLogin(email).AccessToken
	if kid(t, newToken) == kid(t, oldToken) {
		t.Fatal("the new key does not sign")
	}
	// The verifier fetched the JWKS moments ago; its unknown-kid refetch is rate limited.
	b.clock.Advance(authn.DefaultMinRefetchInterval + time.Second)
	for name, tok := range map[string]string{"old": oldToken, "new": newToken} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("%s token with both keys: %v", name, err)
		}
	}

	// Remove the old key: once verifiers' caches expire, old tokens fail, new ones verify.
	b.stop()
	b.env["AUTH_SIGNING_KEYS"] = newPath
	b.start()
	b.clock.Advance(6 * time.Minute) // past the JWKS max-age (5 min), within the tokens' 15
	if _, err := v.Verify(ctx, newToken); err != nil {
		t.Fatalf("new token after removal: %v", err)
	}
	if _, err := v.Verify(ctx, oldToken); apperr.CodeOf(err) != apperr.InvalidToken {
		t.Fatalf("old token after removal: got %v, want INVALID_TOKEN", err)
	}
}

// followTransport sends every request to the bundle's current instance.
type followTransport struct{ b *bundle }

func (f followTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme = "http"
	r.URL.Host = strings.TrimPrefix(f.b.url, "http://")
	r.Host = r.URL.Host
	return http.DefaultTransport.RoundTrip(r)
}

func kid(t *testing.T, raw string) string {
	t.Helper()
	h := decodeSegment(t, raw, 0)
	k, _ := h["kid"].(string)
	return k
}

func decodeSegment(t *testing.T, raw string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64URL(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
