package ratelimit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/services/gateway/internal/redistest"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

func byHeader(r *http.Request) string { return r.Header.Get("X-Key") }

// hit sends one request for key through h and returns the recorder.
func hit(h http.Handler, key string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Key", key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// statuses spends n requests and returns their statuses, retrying (with a fresh key) when
// a run straddles a window boundary, where the counts restart.
func statuses(t *testing.T, window time.Duration, n int, send func(key string, i int) int) []int {
	t.Helper()
	for range 3 {
		key := uuid.NewString()
		before := time.Now().Truncate(window)
		var s []int
		for i := range n {
			s = append(s, send(key, i))
		}
		if time.Now().Truncate(window).Equal(before) {
			return s
		}
	}
	t.Fatal("three runs straddled a window boundary")
	return nil
}

func TestMemoryLimiterFixedWindow(t *testing.T) {
	t.Parallel()
	l := New(ClassGeneral, Limit{Requests: 3, Window: time.Hour}, byHeader, NewMemoryCounter(), logging.Discard())
	h := l.Handler(ok)
	got := statuses(t, time.Hour, 4, func(key string, _ int) int { return hit(h, key).Code })
	if fmt.Sprint(got) != "[200 200 200 429]" {
		t.Fatalf("statuses %v", got)
	}
	rec := hit(h, "someone-else")
	if rec.Code != 200 || rec.Header().Get(HeaderRemaining) != "2" || rec.Header().Get(HeaderPolicy) != "3;w=3600" {
		t.Fatalf("another key: %d %v", rec.Code, rec.Header())
	}
}

func TestMemoryCounterForgetsOldWindows(t *testing.T) {
	t.Parallel()
	c := NewMemoryCounter()
	w1 := time.Unix(1_800_000_000, 0)
	w2 := w1.Add(time.Minute)
	add := func(key string, w time.Time, n int) int {
		t.Helper()
		got, err := c.Add(key, w, time.Minute, n)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if n := add("k", w1, 2); n != 2 {
		t.Fatalf("w1 %d", n)
	}
	if n := add("k", w1, 1); n != 3 {
		t.Fatalf("w1 again %d", n)
	}
	for i := range 100 {
		add(fmt.Sprint("other-", i), w1, 1)
	}
	if n := add("k", w2, 1); n != 1 {
		t.Fatalf("w2 %d: the old window still counts", n)
	}
	if n := add("k", w1, 1); n != 1 {
		t.Fatalf("a late request of the old window: %d, want its own 1", n)
	}
	if n := add("k", w2, 1); n != 2 {
		t.Fatalf("w2 after the late request %d", n)
	}
	// The other keys' shards forget w1 as soon as they see w2.
	for i := range 100 {
		add(fmt.Sprint("other-", i), w2, 1)
	}
	if n := c.len(); n != 101 {
		t.Fatalf("kept %d keys, want the 101 of w2", n)
	}
}

func TestRetryAfterAndIETFHeaders(t *testing.T) {
	t.Parallel()
	l := New(ClassAI, Limit{Requests: 1, Window: time.Minute}, byHeader, NewMemoryCounter(), logging.Discard())
	h := l.Handler(ok)
	var (
		rec *httptest.ResponseRecorder
		end time.Time
	)
	for range 3 { // a retry only when the minute turned between the two requests
		// Pin the limiter's "now" to 17.2 s before the end of the current minute.
		end = time.Now().Truncate(time.Minute).Add(time.Minute)
		l.now = func() time.Time { return end.Add(-17*time.Second - 200*time.Millisecond) }
		key := uuid.NewString()
		hit(h, key)
		if rec = hit(h, key); rec.Code == 429 {
			break
		}
	}
	want := map[string]string{
		HeaderRetryAfter: "18", HeaderRemaining: "0", HeaderLimit: "1",
		HeaderReset: strconv.FormatInt(end.Unix(), 10), HeaderPolicy: "1;w=60",
		HeaderRateLimit: "limit=1, remaining=0, reset=18",
	}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(rec.Body.String(), `"code":"RATE_LIMIT_EXCEEDED"`) {
		t.Fatalf("body %s", rec.Body)
	}
}

func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(redistest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestRedisCounterIsSharedBetweenReplicas(t *testing.T) {
	t.Parallel()
	client := startRedis(t)
	prefix := "test:" + uuid.NewString()
	limit := Limit{Requests: 3, Window: time.Hour}
	// Two gateway replicas, each with its own counter object over the same Redis.
	a := New(ClassGeneral, limit, byHeader, NewRedisCounter(client, prefix, logging.Discard()), logging.Discard()).Handler(ok)
	b := New(ClassGeneral, limit, byHeader, NewRedisCounter(client, prefix, logging.Discard()), logging.Discard()).Handler(ok)
	got := statuses(t, time.Hour, 5, func(key string, i int) int {
		if i%2 == 0 {
			return hit(a, key).Code
		}
		return hit(b, key).Code
	})
	if fmt.Sprint(got) != "[200 200 200 429 429]" {
		t.Fatalf("statuses across replicas %v", got)
	}
	keys, err := client.Keys(context.Background(), prefix+":*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		ttl, err := client.PTTL(context.Background(), k).Result()
		if err != nil || ttl <= 0 || ttl > 2*time.Hour {
			t.Fatalf("%s expires in %s (%v): every key must expire with its window", k, ttl, err)
		}
	}
}

func TestRedisDownFallsBackToMemory(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	h := New(ClassAuth, Limit{Requests: 2, Window: time.Hour}, byHeader, NewRedisCounter(client, "down", logging.Discard()), logging.Discard()).Handler(ok)
	got := statuses(t, time.Hour, 3, func(key string, _ int) int { return hit(h, key).Code })
	if fmt.Sprint(got) != "[200 200 429]" {
		t.Fatalf("statuses with Redis down %v: the API must stay up and limited per replica", got)
	}
}

// Concurrent requests of one key get exactly the limit through: the count a request sees
// is the one its own increment made, in memory and in Redis alike.
func TestConcurrentRequestsGetExactlyTheLimit(t *testing.T) {
	t.Parallel()
	client := startRedis(t)
	for _, tc := range []struct {
		name    string
		counter Counter
	}{
		{"memory", NewMemoryCounter()},
		{"redis", NewRedisCounter(client, "test:"+uuid.NewString(), logging.Discard())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const limit, senders, each = 50, 16, 10
			h := New(ClassGeneral, Limit{Requests: limit, Window: time.Hour}, byHeader, tc.counter, logging.Discard()).Handler(ok)
			got := statuses(t, time.Hour, 1, func(key string, _ int) int {
				var wg sync.WaitGroup
				var allowed atomic.Int64
				for range senders {
					wg.Go(func() {
						for range each {
							if hit(h, key).Code == http.StatusOK {
								allowed.Add(1)
							}
						}
					})
				}
				wg.Wait()
				return int(allowed.Load())
			})
			if got[0] != limit {
				t.Fatalf("%d of %d concurrent requests allowed, want %d", got[0], senders*each, limit)
			}
		})
	}
}
