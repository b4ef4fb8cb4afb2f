package authn

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
)

// Defaults of VerifierConfig.
const (
	// DefaultMinRefetchInterval bounds JWKS fetches: a flood of tokens with made-up kids
	// costs auth at most one request per interval and verifier.
	DefaultMinRefetchInterval = 30 * time.Second
	// DefaultMaxCacheAge caps a Cache-Control max-age (API.md §2: at most 24 h).
	DefaultMaxCacheAge = 24 * time.Hour
	// DefaultCacheAge applies when the JWKS answer says nothing about caching.
	DefaultCacheAge = 5 * time.Minute
	// FetchTimeout bounds one JWKS request.
	FetchTimeout = 10 * time.Second
	// ClockSkew is how far in the future iat and nbf may be, for clocks that disagree a
	// little between auth and the verifying service. exp gets no leeway: a client that
	// sees TOKEN_EXPIRED simply refreshes.
	ClockSkew = 60 * time.Second
	// MaxTokenBytes refuses absurd inputs before any decoding.
	MaxTokenBytes = 8 << 10
	// maxJWKSBytes bounds the JWKS body.
	maxJWKSBytes = 1 << 20
)

// VerifierConfig says where the keys are and what the tokens must say.
type VerifierConfig struct {
	// JWKSURL is auth's /.well-known/jwks.json.
	JWKSURL string
	// Issuer and Audience must equal iss and aud exactly (defaults DefaultIssuer and
	// DefaultAudience).
	Issuer   string
	Audience string
	// HTTPClient fetches the JWKS (default: a client with FetchTimeout).
	HTTPClient *http.Client
	// MinRefetchInterval is the least time between two JWKS fetches (default 30 s).
	MinRefetchInterval time.Duration
	// MaxCacheAge caps how long a fetched JWKS is used before it is fetched again
	// (default 24 h); within it the answer's Cache-Control max-age decides.
	MaxCacheAge time.Duration
	// Clock is the time source (default the system clock); tests pass a fake.
	Clock clock.Clock
	// Logger reports JWKS fetch failures (default slog.Default()).
	Logger *slog.Logger
	// TokenCacheSize bounds how many verified tokens are remembered, so that a token seen
	// again skips the RSA check (default DefaultTokenCacheSize; negative: no cache).
	TokenCacheSize int
	// TokenCacheTTL is how long one verification is reused at most (default
	// DefaultTokenCacheTTL); never past the token's exp, and never once the key set in
	// use no longer has the key that verified it.
	TokenCacheTTL time.Duration
}

func (c VerifierConfig) withDefaults() VerifierConfig {
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: FetchTimeout}
	}
	if c.MinRefetchInterval <= 0 {
		c.MinRefetchInterval = DefaultMinRefetchInterval
	}
	if c.MaxCacheAge <= 0 {
		c.MaxCacheAge = DefaultMaxCacheAge
	}
	if c.MaxCacheAge < c.MinRefetchInterval {
		c.MaxCacheAge = c.MinRefetchInterval
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TokenCacheSize == 0 {
		c.TokenCacheSize = DefaultTokenCacheSize
	}
	if c.TokenCacheTTL <= 0 {
		c.TokenCacheTTL = DefaultTokenCacheTTL
	}
	return c
}

// keySet is one fetched JWKS, parsed once: verification only does a map lookup.
type keySet struct {
	keys    map[string]*rsa.PublicKey
	expires time.Time
}

// key is the key of kid, or nil (also on a nil set).
func (s *keySet) key(kid string) *rsa.PublicKey {
	if s == nil {
		return nil
	}
	return s.keys[kid]
}

// flight is a JWKS fetch in progress that concurrent callers wait on.
type flight struct {
	done chan struct{}
	set  *keySet
	err  error
}

// Verifier checks access tokens against auth's JWKS. It is safe for concurrent use; the
// JWKS is fetched lazily on first use, again when its cache age runs out, and once more
// (rate-limited) when a token names an unknown kid, which is how a newly added key is
// picked up without a restart.
//
// Successful verifications are remembered (by the token's SHA-256) for a short while, so
// a client's next requests with the same token, and the second check of one request (the
// gateway's, then the service's), cost a hash instead of an RSA verification. A
// remembered token answers only while it would verify again: before its exp, within
// TokenCacheTTL, and while the key set in use still has the key that verified it, so a
// key removed from the JWKS stops its tokens as soon as the verifier learns of it,
// exactly as without the cache.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser
	set    atomic.Pointer[keySet]
	cache  *tokenCache // nil when disabled
	// verified counts full (uncached) verifications that succeeded, for tests.
	verified atomic.Int64

	mu          sync.Mutex
	lastAttempt time.Time
	inflight    *flight
}

// NewVerifier makes a verifier; it does no I/O until the first Verify (or Ready).
func NewVerifier(cfg VerifierConfig) *Verifier {
	cfg = cfg.withDefaults()
	return &Verifier{
		cfg:   cfg,
		cache: newTokenCache(cfg.TokenCacheSize, cfg.TokenCacheTTL),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
			jwt.WithStrictDecoding(),
			// The claims are checked below, in an order that keeps TOKEN_EXPIRED for
			// tokens that are ours in every other respect.
			jwt.WithoutClaimsValidation(),
		),
	}
}

var errRateLimited = errors.New("JWKS was fetched too recently")

// Verify checks raw and returns its claims. Any failure is a 401 INVALID_TOKEN, except an
// expired token of ours (TOKEN_EXPIRED with details refresh_required=true) and keys that
// cannot be fetched at all (503 SERVICE_UNAVAILABLE: not the client's fault).
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	if raw == "" || len(raw) > MaxTokenBytes {
		return Claims{}, invalidToken(errors.New("empty or oversized token"))
	}
	if v.cache == nil {
		c, _, err := v.verify(ctx, raw)
		return c, err
	}
	d := digestOf(raw)
	if c, ok := v.cached(ctx, d); ok {
		return c, nil
	}
	c, key, err := v.verify(ctx, raw)
	if err != nil {
		return Claims{}, err
	}
	v.cache.put(d, verifiedToken{claims: c, kid: key.kid, key: key.key}, v.cfg.Clock.Now())
	return c, nil
}

// cached answers from the cache when d was verified before and still would be: the entry
// is within its lifetime, and the kid that verified it still names the same key in the
// key set in use (looked up as a full verification would, so an expired set is
// refreshed first). Anything else is a miss and goes through the full verification.
func (v *Verifier) cached(ctx context.Context, d tokenDigest) (Claims, bool) {
	e, ok := v.cache.get(d, v.cfg.Clock.Now())
	if !ok {
		return Claims{}, false
	}
	key, err := v.lookup(ctx, e.kid)
	if err != nil || key != e.key {
		v.cache.remove(d)
		return Claims{}, false
	}
	return e.claims, true
}

// usedKey is the key a verification checked the signature with.
type usedKey struct {
	kid string
	key *rsa.PublicKey
}

// verify is the full check of raw: signature, header and claims.
func (v *Verifier) verify(ctx context.Context, raw string) (Claims, usedKey, error) {
	var wc wireClaims
	var used usedKey
	_, err := v.parser.ParseWithClaims(raw, &wc, func(t *jwt.Token) (any, error) {
		kid, k, err := v.keyFor(ctx, t)
		used = usedKey{kid: kid, key: k}
		return k, err
	})
	if err != nil {
		if e, ok := apperr.As(err); ok {
			return Claims{}, usedKey{}, e
		}
		return Claims{}, usedKey{}, invalidToken(err)
	}
	c, err := v.checkClaims(&wc)
	if err != nil {
		return Claims{}, usedKey{}, err
	}
	v.verified.Add(1)
	return c, used, nil
}

// checkClaims checks what a correctly signed token says.
func (v *Verifier) checkClaims(wc *wireClaims) (Claims, error) {
	if wc.Issuer != v.cfg.Issuer {
		return Claims{}, invalidToken(fmt.Errorf("iss %q", wc.Issuer))
	}
	if len(wc.Audience) != 1 || wc.Audience[0] != v.cfg.Audience {
		return Claims{}, invalidToken(fmt.Errorf("aud %q", []string(wc.Audience)))
	}
	if wc.ExpiresAt == nil || wc.IssuedAt == nil || !wc.ExpiresAt.After(wc.IssuedAt.Time) {
		return Claims{}, invalidToken(errors.New("missing or inconsistent iat/exp"))
	}
	if !validUUID(wc.Subject) || wc.SessionID == "" || wc.ID == "" {
		return Claims{}, invalidToken(errors.New("sub, sid or jti missing or malformed"))
	}
	if !ValidTier(wc.Tier) {
		return Claims{}, invalidToken(fmt.Errorf("tier %q", wc.Tier))
	}
	now := v.cfg.Clock.Now()
	if wc.IssuedAt.After(now.Add(ClockSkew)) || wc.NotBefore != nil && wc.NotBefore.After(now.Add(ClockSkew)) {
		return Claims{}, invalidToken(errors.New("iat or nbf in the future"))
	}
	if !now.Before(wc.ExpiresAt.Time) {
		return Claims{}, apperr.New(apperr.TokenExpired, "the access token has expired",
			apperr.Field("refresh_required", "true"))
	}
	return Claims{
		UserID:    wc.Subject,
		SessionID: wc.SessionID,
		TokenID:   wc.ID,
		Email:     wc.Email,
		Tier:      wc.Tier,
		IssuedAt:  wc.IssuedAt.UTC(),
		ExpiresAt: wc.ExpiresAt.UTC(),
	}, nil
}

func invalidToken(cause error) *apperr.Error {
	return apperr.Wrap(cause, apperr.InvalidToken, "the access token is not valid")
}

// keyFor checks the header and finds the key its kid names.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (string, *rsa.PublicKey, error) {
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, TokenType) && !strings.EqualFold(typ, "application/"+TokenType) {
		return "", nil, fmt.Errorf("typ %q is not %s", typ, TokenType)
	}
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: extensions we do not understand must be refused.
		return "", nil, errors.New("crit header is not supported")
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return "", nil, errors.New("no kid")
	}
	k, err := v.lookup(ctx, kid)
	return kid, k, err
}

func (v *Verifier) lookup(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	s := v.set.Load()
	if s == nil || !v.cfg.Clock.Now().Before(s.expires) {
		fresh, err := v.refresh(ctx)
		switch {
		case fresh != nil:
			s = fresh // a failed refresh hands back the cached set, which stays in use
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return nil, err
		default:
			return nil, apperr.Wrap(err, apperr.ServiceUnavailable, "token keys are unavailable")
		}
	}
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	fresh, err := v.refresh(ctx)
	if err == nil {
		if k, ok := fresh.keys[kid]; ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

// Ready is nil once keys are cached or can be fetched now: a readiness check for
// services that cannot serve without them.
func (v *Verifier) Ready(ctx context.Context) error {
	if v.set.Load() != nil {
		return nil
	}
	s, err := v.refresh(ctx)
	if s == nil {
		return fmt.Errorf("authn: JWKS from %s: %w", v.cfg.JWKSURL, err)
	}
	return nil
}

// refresh fetches the JWKS unless a fetch happened within MinRefetchInterval; callers
// that arrive while one is in flight wait for it instead of starting their own. It
// returns the set now in use (possibly the old one) and the fetch's error.
func (v *Verifier) refresh(ctx context.Context) (*keySet, error) {
	v.mu.Lock()
	f := v.inflight
	if f == nil {
		now := v.cfg.Clock.Now()
		if !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < v.cfg.MinRefetchInterval {
			v.mu.Unlock()
			return v.set.Load(), errRateLimited
		}
		v.lastAttempt = now
		f = &flight{done: make(chan struct{})}
		v.inflight = f
		// The fetch is shared, so no caller's cancellation may abort it; it is bounded
		// by FetchTimeout instead.
		go v.run(context.WithoutCancel(ctx), f)
	}
	v.mu.Unlock()
	select {
	case <-f.done:
		return f.set, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (v *Verifier) run(ctx context.Context, f *flight) {
	s, err := v.fetch(ctx)
	if err != nil {
		v.cfg.Logger.WarnContext(ctx, "JWKS fetch failed; keeping cached keys", "url", v.cfg.JWKSURL, "err", err)
		f.set, f.err = v.set.Load(), err
	} else {
		v.set.Store(s)
		f.set = s
		if v.cache != nil {
			v.cache.retainKeys(s.keys)
		}
	}
	v.mu.Lock()
	v.inflight = nil
	v.mu.Unlock()
	close(f.done)
}

func (v *Verifier) fetch(ctx context.Context) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
		return nil, fmt.Errorf("JWKS answered %s", resp.Status)
	}
	var set JWKS
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	old := v.set.Load()
	for _, jwk := range set.Keys {
		if jwk.Kid == "" {
			continue
		}
		k, err := jwk.publicKey()
		if err != nil {
			// One key we cannot use must not take the others down with it.
			v.cfg.Logger.WarnContext(ctx, "JWKS key skipped", "kid", jwk.Kid, "err", err)
			continue
		}
		if prev := old.key(jwk.Kid); prev != nil && k.Equal(prev) {
			// The same key keeps its identity across fetches: the token cache compares
			// keys by pointer, and its entries stay good while the key does.
			k = prev
		}
		keys[jwk.Kid] = k
	}
	age := cacheAge(resp.Header.Get("Cache-Control"), DefaultCacheAge)
	age = min(max(age, v.cfg.MinRefetchInterval), v.cfg.MaxCacheAge)
	return &keySet{keys: keys, expires: v.cfg.Clock.Now().Add(age)}, nil
}

// cacheAge reads max-age from a Cache-Control value; no-store and no-cache mean 0 (the
// caller raises that to the refetch interval), no directive means def.
func cacheAge(header string, def time.Duration) time.Duration {
	age := def
	for _, d := range strings.Split(header, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return 0
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(d, "max-age="), `"`), 10, 64)
			if err == nil && n >= 0 {
				age = time.Duration(min(n, int64(365*24*3600))) * time.Second
			}
		}
	}
	return age
}
