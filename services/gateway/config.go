package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/perpetua-flow/backend/libs/config"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/services/gateway/internal/ratelimit"
)

// Config is everything the gateway reads from the environment (API.md §8). It has no
// database and no NATS: it only verifies tokens, limits and proxies.
type Config struct {
	// HTTPAddr is HTTP_ADDR (default 127.0.0.1:8080), the only public listener.
	HTTPAddr string
	// LogLevel is LOG_LEVEL (default info).
	LogLevel slog.Level
	// Upstreams are UPSTREAM_AUTH_URL, UPSTREAM_TASKS_URL, UPSTREAM_AI_URL and
	// UPSTREAM_BILLING_URL (defaults http://127.0.0.1:8081 … 8084).
	Upstreams map[string]*url.URL
	// JWKSURL is JWKS_URL (default UPSTREAM_AUTH_URL + /.well-known/jwks.json).
	JWKSURL string
	// Issuer and Audience are AUTH_ISSUER (default perpetua-auth) and AUTH_AUDIENCE
	// (default perpetua-api), checked in every access token.
	Issuer, Audience string
	// CORSOrigins is CORS_ORIGINS, comma-separated (default none: no browser origin allowed).
	CORSOrigins []string
	// Limits are RATE_LIMIT_AUTH (10/1m), RATE_LIMIT_AI (20/1m), RATE_LIMIT_GENERAL (100/1m).
	Limits ratelimit.Limits
	// RedisURL is RATE_LIMIT_REDIS_URL; when set the counters are shared by every replica.
	RedisURL string
	// TrustedProxies is TRUSTED_PROXIES, comma-separated CIDRs (or single addresses) whose
	// X-Forwarded-For is believed. Empty: the socket address is the client.
	TrustedProxies []netip.Prefix
	// UpstreamTimeout is UPSTREAM_TIMEOUT (default 30s): the whole exchange with an
	// upstream, except on the SSE routes, which only wait that long for headers.
	UpstreamTimeout time.Duration
	// AIUpstreamTimeout is UPSTREAM_TIMEOUT_AI (default 45s): the same for the ai service,
	// whose answers wait for a model (AI_PROVIDER_TIMEOUT, 30s by default) plus a credit
	// reservation; it must exceed the provider timeout so the client gets ai's own 503
	// (with the credits refunded) rather than the gateway's.
	AIUpstreamTimeout time.Duration
	// OTLPEndpoint is OTEL_EXPORTER_OTLP_ENDPOINT; empty disables trace export.
	OTLPEndpoint string
}

// Upstream names, also the service names of TEAM.md's routing table.
const (
	UpstreamAuth    = "auth"
	UpstreamTasks   = "tasks"
	UpstreamAI      = "ai"
	UpstreamBilling = "billing"
)

// Defaults of API.md §1 and TEAM.md.
const (
	DefaultHTTPAddr        = "127.0.0.1:8080"
	DefaultUpstreamTimeout = 30 * time.Second
	// DefaultAIUpstreamTimeout leaves ai's 30s provider timeout room to answer first.
	DefaultAIUpstreamTimeout = 45 * time.Second
	DefaultIssuer            = "perpetua-auth"
	DefaultAudience          = "perpetua-api"
)

var defaultUpstreams = []struct{ name, env, def string }{
	{UpstreamAuth, "UPSTREAM_AUTH_URL", "http://127.0.0.1:8081"},
	{UpstreamTasks, "UPSTREAM_TASKS_URL", "http://127.0.0.1:8082"},
	{UpstreamAI, "UPSTREAM_AI_URL", "http://127.0.0.1:8083"},
	{UpstreamBilling, "UPSTREAM_BILLING_URL", "http://127.0.0.1:8084"},
}

// ReadConfig reads and validates the gateway's configuration, reporting every problem at once.
func ReadConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	level, err := logging.ParseLevel(r.String("LOG_LEVEL", "info"))
	r.Check(err == nil, "%v", err)
	c := Config{
		HTTPAddr:          r.String("HTTP_ADDR", DefaultHTTPAddr),
		LogLevel:          level,
		Upstreams:         map[string]*url.URL{},
		Issuer:            r.String("AUTH_ISSUER", DefaultIssuer),
		Audience:          r.String("AUTH_AUDIENCE", DefaultAudience),
		CORSOrigins:       r.List("CORS_ORIGINS", nil),
		RedisURL:          r.String("RATE_LIMIT_REDIS_URL", ""),
		UpstreamTimeout:   r.Duration("UPSTREAM_TIMEOUT", DefaultUpstreamTimeout),
		AIUpstreamTimeout: r.Duration("UPSTREAM_TIMEOUT_AI", DefaultAIUpstreamTimeout),
		OTLPEndpoint:      r.String("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
	}
	for _, u := range defaultUpstreams {
		raw := r.String(u.env, u.def)
		parsed, err := parseUpstream(raw)
		r.Check(err == nil, "%s: %v", u.env, err)
		c.Upstreams[u.name] = parsed
	}
	c.JWKSURL = r.String("JWKS_URL", strings.TrimRight(r.String("UPSTREAM_AUTH_URL", defaultUpstreams[0].def), "/")+"/.well-known/jwks.json")
	c.Limits.Auth = readLimit(r, "RATE_LIMIT_AUTH", ratelimit.Limit{Requests: 10, Window: time.Minute})
	c.Limits.AI = readLimit(r, "RATE_LIMIT_AI", ratelimit.Limit{Requests: 20, Window: time.Minute})
	c.Limits.General = readLimit(r, "RATE_LIMIT_GENERAL", ratelimit.Limit{Requests: 100, Window: time.Minute})
	for _, s := range r.List("TRUSTED_PROXIES", nil) {
		p, err := parsePrefix(s)
		r.Check(err == nil, "TRUSTED_PROXIES: %q is not a CIDR or an IP address", s)
		if err == nil {
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	if c.RedisURL != "" {
		_, err := url.Parse(c.RedisURL)
		r.Check(err == nil && (strings.HasPrefix(c.RedisURL, "redis://") || strings.HasPrefix(c.RedisURL, "rediss://")),
			"RATE_LIMIT_REDIS_URL: %q is not a redis:// or rediss:// URL", c.RedisURL)
	}
	for _, o := range c.CORSOrigins {
		r.Check(o == "*" || strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://"),
			"CORS_ORIGINS: %q is not an http(s) origin", o)
	}
	r.Check(c.UpstreamTimeout > 0, "UPSTREAM_TIMEOUT must be > 0")
	r.Check(c.AIUpstreamTimeout > 0, "UPSTREAM_TIMEOUT_AI must be > 0")
	return c, r.Err()
}

func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) base URL", raw)
	}
	if u.Path != "" || u.RawQuery != "" {
		// Paths are forwarded unchanged, so a base path would silently move every route.
		return nil, fmt.Errorf("%q must not have a path or query", raw)
	}
	return u, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// readLimit parses "N/duration" such as "100/1m" or "5/10s".
func readLimit(r *config.Reader, name string, def ratelimit.Limit) ratelimit.Limit {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	l, err := ParseLimit(s)
	r.Check(err == nil, "%s: %v", name, err)
	if err != nil {
		return def
	}
	return l
}

// ParseLimit parses "N/duration" ("100/1m"): N ≥ 1 requests per window ≥ 1s.
func ParseLimit(s string) (ratelimit.Limit, error) {
	n, w, ok := strings.Cut(strings.TrimSpace(s), "/")
	requests, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || requests < 1 {
		return ratelimit.Limit{}, fmt.Errorf("%q is not requests/window such as 100/1m", s)
	}
	window, err := time.ParseDuration(strings.TrimSpace(w))
	if err != nil || window < time.Second || window%time.Second != 0 {
		return ratelimit.Limit{}, fmt.Errorf("%q: the window must be whole seconds, at least 1s", s)
	}
	return ratelimit.Limit{Requests: requests, Window: window}, nil
}
