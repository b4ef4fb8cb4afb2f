package main

import (
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/services/gateway/internal/ratelimit"
)

func TestReadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := ReadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.Upstreams["auth"].String() != "http://127.0.0.1:8081" ||
		c.Upstreams["billing"].String() != "http://127.0.0.1:8084" || c.JWKSURL != "http://127.0.0.1:8081/.well-known/jwks.json" ||
		c.UpstreamTimeout != 30*time.Second || c.Issuer != "perpetua-auth" || c.Audience != "perpetua-api" {
		t.Fatalf("%+v", c)
	}
	want := ratelimit.Limits{
		Auth:    ratelimit.Limit{Requests: 10, Window: time.Minute},
		AI:      ratelimit.Limit{Requests: 20, Window: time.Minute},
		General: ratelimit.Limit{Requests: 100, Window: time.Minute},
	}
	if c.Limits != want {
		t.Fatalf("limits %+v", c.Limits)
	}
}

func TestReadConfigDerivesJWKSFromTheAuthUpstream(t *testing.T) {
	t.Parallel()
	env := map[string]string{"UPSTREAM_AUTH_URL": "http://auth.internal:8081/", "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1"}
	c, err := ReadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKSURL != "http://auth.internal:8081/.well-known/jwks.json" || len(c.TrustedProxies) != 2 || c.TrustedProxies[1].String() != "192.168.1.1/32" {
		t.Fatalf("%+v", c)
	}
}

func TestParseLimit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want ratelimit.Limit
		ok   bool
	}{
		{"100/1m", ratelimit.Limit{Requests: 100, Window: time.Minute}, true},
		{" 3 / 10s ", ratelimit.Limit{Requests: 3, Window: 10 * time.Second}, true},
		{"5/1h", ratelimit.Limit{Requests: 5, Window: time.Hour}, true},
		{"0/1m", ratelimit.Limit{}, false},
		{"100", ratelimit.Limit{}, false},
		{"100/500ms", ratelimit.Limit{}, false},
		{"100/1.5s", ratelimit.Limit{}, false},
		{"x/1m", ratelimit.Limit{}, false},
	} {
		got, err := ParseLimit(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %+v %v", c.in, got, err)
		}
	}
}

func TestReadConfigRejectsBadValues(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"UPSTREAM_AI_URL":      "http://ai:8083/api",
		"RATE_LIMIT_REDIS_URL": "localhost:6379",
		"CORS_ORIGINS":         "localhost:3000",
		"LOG_LEVEL":            "loud",
	}
	_, err := ReadConfig(func(k string) string { return env[k] })
	for _, name := range []string{"UPSTREAM_AI_URL", "RATE_LIMIT_REDIS_URL", "CORS_ORIGINS", "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s not reported: %v", name, err)
		}
	}
}
