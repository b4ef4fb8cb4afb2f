// Package google verifies Google ID tokens: RS256 signatures against Google's JWKS
// (cached per its Cache-Control, at most 24 h, refetched once on an unknown kid at a
// bounded rate), the issuer, the audience (our client ids), the times with leeway, and a
// verified email. Every failure is GOOGLE_AUTH_FAILED; the reason is in the error's cause
// (logged), never in the message the client reads.
package google

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/services/auth/internal/account"
)

// DefaultJWKSURL is Google's published key set.
const DefaultJWKSURL = "https://www.googleapis.com/oauth2/v3/certs"

// Verification rules (API.md §2).
const (
	// Leeway tolerates clock skew on exp and iat.
	Leeway = 60 * time.Second
	// MaxCacheAge caps how long a fetched key set is trusted, whatever Cache-Control says.
	MaxCacheAge = 24 * time.Hour
	// DefaultCacheAge applies when the answer carries no usable max-age.
	DefaultCacheAge = time.Hour
	// DefaultRefetchInterval is the least time between two fetches caused by an unknown
	// kid, so a flood of forged kids cannot make us hammer Google.
	DefaultRefetchInterval = time.Minute
	// FetchTimeout bounds one JWKS request.
	FetchTimeout = 5 * time.Second
	// MaxJWKSBytes bounds the JWKS body we read.
	MaxJWKSBytes = 1 << 20
)

// Issuers are the two forms Google uses.
var Issuers = []string{"accounts.google.com", "https://accounts.google.com"}

// Config of a Verifier.
type Config struct {
	// JWKSURL is GOOGLE_JWKS_URL (default DefaultJWKSURL).
	JWKSURL string
	// ClientIDs are the accepted audiences (GOOGLE_CLIENT_IDS).
	ClientIDs []string
	// HTTPClient fetches the JWKS (default: a client with FetchTimeout).
	HTTPClient *http.Client
	// Clock is the time source for exp/iat and the cache (default clock.System).
	Clock clock.Clock
	// RefetchInterval is the least time between unknown-kid fetches (default
	// DefaultRefetchInterval).
	RefetchInterval time.Duration
	// Logger reports a failed fetch answered from the old keys (default slog.Default()).
	Logger *slog.Logger
}

// Verifier checks Google ID tokens. Safe for concurrent use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser

	fetchMu sync.Mutex // one fetch at a time

	mu        sync.RWMutex
	keys      map[string]*rsa.PublicKey
	expiresAt time.Time
	fetchedAt time.Time
}

// New builds a Verifier; it fetches nothing until the first token.
func New(cfg Config) (*Verifier, error) {
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = DefaultJWKSURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: FetchTimeout}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.RefetchInterval <= 0 {
		cfg.RefetchInterval = DefaultRefetchInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	v := &Verifier{cfg: cfg}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return v.cfg.Clock.Now() }),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(cfg.ClientIDs...),
	)
	return v, nil
}

// claims are the parts of a Google ID token we read.
type claims struct {
	jwt.RegisteredClaims
	Email         string          `json:"email"`
	EmailVerified json.RawMessage `json:"email_verified"` // a boolean, or "true" in older tokens
	Name          string          `json:"name"`
	Picture       string          `json:"picture"`
}

// Verify checks raw and returns who signed in.
func (v *Verifier) Verify(ctx context.Context, raw string) (account.Identity, error) {
	if len(v.cfg.ClientIDs) == 0 {
		return account.Identity{}, failed(errors.New("GOOGLE_CLIENT_IDS is not configured"))
	}
	var c claims
	_, err := v.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("no kid in the header")
		}
		return v.key(ctx, kid)
	})
	if err != nil {
		return account.Identity{}, failed(err)
	}
	if !issuerOK(c.Issuer) {
		return account.Identity{}, failed(fmt.Errorf("issuer %q is not Google's", c.Issuer))
	}
	if c.Subject == "" {
		return account.Identity{}, failed(errors.New("no sub"))
	}
	if c.Email == "" {
		return account.Identity{}, failed(errors.New("no email"))
	}
	if !verified(c.EmailVerified) {
		return account.Identity{}, failed(errors.New("email_verified is not true"))
	}
	return account.Identity{GoogleID: c.Subject, Email: c.Email, Name: c.Name, AvatarURL: c.Picture}, nil
}

func failed(reason error) error {
	return apperr.Wrap(reason, apperr.GoogleAuthFailed, "Google sign-in failed")
}

func issuerOK(iss string) bool {
	for _, want := range Issuers {
		if iss == want {
			return true
		}
	}
	return false
}

func verified(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "true" || s == `"true"`
}

// key finds kid in the cached set, fetching when the cache is stale, or once (rate
// limited) when kid is unknown, which is how a rotated Google key is picked up.
func (v *Verifier) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	now := v.cfg.Clock.Now()
	v.mu.RLock()
	k, ok := v.keys[kid]
	fresh := v.keys != nil && now.Before(v.expiresAt)
	v.mu.RUnlock()
	if ok && fresh {
		return k, nil
	}
	if err := v.refresh(ctx, !fresh); err != nil {
		return nil, err
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

// refresh fetches the key set. stale says the cache has expired, which always allows a
// fetch; otherwise (an unknown kid) a fetch happens at most once per RefetchInterval.
func (v *Verifier) refresh(ctx context.Context, stale bool) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	now := v.cfg.Clock.Now()
	v.mu.RLock()
	fetchedAt, expiresAt, have := v.fetchedAt, v.expiresAt, v.keys != nil
	v.mu.RUnlock()
	if stale && have && now.Before(expiresAt) {
		return nil // another caller refreshed while we waited
	}
	if !stale && now.Sub(fetchedAt) < v.cfg.RefetchInterval {
		return nil // rate limited: answer from the cache
	}
	keys, maxAge, err := v.fetch(ctx)
	if err != nil {
		if have {
			// Keep serving the old keys: Google being briefly unreachable must not sign
			// everyone out; a token with a new kid fails until the next fetch works.
			v.cfg.Logger.WarnContext(ctx, "Google JWKS fetch failed; using the cached keys", "err", err)
			v.mu.Lock()
			v.fetchedAt = now
			v.expiresAt = now.Add(v.cfg.RefetchInterval)
			v.mu.Unlock()
			return nil
		}
		return err
	}
	v.mu.Lock()
	v.keys, v.fetchedAt, v.expiresAt = keys, now, now.Add(maxAge)
	v.mu.Unlock()
	return nil
}

type jwks struct {
	Keys []struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
		N   string `json:"n"`
		E   string `json:"e"`
	} `json:"keys"`
}

func (v *Verifier) fetch(ctx context.Context) (map[string]*rsa.PublicKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch Google JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetch Google JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes))
	if err != nil {
		return nil, 0, fmt.Errorf("read Google JWKS: %w", err)
	}
	var set jwks
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, 0, fmt.Errorf("decode Google JWKS: %w", err)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		pub, err := rsaKey(k.N, k.E)
		if err != nil {
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, 0, errors.New("the Google JWKS has no usable RSA key")
	}
	return keys, CacheAge(resp.Header.Get("Cache-Control")), nil
}

func rsaKey(n, e string) (*rsa.PublicKey, error) {
	nb, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil {
		return nil, err
	}
	eb, err := base64.RawURLEncoding.DecodeString(e)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("bad exponent")
	}
	exp := 0
	for _, b := range eb {
		exp = exp<<8 | int(b)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: exp}
	if pub.N.BitLen() < 2048 {
		return nil, errors.New("key shorter than 2048 bits")
	}
	return pub, nil
}

// CacheAge reads max-age from a Cache-Control value: DefaultCacheAge when absent, zero
// for no-store/no-cache, never more than MaxCacheAge.
func CacheAge(cc string) time.Duration {
	age := DefaultCacheAge
	for _, part := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(strings.ToLower(part)), "=")
		switch name {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n >= 0 {
				age = time.Duration(n) * time.Second
			}
		}
	}
	return min(age, MaxCacheAge)
}
