package stack

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"syscall"
)

// Services in start order: the four domain services together, the gateway last, so it is
// ready only when its upstreams are.
var Services = []string{"auth", "tasks", "billing", "ai", "gateway"}

// Backends are the services behind the gateway.
var Backends = Services[:4]

// Defaults the stack gives every service unless the environment says otherwise: a local
// stack signs in without Google, captures payments without a provider, and lets the web
// client on :3000 call the API.
var Defaults = map[string]string{
	"AUTH_DEV_LOGIN":            "true",
	"BILLING_SIMULATE_PAYMENTS": "true",
	"CORS_ORIGINS":              "http://localhost:3000,http://127.0.0.1:3000",
	"LOG_LEVEL":                 "info",
}

// Wiring is what the stack decided: where everything listens and how to reach it.
type Wiring struct {
	// Addrs maps a service to its HTTP_ADDR (host:port).
	Addrs       map[string]string
	DatabaseURL string
	NATSURL     string
	// SigningKeys is AUTH_SIGNING_KEYS (a file or directory).
	SigningKeys string
}

// URL is http://<addr of service>; a wildcard host (0.0.0.0, ::) is reached on loopback.
func (w Wiring) URL(service string) string {
	addr := w.Addrs[service]
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "http://" + addr
}

// ServiceEnv is the environment of one service: the stack's process environment (so every
// variable of API.md §8 given to make run reaches the services), the stack's wiring
// where the environment is silent, and the service's own HTTP_ADDR, which is always the
// stack's (HTTP_ADDR in the environment is the gateway's address).
func ServiceEnv(environ []string, service string, w Wiring) []string {
	env := map[string]string{}
	for k, v := range Defaults {
		env[k] = v
	}
	wiring := map[string]string{
		"DATABASE_URL":         w.DatabaseURL,
		"NATS_URL":             w.NATSURL,
		"AUTH_SIGNING_KEYS":    w.SigningKeys,
		"JWKS_URL":             w.URL("auth") + "/.well-known/jwks.json",
		"UPSTREAM_AUTH_URL":    w.URL("auth"),
		"UPSTREAM_TASKS_URL":   w.URL("tasks"),
		"UPSTREAM_AI_URL":      w.URL("ai"),
		"UPSTREAM_BILLING_URL": w.URL("billing"),
	}
	for k, v := range wiring {
		env[k] = v
	}
	given := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			given[k] = v
		}
	}
	for k, v := range given {
		if v != "" || env[k] == "" {
			env[k] = v
		}
	}
	// Simulated payments never reach a provider, so a configured provider turns them off
	// (billing refuses both at once).
	if given["CHECKOUT_BASE_URL"] != "" && given["BILLING_SIMULATE_PAYMENTS"] == "" {
		env["BILLING_SIMULATE_PAYMENTS"] = "false"
	}
	env["HTTP_ADDR"] = w.Addrs[service]
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// ErrPortTaken says the gateway's address is in use.
var ErrPortTaken = errors.New("port taken")

// AllocateAddrs checks that the gateway can bind gatewayAddr and picks a free loopback
// port for every backend.
func AllocateAddrs(gatewayAddr string) (map[string]string, error) {
	l, err := net.Listen("tcp", gatewayAddr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w: %s is already in use (another make run? stop it, or pick another port: make run PORT=8090): %v",
				ErrPortTaken, gatewayAddr, err)
		}
		return nil, fmt.Errorf("cannot listen on %s: %w", gatewayAddr, err)
	}
	if _, port, _ := net.SplitHostPort(gatewayAddr); port == "0" {
		gatewayAddr = l.Addr().String() // ":0" asks for any free port; this is the one
	}
	addrs := map[string]string{"gateway": gatewayAddr}
	// Keep every listener open until all are chosen, so no two services get one port.
	held := []net.Listener{l}
	defer func() {
		for _, h := range held {
			_ = h.Close()
		}
	}()
	for _, s := range Backends {
		b, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("no free port for %s: %w", s, err)
		}
		held = append(held, b)
		addrs[s] = b.Addr().String()
	}
	return addrs, nil
}
