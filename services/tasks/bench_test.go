package main

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchConcurrency is the number of concurrent clients of the benchmarks (issue 4: 64
// connections).
const benchConcurrency = 64

// latencies collects per-request durations across goroutines and reports p50/p99.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(l.d))/b.Elapsed().Seconds(), "req/s")
}

// runParallel runs fn from benchConcurrency goroutines (SetParallelism multiplies by
// GOMAXPROCS) and reports latency percentiles and throughput.
func runParallel(b *testing.B, fn func(b *testing.B)) {
	b.Helper()
	var l latencies
	b.SetParallelism((benchConcurrency + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			fn(b)
			l.add(time.Since(start))
		}
	})
	b.StopTimer()
	l.report(b)
}

func BenchmarkGetTask(b *testing.B) {
	e := setup(b)
	u := e.user(b, "pro")
	tk := u.createTask(b, map[string]any{"title": "bench"})
	for i := 0; i < 5; i++ {
		want(b, u.do(b, "POST", "/api/v1/tasks/"+id(tk)+"/subtasks", map[string]any{"title": "s"}), 201)
	}
	path := "/api/v1/tasks/" + id(tk)
	runParallel(b, func(b *testing.B) {
		if r := u.do(b, "GET", path, nil); r.Status != 200 {
			b.Fatalf("status %d", r.Status)
		}
	})
}

func BenchmarkListTasks(b *testing.B) {
	e := setup(b)
	u := e.user(b, "pro")
	for i := 0; i < 100; i++ {
		u.createTask(b, map[string]any{"title": fmt.Sprintf("bench %d", i)})
	}
	runParallel(b, func(b *testing.B) {
		if r := u.do(b, "GET", "/api/v1/tasks?limit=25", nil); r.Status != 200 {
			b.Fatalf("status %d", r.Status)
		}
	})
}

func BenchmarkCreateTask(b *testing.B) {
	e := setup(b)
	users := make([]*user, benchConcurrency)
	for i := range users {
		users[i] = e.user(b, "pro")
	}
	var mu sync.Mutex
	next := 0
	runParallel(b, func(b *testing.B) {
		mu.Lock()
		u := users[next%len(users)]
		next++
		mu.Unlock()
		if r := u.do(b, "POST", "/api/v1/tasks", map[string]any{"title": "bench"}); r.Status != 201 {
			b.Fatalf("status %d: %s", r.Status, r.Body)
		}
	})
}
