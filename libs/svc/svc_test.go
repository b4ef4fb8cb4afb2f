package svc_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/perpetua-flow/backend/libs/config"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/svc"
)

// HTTP must drain before the workers stop, so an in-flight request can still enqueue work
// that the relay then flushes.
func TestRunWithStopsHTTPBeforeWorkers(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var order []string
	record := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	workerStarted := make(chan struct{})
	serve := func(ctx context.Context) error {
		<-workerStarted
		cancel() // SIGTERM
		<-ctx.Done()
		record("http")
		return nil
	}
	w := svc.Worker{Name: "relay", Run: func(ctx context.Context) error {
		close(workerStarted)
		<-ctx.Done()
		record("relay")
		return nil
	}}
	if err := svc.RunWith(ctx, logging.Discard(), serve, w); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "http,relay" {
		t.Fatalf("order = %v", order)
	}
}

func TestRunWithStopsEverythingWhenAWorkerFails(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	serve := func(ctx context.Context) error { <-ctx.Done(); return nil }
	w := svc.Worker{Name: "consumer", Run: func(context.Context) error { return boom }}
	err := svc.RunWith(context.Background(), logging.Discard(), serve, w)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func TestReadBaseValidates(t *testing.T) {
	t.Parallel()
	env := map[string]string{"LOG_LEVEL": "loud", "DATABASE_POOLER": "statement"}
	r := config.NewReader(func(k string) string { return env[k] })
	svc.ReadBase(r, "tasks", "127.0.0.1:8082")
	err := r.Err()
	for _, want := range []string{"LOG_LEVEL", "DATABASE_URL is required", "NATS_URL is required", "DATABASE_POOLER"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	env = map[string]string{"DATABASE_URL": "postgres://x", "NATS_URL": "nats://y", "DATABASE_POOLER": "transaction"}
	r = config.NewReader(func(k string) string { return env[k] })
	b := svc.ReadBase(r, "tasks", "127.0.0.1:8082")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if !b.DB.Pooler || b.DB.Schema != "tasks" || b.HTTPAddr != "127.0.0.1:8082" {
		t.Fatalf("base = %+v", b)
	}
}
