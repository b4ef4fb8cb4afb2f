// Package svctest runs a whole service in-process for its own end-to-end tests: the
// service's run function on a free port with a test's environment, until the test ends.
package svctest

import (
	"context"
	"io"
	"testing"
	"time"
)

// StartTimeout bounds how long a service may take to migrate and listen.
const StartTimeout = 60 * time.Second

// RunFunc is a service's run function with everything but the context, environment,
// log writer and ready callback already bound (a clock, for example).
type RunFunc func(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string)) error

// Start runs the service with env (HTTP_ADDR defaults to 127.0.0.1:0) and returns its
// base URL once it listens. At cleanup the service is stopped as on SIGTERM, and an error
// from its shutdown fails the test.
func Start(tb testing.TB, run RunFunc, env map[string]string, stdout io.Writer) string {
	tb.Helper()
	vars := map[string]string{"HTTP_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		vars[k] = v
	}
	if stdout == nil {
		stdout = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(k string) string { return vars[k] }, stdout, func(a string) { addr <- a })
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		cancel()
		tb.Fatalf("the service did not start: %v", err)
	case <-time.After(StartTimeout):
		cancel()
		tb.Fatalf("the service did not start within %v", StartTimeout)
	}
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("the service stopped with: %v", err)
		}
	})
	return url
}
