package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/idempotency"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
	"github.com/perpetua-flow/backend/libs/telemetry"

	"github.com/perpetua-flow/backend/services/tasks/internal/httpapi"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// benchClients is the number of concurrent clients (the 64 connections).
const benchClients = 64

// benchPoolSize is DATABASE_MAX_CONNS's default (libs/svc).
const benchPoolSize = 20

// roundTrips counts what the service sends to Postgres and waits for: each query (begin
// and commit included) and each batch, which is one round trip however many queries it
// holds.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// benchEnv is the service's HTTP handler as run.go builds it (request id, metrics,
// security headers, recovery, body limit, token verification, idempotency) over a
// migrated database, without a listener: requests go straight to ServeHTTP.
type benchEnv struct {
	h      http.Handler
	issuer *authntest.Issuer
	rt     *roundTrips
	pool   *pgxpool.Pool
}

func setupBench(b *testing.B) *benchEnv {
	b.Helper()
	ctx := context.Background()
	u := pgtest.NewDatabase(b, "tasks_httpapi", func(ctx context.Context, u string) error {
		pool, err := pg.Open(ctx, pg.Config{URL: u, Schema: "tasks", MaxConns: 2})
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := pg.MigratePool(ctx, pool, "tasks", migrations.FS, nil); err != nil {
			return err
		}
		if err := events.Migrate(ctx, pool, "tasks"); err != nil {
			return err
		}
		return idempotency.Migrate(ctx, pool, "tasks")
	})
	// The production pool settings (libs/pg), plus a round-trip counter.
	pc, err := pg.PoolConfig(pg.Config{URL: u, Schema: "tasks", MaxConns: benchPoolSize})
	if err != nil {
		b.Fatal(err)
	}
	rt := &roundTrips{}
	pc.ConnConfig.Tracer = rt
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	emit := func(ctx context.Context, tx pgx.Tx, typ, userID string, data any) error {
		ev, err := events.New(tasksevents.Source, typ, userID, data)
		if err != nil {
			return err
		}
		return events.Enqueue(ctx, tx, ev)
	}
	st := store.New(pool, clock.System{}, emit)
	issuer := authntest.NewIssuer(b)
	logger := logging.Discard()
	api := httpapi.Routes(httpapi.Config{
		Store: st, Auth: authn.Middleware(issuer.Verifier()), Logger: logger,
		Idempotency: idempotency.New(pool, idempotency.Config{}, httpapi.UserID),
	})
	root := chi.NewRouter()
	root.Use(httpx.RequestID(logger), telemetry.HTTPMetrics(prometheus.NewRegistry(), "tasks"), httpx.SecurityHeaders, httpx.Recover, httpx.LimitBody)
	root.Mount("/api/v1", api)
	return &benchEnv{h: root, issuer: issuer, rt: rt, pool: pool}
}

// do serves one request and checks its status.
func (e *benchEnv) do(method, path, bearer, body string, want int) (string, error) {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", bearer)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != want {
		return "", fmt.Errorf("%s %s: status %d, want %d: %s", method, path, w.Code, want, w.Body)
	}
	return w.Body.String(), nil
}

func (e *benchEnv) must(b *testing.B, method, path, bearer, body string, want int) string {
	b.Helper()
	out, err := e.do(method, path, bearer, body, want)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// idOf is the "id" of a {"data": {...}} answer.
func idOf(b *testing.B, body string) string {
	b.Helper()
	const key = `"id":"`
	i := strings.Index(body, key)
	if i < 0 || len(body) < i+len(key)+36 {
		b.Fatalf("no id in %s", body)
	}
	return body[i+len(key) : i+len(key)+36]
}

// cpuTime is the CPU time this process has used (user and system): ns/op under a busy
// shared machine mostly measures the wait for a core, CPU per operation what it costs.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU is the CPU time each server process of this benchmark's database has used,
// by pid (from /proc: the server runs on this machine, and its processes' stat files are
// readable by anyone; clock ticks of 10 ms, so use a -benchtime of seconds).
func (e *benchEnv) postgresCPU(b *testing.B) map[int]time.Duration {
	rows, err := e.pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone meanwhile
		}
		// Fields after the command (which may hold spaces) in parentheses: utime and
		// stime are the 14th and 15th of the line.
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[int(pid)] = time.Duration(ut+st) * 10 * time.Millisecond
	}
	return out
}

// parallel runs fn from benchClients goroutines and reports, per operation, the database
// round trips, the CPU time of this process (the handler, pgx and the test's requests)
// and that of the Postgres server processes serving it.
func (e *benchEnv) parallel(b *testing.B, fn func() error) {
	b.Helper()
	for range benchClients { // warm: connections open, statements prepared
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	start, cpu, pgCPU := e.rt.n.Load(), cpuTime(b), e.postgresCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := fn(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(e.rt.n.Load()-start)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	var pgUsed time.Duration
	for pid, d := range e.postgresCPU(b) {
		pgUsed += d - pgCPU[pid]
	}
	b.ReportMetric(float64(pgUsed.Microseconds())/float64(b.N), "pg-cpu-µs/op")
}

// BenchmarkGetTask is GET /tasks/{id} of a task with 5 subtasks and 2 reminders.
func BenchmarkGetTask(b *testing.B) {
	e := setupBench(b)
	bearer := "Bearer " + e.issuer.Token(b, "", authn.TierPro)
	id := idOf(b, e.must(b, "POST", "/api/v1/tasks", bearer, fmt.Sprintf(`{"title":"bench","description":"a task of a usual size","due_date":%q}`, time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339)), 201))
	for i := range 5 {
		e.must(b, "POST", "/api/v1/tasks/"+id+"/subtasks", bearer, fmt.Sprintf(`{"title":"step %d"}`, i), 201)
	}
	for _, m := range []int{10, 60} {
		e.must(b, "POST", "/api/v1/tasks/"+id+"/reminders", bearer, fmt.Sprintf(`{"type":"before","offset_minutes":%d}`, m), 201)
	}
	e.parallel(b, func() error {
		_, err := e.do("GET", "/api/v1/tasks/"+id, bearer, "", 200)
		return err
	})
}

// BenchmarkListTasks is GET /tasks?limit=25 of a user with 100 tasks.
func BenchmarkListTasks(b *testing.B) {
	e := setupBench(b)
	bearer := "Bearer " + e.issuer.Token(b, "", authn.TierPro)
	for i := range 100 {
		e.must(b, "POST", "/api/v1/tasks", bearer, fmt.Sprintf(`{"title":"bench %d","description":"a task of a usual size"}`, i), 201)
	}
	e.parallel(b, func() error {
		_, err := e.do("GET", "/api/v1/tasks?limit=25", bearer, "", 200)
		return err
	})
}

// BenchmarkCreateTask is POST /tasks by Pro users: spread over 64 users, and all from one.
func BenchmarkCreateTask(b *testing.B) {
	for _, users := range []int{benchClients, 1} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			e := setupBench(b)
			bearers := make([]string, users)
			for i := range bearers {
				bearers[i] = "Bearer " + e.issuer.Token(b, uuid.NewString(), authn.TierPro)
			}
			var next atomic.Int64
			e.parallel(b, func() error {
				bearer := bearers[int(next.Add(1))%len(bearers)]
				_, err := e.do("POST", "/api/v1/tasks", bearer, `{"title":"bench"}`, 201)
				return err
			})
		})
	}
}
