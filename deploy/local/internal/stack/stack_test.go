package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServiceEnvPassesEverythingThrough(t *testing.T) {
	t.Parallel()
	w := Wiring{
		Addrs: map[string]string{
			"gateway": "127.0.0.1:8080", "auth": "127.0.0.1:1001", "tasks": "127.0.0.1:1002",
			"billing": "127.0.0.1:1003", "ai": "127.0.0.1:1004",
		},
		DatabaseURL: "postgres://stack/perpetua", NATSURL: "nats://stack:4222", SigningKeys: "/data/keys",
	}
	cases := []struct {
		name    string
		environ []string
		service string
		want    map[string]string
	}{
		{
			name: "defaults and wiring", service: "tasks",
			want: map[string]string{
				"HTTP_ADDR": "127.0.0.1:1002", "DATABASE_URL": "postgres://stack/perpetua", "NATS_URL": "nats://stack:4222",
				"JWKS_URL": "http://127.0.0.1:1001/.well-known/jwks.json", "AUTH_SIGNING_KEYS": "/data/keys",
				"AUTH_DEV_LOGIN": "true", "BILLING_SIMULATE_PAYMENTS": "true",
				"CORS_ORIGINS":      "http://localhost:3000,http://127.0.0.1:3000",
				"UPSTREAM_AUTH_URL": "http://127.0.0.1:1001", "UPSTREAM_TASKS_URL": "http://127.0.0.1:1002",
				"UPSTREAM_AI_URL": "http://127.0.0.1:1004", "UPSTREAM_BILLING_URL": "http://127.0.0.1:1003",
			},
		},
		{
			name: "every API.md §8 variable given reaches the service", service: "ai",
			environ: []string{
				"OPENAI_API_KEY=sk-test", "OPENAI_BASE_URL=http://127.0.0.1:9999/v1", "OPENAI_MODEL=gpt-test",
				"DEEPGRAM_API_KEY=dg", "DEEPGRAM_BASE_URL=http://127.0.0.1:9998", "GOOGLE_CLIENT_IDS=a,b",
				"GOOGLE_JWKS_URL=http://127.0.0.1:9997/certs", "CHECKOUT_SECRET_KEY=sk", "CHECKOUT_WEBHOOK_SECRETS=s1,s2",
				"AUTH_ISSUER=iss", "AUTH_AUDIENCE=aud", "LOG_LEVEL=debug", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318",
				"RATE_LIMIT_AUTH=5/1m", "RATE_LIMIT_AI=6/1m", "RATE_LIMIT_GENERAL=7/1m", "RATE_LIMIT_REDIS_URL=redis://127.0.0.1:6379",
				"AUTH_DEV_LOGIN=false", "CORS_ORIGINS=https://app.example", "PATH=/usr/bin",
			},
			want: map[string]string{
				"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9999/v1", "OPENAI_MODEL": "gpt-test",
				"DEEPGRAM_API_KEY": "dg", "DEEPGRAM_BASE_URL": "http://127.0.0.1:9998", "GOOGLE_CLIENT_IDS": "a,b",
				"GOOGLE_JWKS_URL": "http://127.0.0.1:9997/certs", "CHECKOUT_SECRET_KEY": "sk", "CHECKOUT_WEBHOOK_SECRETS": "s1,s2",
				"AUTH_ISSUER": "iss", "AUTH_AUDIENCE": "aud", "LOG_LEVEL": "debug", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
				"RATE_LIMIT_AUTH": "5/1m", "RATE_LIMIT_AI": "6/1m", "RATE_LIMIT_GENERAL": "7/1m", "RATE_LIMIT_REDIS_URL": "redis://127.0.0.1:6379",
				"AUTH_DEV_LOGIN": "false", "CORS_ORIGINS": "https://app.example", "PATH": "/usr/bin",
				"HTTP_ADDR": "127.0.0.1:1004",
			},
		},
		{
			name: "HTTP_ADDR of the environment is the gateway's, never a backend's", service: "auth",
			environ: []string{"HTTP_ADDR=0.0.0.0:9000"},
			want:    map[string]string{"HTTP_ADDR": "127.0.0.1:1001"},
		},
		{
			name: "a real payment provider turns simulated payments off", service: "billing",
			environ: []string{"CHECKOUT_BASE_URL=https://api.sandbox.checkout.com"},
			want:    map[string]string{"BILLING_SIMULATE_PAYMENTS": "false", "CHECKOUT_BASE_URL": "https://api.sandbox.checkout.com"},
		},
		{
			name: "an empty variable does not erase the stack's wiring", service: "billing",
			environ: []string{"DATABASE_URL=", "NATS_URL="},
			want:    map[string]string{"DATABASE_URL": "postgres://stack/perpetua", "NATS_URL": "nats://stack:4222"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := map[string]string{}
			for _, kv := range ServiceEnv(c.environ, c.service, w) {
				k, v, _ := strings.Cut(kv, "=")
				if _, dup := got[k]; dup {
					t.Fatalf("%s twice", k)
				}
				got[k] = v
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestAllocateAddrs(t *testing.T) {
	t.Parallel()
	addrs, err := AllocateAddrs("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range Services {
		a := addrs[s]
		if a == "" || seen[a] {
			t.Fatalf("%s: %q (all: %v)", s, a, addrs)
		}
		seen[a] = true
	}
	// That the chosen ports are free again is not checked by binding them here: with the
	// other test binaries running in parallel, any of them may take a port released a
	// moment ago (CI saw it). The listeners are closed by AllocateAddrs's defer.

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = AllocateAddrs(taken.Addr().String())
	if !errors.Is(err, ErrPortTaken) || !strings.Contains(err.Error(), taken.Addr().String()) || !strings.Contains(err.Error(), "PORT=") {
		t.Fatalf("port taken: %v", err)
	}
}

func TestPrefixWriter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	out := &lockedWriter{w: &buf}
	p := newPrefixWriter("tasks", out)
	_, _ = p.Write([]byte("one\ntw"))
	_, _ = p.Write([]byte("o\r\nthree"))
	p.flush()
	if buf.String() != "[tasks] one\n[tasks] two\n[tasks] three\n" {
		t.Fatalf("%q", buf.String())
	}
	for i := range TailLines + 5 {
		_, _ = p.Write([]byte(strings.Repeat("x", i) + "\n"))
	}
	tail := strings.Split(p.Tail(), "\n")
	if len(tail) != TailLines || tail[len(tail)-1] != strings.Repeat("x", TailLines+4) {
		t.Fatalf("tail has %d lines, last %q", len(tail), tail[len(tail)-1])
	}
}

func TestSummaryAndRedaction(t *testing.T) {
	t.Parallel()
	w := Wiring{Addrs: map[string]string{"gateway": "127.0.0.1:8080"}, DatabaseURL: "postgres://app:s3cret@db:5432/perpetua", NATSURL: "nats://x"}
	s := Summary(w, "/data")
	for _, want := range []string{
		"http://127.0.0.1:8080/api/v1",
		`curl -X POST http://127.0.0.1:8080/api/v1/auth/dev/login -H 'Content-Type: application/json' -d '{"email":"me@example.com","name":"Me"}'`,
		`-H "Authorization: Bearer $TOKEN"`,
		"postgres://app:***@db:5432/perpetua",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "s3cret") {
		t.Fatal("password printed")
	}
}

// fakeBinaries builds testdata/fakesvc once and installs it under every service's name.
var fakeBuild = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "stack-fakes-")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "fakesvc"), "./testdata/fakesvc").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return dir, nil
})

func fakeBinDir(t *testing.T, services ...string) string {
	t.Helper()
	src, err := fakeBuild()
	if err != nil {
		t.Fatalf("build fake service: %v", err)
	}
	bin, err := os.ReadFile(filepath.Join(src, "fakesvc"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, s := range services {
		if err := os.WriteFile(filepath.Join(dir, s), bin, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runStack starts Run with fake services and returns the wiring once ready, and a stop
// function returning Run's error and output.
func runStack(t *testing.T, binDir string, environ []string) (Wiring, func() (string, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	ready := make(chan Wiring, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Root: t.TempDir(), Port: 0, Environ: environ, Out: &out,
			ReadyTimeout: 20 * time.Second, StopGrace: 5 * time.Second,
			BinDir: binDir, SkipBuild: true, Ready: func(w Wiring) { ready <- w },
		})
	}()
	select {
	case w := <-ready:
		return w, func() (string, error) { cancel(); err := <-done; return out.String(), err }
	case err := <-done:
		cancel()
		t.Fatalf("stack did not come up: %v\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("stack not ready in 30s:\n%s", out.String())
	}
	return Wiring{}, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunStartsEveryServiceAndStopsCleanly(t *testing.T) {
	t.Parallel()
	bin := fakeBinDir(t, Services...)
	dataDir := t.TempDir()
	environ := []string{
		"DATA_DIR=" + dataDir,
		"HTTP_ADDR=127.0.0.1:0",
		// The fakes never connect; a given DATABASE_URL keeps the test off Postgres.
		"DATABASE_URL=postgres://nobody@127.0.0.1:1/none",
		"OPENAI_API_KEY=sk-from-make-run",
	}
	w, stop := runStack(t, bin, environ)

	for _, s := range Services {
		resp, err := http.Get(w.URL(s) + "/env")
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		var env []string
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		joined := "\n" + strings.Join(env, "\n") + "\n"
		for _, want := range []string{
			"\nOPENAI_API_KEY=sk-from-make-run\n", "\nHTTP_ADDR=" + w.Addrs[s] + "\n", "\nNATS_URL=" + w.NATSURL + "\n",
			"\nAUTH_SIGNING_KEYS=" + filepath.Join(dataDir, "keys") + "\n", "\nDATABASE_URL=postgres://nobody@127.0.0.1:1/none\n",
		} {
			if !strings.Contains(joined, want) {
				t.Errorf("%s lacks %q", s, strings.TrimSpace(want))
			}
		}
	}
	if !strings.HasPrefix(w.NATSURL, "nats://127.0.0.1:") {
		t.Fatalf("NATS %q", w.NATSURL)
	}
	if pems, _ := filepath.Glob(filepath.Join(dataDir, "keys", "*.pem")); len(pems) != 1 {
		t.Fatalf("signing keys: %v", pems)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "nats")); err != nil || !fi.IsDir() {
		t.Fatalf("NATS store: %v", err)
	}

	out, err := stop()
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	for _, want := range []string{"[stack] Perpetua Flow is ready.", "[auth] fake service listening", "[gateway] fake service stopped", "[tasks] fake service stopped", "[stack] NATS stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, s := range Services {
		if _, err := http.Get(w.URL(s) + "/health/live"); err == nil {
			t.Errorf("%s still serves after the stack stopped", s)
		}
	}
}

func TestRunNamesAServiceThatNeverGetsReady(t *testing.T) {
	t.Parallel()
	bin := fakeBinDir(t, "auth", "tasks", "ai", "gateway")
	// billing is a script that says something and exits.
	if err := os.WriteFile(filepath.Join(bin, "billing"), []byte("#!/bin/sh\necho 'config: CHECKOUT_SECRET_KEY is required'\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	err := Run(context.Background(), Options{
		Root: t.TempDir(), Environ: []string{"DATA_DIR=" + t.TempDir(), "HTTP_ADDR=127.0.0.1:0", "DATABASE_URL=postgres://x@127.0.0.1:1/x"},
		Out: &out, ReadyTimeout: 20 * time.Second, StopGrace: 5 * time.Second, BinDir: bin, SkipBuild: true,
	})
	if err == nil || !strings.Contains(err.Error(), "billing exited before it was ready") || !strings.Contains(err.Error(), "CHECKOUT_SECRET_KEY is required") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(out.String(), "[auth] fake service stopped") {
		t.Fatalf("the other services were not stopped:\n%s", out.String())
	}
}

func TestRunRefusesATakenPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = Run(context.Background(), Options{
		Root: t.TempDir(), Environ: []string{"DATA_DIR=" + t.TempDir(), "HTTP_ADDR=" + l.Addr().String()},
		Out: &syncBuffer{}, BinDir: t.TempDir(), SkipBuild: true,
	})
	if !errors.Is(err, ErrPortTaken) {
		t.Fatalf("got %v", err)
	}
}

func TestWiringURLReachesWildcardHostsOnLoopback(t *testing.T) {
	t.Parallel()
	w := Wiring{Addrs: map[string]string{"gateway": "0.0.0.0:8080", "auth": "[::]:81", "tasks": ":82", "ai": "10.1.2.3:83"}}
	for s, want := range map[string]string{"gateway": "http://127.0.0.1:8080", "auth": "http://127.0.0.1:81", "tasks": "http://127.0.0.1:82", "ai": "http://10.1.2.3:83"} {
		if got := w.URL(s); got != want {
			t.Errorf("%s: %s, want %s", s, got, want)
		}
	}
}
