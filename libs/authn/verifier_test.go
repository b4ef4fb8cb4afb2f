package authn_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/clock"
)

// Second and third keys, made once per binary (RSA generation is slow).
var (
	keyB = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(2048) })
	keyC = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(2048) })
)

func mustKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

// jwksServer serves whatever JWKS and Cache-Control the test sets, and counts fetches.
type jwksServer struct {
	mu           sync.Mutex
	body         []byte
	cacheControl string
	status       int
	fetches      atomic.Int64
	url          string
}

func newJWKSServer(t *testing.T, set authn.JWKS) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK, cacheControl: "max-age=300"}
	s.setKeys(t, set)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, cc, status := s.body, s.cacheControl, s.status
		s.mu.Unlock()
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *jwksServer) setKeys(t *testing.T, set authn.JWKS) {
	t.Helper()
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

func (s *jwksServer) set(cacheControl string, status int) {
	s.mu.Lock()
	s.cacheControl, s.status = cacheControl, status
	s.mu.Unlock()
}

type bundle struct {
	key      *rsa.PrivateKey
	signer   *authn.Signer
	jwks     *jwksServer
	clock    *clock.Fake
	verifier *authn.Verifier
	ctx      context.Context
}

func setup(t *testing.T) *bundle {
	t.Helper()
	key := authntest.Key(t)
	signer, err := authn.NewSigner([]*rsa.PrivateKey{key}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{key: key, signer: signer, clock: clock.NewFake(time.Now()), ctx: t.Context()}
	b.jwks = newJWKSServer(t, signer.JWKS())
	b.verifier = b.newVerifier()
	return b
}

func (b *bundle) newVerifier() *authn.Verifier {
	return authn.NewVerifier(authn.VerifierConfig{
		JWKSURL: b.jwks.url, Issuer: authn.DefaultIssuer, Audience: authn.DefaultAudience,
		MinRefetchInterval: 30 * time.Second, MaxCacheAge: time.Hour, Clock: b.clock,
	})
}

func (b *bundle) claims() authn.Claims {
	return authn.Claims{
		UserID: uuid.NewString(), SessionID: uuid.NewString(), Email: "ada@example.test",
		Tier: authn.TierPro, IssuedAt: b.clock.Now(),
	}
}

func (b *bundle) token(t *testing.T, s *authn.Signer) string {
	t.Helper()
	raw, err := s.Sign(b.claims(), authn.AccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// wire is the payload of a valid token, for attacks that sign something of their own.
func (b *bundle) wire() jwt.MapClaims {
	now := b.clock.Now()
	return jwt.MapClaims{
		"iss": authn.DefaultIssuer, "aud": []string{authn.DefaultAudience}, "sub": uuid.NewString(),
		"sid": uuid.NewString(), "jti": uuid.NewString(), "email": "ada@example.test", "tier": "free",
		"iat": now.Unix(), "exp": now.Add(authn.AccessTokenTTL).Unix(),
	}
}

// sign signs claims with any method, key and header, bypassing Signer's own checks.
func sign(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func seg(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func requireCode(t *testing.T, err error, want apperr.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("Verify: no error, want %s", want)
	}
	if got := apperr.CodeOf(err); got != want {
		t.Fatalf("Verify: code %s (%v), want %s", got, err, want)
	}
}

func TestVerifyValidTokenHasAllClaims(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.claims()
	c.TokenID = uuid.NewString()
	raw, err := b.signer.Sign(c, authn.AccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.verifier.Verify(b.ctx, raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := c
	want.IssuedAt = c.IssuedAt.Truncate(time.Second).UTC()
	want.ExpiresAt = want.IssuedAt.Add(authn.AccessTokenTTL)
	if got != want {
		t.Fatalf("claims\n got %+v\nwant %+v", got, want)
	}

	// The header is what API.md §2 says.
	parts := strings.Split(raw, ".")
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "RS256" || h["typ"] != "at+jwt" || h["kid"] != authn.KeyID(&b.key.PublicKey) {
		t.Fatalf("header %v", h)
	}
}

// TestVerifyRejectsAttacks is the JWT attack list of API.md §10.9 and its relatives.
func TestVerifyRejectsAttacks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	kid := authn.KeyID(&b.key.PublicKey)
	ours := map[string]any{"typ": "at+jwt", "kid": kid}
	valid := b.token(t, b.signer)
	parts := strings.Split(valid, ".")

	pubDER, err := x509.MarshalPKIXPublicKey(&b.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	otherIss, err := authn.NewSigner([]*rsa.PrivateKey{b.key}, "someone-else", authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	otherAud, err := authn.NewSigner([]*rsa.PrivateKey{b.key}, authn.DefaultIssuer, "other-api")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := authn.NewSigner([]*rsa.PrivateKey{keyB()}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}

	edited := func() string {
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var m map[string]any
		if err := json.Unmarshal(pb, &m); err != nil {
			t.Fatal(err)
		}
		m["tier"] = "free" // pro → free would be harmless; what matters is any change
		m["sub"] = uuid.NewString()
		return parts[0] + "." + seg(m) + "." + parts[2]
	}()
	googleID := sign(t, jwt.SigningMethodRS256, keyB(), map[string]any{"typ": "JWT", "kid": authn.KeyID(&keyB().PublicKey)}, jwt.MapClaims{
		"iss": "https://accounts.google.com", "aud": "1234.apps.googleusercontent.com", "sub": "110169484474386276334",
		"email": "ada@example.test", "email_verified": true, "iat": b.clock.Now().Unix(), "exp": b.clock.Now().Add(time.Hour).Unix(),
	})
	withClaim := func(k string, v any) string {
		c := b.wire()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return sign(t, jwt.SigningMethodRS256, b.key, ours, c)
	}
	now := b.clock.Now()

	cases := []struct {
		name string
		raw  string
		want apperr.Code
	}{
		{"alg none", seg(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + seg(b.wire()) + ".", apperr.InvalidToken},
		{"alg none signed by the library", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ours, b.wire()), apperr.InvalidToken},
		{"HS256 keyed with the public key PEM", sign(t, jwt.SigningMethodHS256, pubPEM, ours, b.wire()), apperr.InvalidToken},
		{"HS256 keyed with the public key DER", sign(t, jwt.SigningMethodHS256, pubDER, ours, b.wire()), apperr.InvalidToken},
		{"RS512 with our key", sign(t, jwt.SigningMethodRS512, b.key, ours, b.wire()), apperr.InvalidToken},
		{"PS256 with our key", sign(t, jwt.SigningMethodPS256, b.key, ours, b.wire()), apperr.InvalidToken},
		{"unknown kid", b.token(t, stranger), apperr.InvalidToken},
		{"our kid, another key's signature", sign(t, jwt.SigningMethodRS256, keyB(), ours, b.wire()), apperr.InvalidToken},
		{"no kid", sign(t, jwt.SigningMethodRS256, b.key, map[string]any{"typ": "at+jwt"}, b.wire()), apperr.InvalidToken},
		{"wrong iss", b.token(t, otherIss), apperr.InvalidToken},
		{"wrong aud", b.token(t, otherAud), apperr.InvalidToken},
		{"aud list with ours and another", withClaim("aud", []string{authn.DefaultAudience, "other-api"}), apperr.InvalidToken},
		{"Google ID token", googleID, apperr.InvalidToken},
		{"typ JWT with our key", sign(t, jwt.SigningMethodRS256, b.key, map[string]any{"typ": "JWT", "kid": kid}, b.wire()), apperr.InvalidToken},
		{"missing typ", sign(t, jwt.SigningMethodRS256, b.key, map[string]any{"typ": nil, "kid": kid}, b.wire()), apperr.InvalidToken},
		{"crit header", sign(t, jwt.SigningMethodRS256, b.key, map[string]any{"typ": "at+jwt", "kid": kid, "crit": []string{"exp"}}, b.wire()), apperr.InvalidToken},
		{"edited claims", edited, apperr.InvalidToken},
		{"truncated signature", valid[:len(valid)-10], apperr.InvalidToken},
		{"no signature", parts[0] + "." + parts[1] + ".", apperr.InvalidToken},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(b.token(t, b.signer), ".")[2], apperr.InvalidToken},
		{"garbage", "not-a-token", apperr.InvalidToken},
		{"three garbage segments", "a.b.c", apperr.InvalidToken},
		{"empty", "", apperr.InvalidToken},
		{"oversized", strings.Repeat("a", authn.MaxTokenBytes+1), apperr.InvalidToken},
		{"sub not a UUID", withClaim("sub", "admin"), apperr.InvalidToken},
		{"no sub", withClaim("sub", nil), apperr.InvalidToken},
		{"no sid", withClaim("sid", nil), apperr.InvalidToken},
		{"no jti", withClaim("jti", nil), apperr.InvalidToken},
		{"unknown tier", withClaim("tier", "enterprise"), apperr.InvalidToken},
		{"no exp", withClaim("exp", nil), apperr.InvalidToken},
		{"no iat", withClaim("iat", nil), apperr.InvalidToken},
		{"iat in the future", withClaim("iat", now.Add(10*time.Minute).Unix()), apperr.InvalidToken},
		{"nbf in the future", withClaim("nbf", now.Add(10*time.Minute).Unix()), apperr.InvalidToken},
		{"sub of the wrong type", withClaim("sub", 42), apperr.InvalidToken},
		{"expired and wrong iss", func() string {
			c := b.wire()
			c["iss"], c["iat"], c["exp"] = "someone-else", now.Add(-time.Hour).Unix(), now.Add(-time.Minute).Unix()
			return sign(t, jwt.SigningMethodRS256, b.key, ours, c)
		}(), apperr.InvalidToken},
		{"expired", func() string {
			c := b.claims()
			c.IssuedAt = now.Add(-20 * time.Minute)
			raw, err := b.signer.Sign(c, authn.AccessTokenTTL)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}(), apperr.TokenExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.verifier.Verify(b.ctx, tc.raw)
			requireCode(t, err, tc.want)
		})
	}
}

func TestVerifyExpiredSaysRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t)
	raw := b.token(t, b.signer)
	if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(authn.AccessTokenTTL) // exp itself is already too late
	_, err := b.verifier.Verify(b.ctx, raw)
	requireCode(t, err, apperr.TokenExpired)
	e, _ := apperr.As(err)
	if len(e.Details) != 1 || e.Details[0] != apperr.Field("refresh_required", "true") {
		t.Fatalf("details %v", e.Details)
	}
	if e.Code.Status() != http.StatusUnauthorized {
		t.Fatalf("status %d", e.Code.Status())
	}
}

func TestNewKeyIsPickedUpByRefetch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.verifier.Verify(b.ctx, b.token(t, b.signer)); err != nil {
		t.Fatal(err)
	}
	// auth adds a key and signs with it; this verifier has the old set cached.
	rotated, err := authn.NewSigner([]*rsa.PrivateKey{b.key, keyB()}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	b.jwks.setKeys(t, rotated.JWKS())
	fresh := b.token(t, rotated)

	// Right after a fetch the refetch is rate-limited, so the unknown kid is refused…
	_, err = b.verifier.Verify(b.ctx, fresh)
	requireCode(t, err, apperr.InvalidToken)
	// …and once the interval has passed the unknown kid triggers one refetch that finds it.
	b.clock.Advance(30 * time.Second)
	if _, err := b.verifier.Verify(b.ctx, fresh); err != nil {
		t.Fatalf("after refetch: %v", err)
	}
	if n := b.jwks.fetches.Load(); n != 2 {
		t.Fatalf("fetches %d, want 2", n)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.jwks.set("max-age=60", http.StatusOK)
	old := b.token(t, b.signer)

	// Step 1: publish the new key beside the old; the newest (last) signs.
	both, err := authn.NewSigner([]*rsa.PrivateKey{b.key, keyB()}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	if both.KeyID() != authn.KeyID(&keyB().PublicKey) || len(both.JWKS().Keys) != 2 {
		t.Fatalf("signer kid %s, %d keys published", both.KeyID(), len(both.JWKS().Keys))
	}
	b.jwks.setKeys(t, both.JWKS())
	newer := b.token(t, both)
	for _, raw := range []string{old, newer} {
		if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
			t.Fatalf("while both keys are published: %v", err)
		}
	}

	// Step 2: remove the old key. Verifiers keep it until their cached set expires.
	onlyNew, err := authn.NewSigner([]*rsa.PrivateKey{keyB()}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	b.jwks.setKeys(t, onlyNew.JWKS())
	if _, err := b.verifier.Verify(b.ctx, old); err != nil {
		t.Fatalf("old key within the cache age: %v", err)
	}
	b.clock.Advance(61 * time.Second)
	_, err = b.verifier.Verify(b.ctx, old)
	requireCode(t, err, apperr.InvalidToken)
	if _, err := b.verifier.Verify(b.ctx, newer); err != nil {
		t.Fatalf("new key after removal of the old: %v", err)
	}
}

func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	forged := func() string {
		return sign(t, jwt.SigningMethodRS256, keyC(), map[string]any{"typ": "at+jwt", "kid": uuid.NewString()}, b.wire())
	}
	flood := func(n int) {
		var wg sync.WaitGroup
		for range n {
			raw := forged()
			wg.Go(func() {
				_, err := b.verifier.Verify(b.ctx, raw)
				requireCode(t, err, apperr.InvalidToken)
			})
		}
		wg.Wait()
	}
	flood(50)
	if n := b.jwks.fetches.Load(); n != 1 {
		t.Fatalf("first flood: %d fetches, want 1", n)
	}
	b.clock.Advance(29 * time.Second)
	flood(50)
	if n := b.jwks.fetches.Load(); n != 1 {
		t.Fatalf("within the interval: %d fetches, want 1", n)
	}
	b.clock.Advance(time.Second)
	flood(50)
	if n := b.jwks.fetches.Load(); n != 2 {
		t.Fatalf("after the interval: %d fetches, want 2", n)
	}
}

func TestConcurrentFirstUseFetchesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	raw := b.token(t, b.signer)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	wg.Wait()
	if n := b.jwks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestCacheControl(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		cacheControl string
		reuseFor     time.Duration // still cached after this long
		refetchAfter time.Duration // fetched again after this long
	}{
		{"max-age honoured", "public, max-age=120", 119 * time.Second, 120 * time.Second},
		{"max-age capped by MaxCacheAge", "max-age=172800", 59 * time.Minute, time.Hour},
		{"max-age below the refetch interval is raised to it", "max-age=1", 29 * time.Second, 30 * time.Second},
		{"no-store waits the refetch interval", "no-store", 29 * time.Second, 30 * time.Second},
		{"no header uses the default", "", authn.DefaultCacheAge - time.Second, authn.DefaultCacheAge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.jwks.set(tc.cacheControl, http.StatusOK)
			start := b.clock.Now()
			verifyAt := func(d time.Duration) {
				t.Helper()
				b.clock.Set(start.Add(d))
				// A fresh token each time, so expiry of the token is never what we test.
				c := b.claims()
				raw, err := b.signer.Sign(c, authn.AccessTokenTTL)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
					t.Fatalf("Verify at +%s: %v", d, err)
				}
			}
			verifyAt(0)
			verifyAt(tc.reuseFor)
			if n := b.jwks.fetches.Load(); n != 1 {
				t.Fatalf("at +%s: %d fetches, want 1", tc.reuseFor, n)
			}
			verifyAt(tc.refetchAfter)
			if n := b.jwks.fetches.Load(); n != 2 {
				t.Fatalf("at +%s: %d fetches, want 2", tc.refetchAfter, n)
			}
		})
	}
}

func TestFetchFailureKeepsCachedKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.verifier.Verify(b.ctx, b.token(t, b.signer)); err != nil {
		t.Fatal(err)
	}
	b.jwks.set("", http.StatusInternalServerError)
	b.clock.Advance(10 * time.Minute) // past max-age=300
	if _, err := b.verifier.Verify(b.ctx, b.token(t, b.signer)); err != nil {
		t.Fatalf("with a failing JWKS and a cached set: %v", err)
	}
	if n := b.jwks.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (the refresh was attempted)", n)
	}
}

func TestNoKeysAtAllIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.jwks.set("", http.StatusBadGateway)
	_, err := b.verifier.Verify(b.ctx, b.token(t, b.signer))
	requireCode(t, err, apperr.ServiceUnavailable)
	if err := b.verifier.Ready(b.ctx); err == nil {
		t.Fatal("Ready: nil without keys")
	}
	b.jwks.set("max-age=300", http.StatusOK)
	b.clock.Advance(30 * time.Second)
	if err := b.verifier.Ready(b.ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if _, err := b.verifier.Verify(b.ctx, b.token(t, b.signer)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestJWKSSkipsKeysItCannotUse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	set := b.signer.JWKS()
	small := authn.PublicJWK(&mustKey(1024).PublicKey)
	enc := authn.PublicJWK(&keyB().PublicKey)
	enc.Use = "enc"
	set.Keys = append([]authn.JWK{small, enc, {Kty: "EC", Kid: "ec"}, {Kty: "RSA", Kid: "bad", N: "!!", E: "AQAB"}}, set.Keys...)
	b.jwks.setKeys(t, set)
	if _, err := b.verifier.Verify(b.ctx, b.token(t, b.signer)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	weak := sign(t, jwt.SigningMethodRS256, mustKey(1024), map[string]any{"typ": "at+jwt", "kid": small.Kid}, b.wire())
	_, err := b.verifier.Verify(b.ctx, weak)
	requireCode(t, err, apperr.InvalidToken)
}

func TestVerifyHonoursCallerContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(b.ctx)
	cancel()
	_, err := b.verifier.Verify(ctx, b.token(t, b.signer))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context: %v", err)
	}
}

// BenchmarkVerify is one token verified again and again: "uncached" is the RSA check
// every time, "cached" what the token cache leaves of it. "cached-64" is 64 goroutines
// with a token each, as a service under make bench's 64 connections sees them.
func BenchmarkVerify(b *testing.B) {
	key := authntest.Key(b)
	signer, err := authn.NewSigner([]*rsa.PrivateKey{key}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(signer.JWKSHandler(time.Hour))
	b.Cleanup(srv.Close)
	tokens := make([]string, 64)
	for i := range tokens {
		tokens[i], err = signer.Sign(authn.Claims{UserID: uuid.NewString(), SessionID: uuid.NewString(), Tier: authn.TierFree}, authn.AccessTokenTTL)
		if err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	newVerifier := func(b *testing.B, cacheSize int) *authn.Verifier {
		v := authn.NewVerifier(authn.VerifierConfig{JWKSURL: srv.URL, TokenCacheSize: cacheSize})
		for _, raw := range tokens {
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		return v
	}
	for _, bc := range []struct {
		name      string
		cacheSize int
	}{{"uncached", -1}, {"cached", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			v := newVerifier(b, bc.cacheSize)
			for b.Loop() {
				if _, err := v.Verify(ctx, tokens[0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
	b.Run("cached-64", func(b *testing.B) {
		v := newVerifier(b, 0)
		var next atomic.Int64
		b.SetParallelism(max(1, len(tokens)/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			raw := tokens[int(next.Add(1)-1)%len(tokens)]
			for pb.Next() {
				if _, err := v.Verify(ctx, raw); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
