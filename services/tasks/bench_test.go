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
// GOMAXPROCS) and reports latency percentiles and throughput. fn reports a failure with
// an error (b.Fatal may not be called from these goroutines).
func runParallel(b *testing.B, fn func() error) {
	b.Helper()
	// Warm up: open the client connections and the service's database connections, so
	// the measurement is of the steady state rather than of connection setup.
	var wg sync.WaitGroup
	for i := 0; i < benchConcurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				if err := fn(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var l latencies
	b.SetParallelism((benchConcurrency + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			if err := fn(); err != nil {
				b.Error(err)
				return
			}
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
	runParallel(b, func() error { return expect(e.send1("GET", path, u.Token, nil))(200) })
}

func BenchmarkListTasks(b *testing.B) {
	e := setup(b)
	u := e.user(b, "pro")
	for i := 0; i < 100; i++ {
		u.createTask(b, map[string]any{"title": fmt.Sprintf("bench %d", i)})
	}
	runParallel(b, func() error { return expect(e.send1("GET", "/api/v1/tasks?limit=25", u.Token, nil))(200) })
}

func BenchmarkCreateTask(b *testing.B) {
	e := setup(b)
	users := make([]*user, benchConcurrency)
	for i := range users {
		users[i] = e.user(b, "pro")
	}
	var mu sync.Mutex
	next := 0
	runParallel(b, func() error {
		mu.Lock()
		u := users[next%len(users)]
		next++
		mu.Unlock()
		return expect(e.send1("POST", "/api/v1/tasks", u.Token, `{"title":"bench"}`))(201)
	})
}

// expect turns a response into an error unless it has the status.
func expect(r response, err error) func(status int) error {
	return func(status int) error {
		if err != nil {
			return err
		}
		if r.Status != status {
			return fmt.Errorf("status %d, want %d: %s", r.Status, status, r.Body)
		}
		return nil
	}
}
