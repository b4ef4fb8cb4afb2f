package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/telemetry"
)

// benchConns is the concurrency of make bench's load (64 connections).
const benchConns = 64

// BenchmarkHandler is the gateway's own cost per request: its handler, built as Run builds
// it, called in-process by 64 goroutines (each a user with its own token, as make bench
// reads tasks) for GET /api/v1/tasks/{id}, proxied to a trivial upstream that answers a
// task-sized JSON body at once. No listener in front, so the numbers are the gateway's
// middleware, token check, rate limit and proxy hop alone. The limits are raised so that
// nothing is refused. Profile with
//
//	go test -run '^$' -bench BenchmarkHandler -benchmem -cpuprofile cpu.out ./services/gateway
func BenchmarkHandler(b *testing.B) {
	body := []byte(`{"data":{"id":"` + uuid.NewString() + `","title":"` + strings.Repeat("x", 1200) + `"}}` + "\n")
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	// Connections the gateway opens to the upstream: with a pool sized for the load it
	// is about one per concurrent request, not one per request.
	var dials atomic.Int64
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	up.Start()
	b.Cleanup(up.Close)
	issuer := authntest.NewIssuer(b)
	env := issuer.Env()
	env["LOG_LEVEL"] = "warn" // as make bench runs the services
	env["RATE_LIMIT_GENERAL"] = "1000000000/1m"
	for _, name := range []string{UpstreamAuth, UpstreamTasks, UpstreamAI, UpstreamBilling} {
		env["UPSTREAM_"+strings.ToUpper(name)+"_URL"] = up.URL
	}
	cfg, err := ReadConfig(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	// Spans are made as in production (Run sets this up too), exported nowhere.
	shutdownTraces, err := telemetry.Setup(b.Context(), Name, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = shutdownTraces(context.Background()) })
	h, closeHandler, err := newHandler(cfg, logging.New(io.Discard, cfg.LogLevel, Name))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(closeHandler)

	tokens := make([]string, benchConns)
	for i := range tokens {
		tokens[i] = issuer.Bearer(b, "", authn.TierFree)
	}
	path := "/api/v1/tasks/" + uuid.NewString()
	var next atomic.Int64
	b.SetParallelism(max(1, benchConns/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	cpuBefore := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		token := tokens[int(next.Add(1)-1)%len(tokens)]
		for pb.Next() {
			req, err := http.NewRequest(http.MethodGet, path, nil)
			if err != nil {
				b.Error(err)
				return
			}
			req.RemoteAddr = "192.0.2.1:1234"
			req.Header.Set("Authorization", token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || rec.Body.Len() != len(body) {
				b.Errorf("status %d, %d bytes: %s", rec.Code, rec.Body.Len(), rec.Body.Bytes()[:min(rec.Body.Len(), 200)])
				return
			}
		}
	})
	// CPU time of the whole process (gateway and upstream) per request: unlike ns/op it
	// hardly moves with what else the shared machine is doing.
	b.ReportMetric(float64((cpuTime(b)-cpuBefore).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(dials.Load()), "upstream-conns")
}

// cpuTime is the user and system time this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
