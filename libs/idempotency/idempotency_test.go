package idempotency_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/idempotency"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const schema = "idem_test"

// migrate prepares the template: the package's table plus a table the test handlers
// write one row per run to, so "ran once" is counted in the database.
func migrate(ctx context.Context, url string) error {
	pool, err := pg.Open(ctx, pg.Config{URL: url, Schema: schema})
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := idempotency.Migrate(ctx, pool, schema); err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `CREATE TABLE runs (id bigserial PRIMARY KEY, user_id text NOT NULL, body text NOT NULL)`)
	return err
}

type fixture struct {
	pool  *pgxpool.Pool
	url   string
	clock *clock.Fake
}

const userHeader = "X-Test-User"

// setup serves handler behind the middleware (and the request-id and recovery layers a
// service puts outside it). The test's user comes from a header.
func setup(t *testing.T, cfg idempotency.Config, handler http.HandlerFunc) fixture {
	t.Helper()
	pool := pgtest.NewPool(t, "idempotency", schema, migrate)
	fc := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	if cfg.Clock == nil {
		cfg.Clock = fc
	}
	mw := idempotency.New(pool, cfg, func(r *http.Request) string { return r.Header.Get(userHeader) })
	h := httpx.RequestID(logging.Discard())(httpx.Recover(mw(handler)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return fixture{pool: pool, url: srv.URL, clock: fc}
}

// recordRun is what every test handler does first: one row per run.
func recordRun(t *testing.T, pool *pgxpool.Pool, r *http.Request) (id int64, body string) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("handler read body: %v", err)
	}
	if err := pool.QueryRow(r.Context(), `INSERT INTO runs (user_id, body) VALUES ($1, $2) RETURNING id`,
		r.Header.Get(userHeader), string(b)).Scan(&id); err != nil {
		t.Errorf("handler insert: %v", err)
	}
	return id, string(b)
}

func runs(t *testing.T, f fixture) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM runs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// created answers 201 with a custom header and a body that differs on every run.
func created(t *testing.T, pool **pgxpool.Pool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, body := recordRun(t, *pool, r)
		w.Header().Set("X-Custom", "kept")
		w.Header().Set("Location", fmt.Sprintf("/things/%d", id))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"data":{"id":%d,"echo":%q,"at":%q}}`+"\n", id, body, time.Now().Format(time.RFC3339Nano))
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) replayed() bool {
	return r.header.Get(idempotency.HeaderReplayed) == "true" && r.header.Get(idempotency.HeaderReplayedLegacy) == "true"
}

func (r response) code() apperr.Code {
	var env httpx.ErrorBody
	_ = json.Unmarshal(r.body, &env)
	return env.Error.Code
}

type req struct {
	method, path, user, key, body string
	noKey                         bool
}

func do(t *testing.T, f fixture, q req) response {
	t.Helper()
	if q.method == "" {
		q.method = http.MethodPost
	}
	if q.path == "" {
		q.path = "/things"
	}
	r, err := http.NewRequest(q.method, f.url+q.path, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(userHeader, q.user)
	if !q.noKey {
		r.Header.Set(idempotency.HeaderKey, q.key)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func newReq() req {
	return req{user: uuid.NewString(), key: uuid.NewString(), body: `{"title":"buy milk"}`}
}

func TestReplayIsByteForByteWithStatusAndHeaders(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	f := setup(t, idempotency.Config{}, created(t, &pool))
	pool = f.pool
	q := newReq()

	first := do(t, f, q)
	if first.status != http.StatusCreated || first.replayed() || first.header.Get(idempotency.HeaderReplayed) != "" {
		t.Fatalf("first = %d %v", first.status, first.header)
	}
	second := do(t, f, q)
	if second.status != http.StatusCreated || !second.replayed() {
		t.Fatalf("second = %d %v, want 201 replayed", second.status, second.header)
	}
	if !bytes.Equal(first.body, second.body) {
		t.Fatalf("replayed body differs:\n%s\n%s", first.body, second.body)
	}
	for _, h := range []string{"X-Custom", "Location", "Content-Type"} {
		if first.header.Get(h) != second.header.Get(h) {
			t.Fatalf("header %s: %q then %q", h, first.header.Get(h), second.header.Get(h))
		}
	}
	// The replay has its own request id, not the stored one.
	if second.header.Get(httpx.RequestIDHeader) == first.header.Get(httpx.RequestIDHeader) {
		t.Fatal("the replay repeated the first request's X-Request-ID")
	}
	if n := runs(t, f); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestHandlerReadsTheWholeBody(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	f := setup(t, idempotency.Config{}, created(t, &pool))
	pool = f.pool
	q := newReq()
	q.body = `{"title":"` + strings.Repeat("x", 100_000) + `"}`
	do(t, f, q)
	var body string
	if err := f.pool.QueryRow(context.Background(), `SELECT body FROM runs`).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if body != q.body {
		t.Fatalf("handler saw %d bytes, want %d", len(body), len(q.body))
	}
}

func TestSameKeyWithAnotherRequestIs422(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	f := setup(t, idempotency.Config{}, created(t, &pool))
	pool = f.pool
	q := newReq()
	if r := do(t, f, q); r.status != http.StatusCreated {
		t.Fatalf("first = %d", r.status)
	}
	tests := []struct {
		name string
		edit func(*req)
	}{
		{"different body", func(r *req) { r.body = `{"title":"buy bread"}` }},
		{"same JSON, other bytes", func(r *req) { r.body = `{"title": "buy milk"}` }},
		{"different path", func(r *req) { r.path = "/others" }},
		{"different query", func(r *req) { r.path = "/things?force=true" }},
		{"different method", func(r *req) { r.method = http.MethodPut }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := q
			tt.edit(&other)
			r := do(t, f, other)
			if r.status != http.StatusUnprocessableEntity || r.code() != apperr.IdempotencyKeyReused {
				t.Fatalf("got %d %s, want 422 IDEMPOTENCY_KEY_REUSED", r.status, r.body)
			}
		})
	}
	if n := runs(t, f); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// blocking is a handler that records its run, then waits until release is closed.
func blocking(t *testing.T, pool **pgxpool.Pool, started chan<- struct{}, release <-chan struct{}) http.HandlerFunc {
	inner := created(t, pool)
	return func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		inner(w, r)
	}
}

func TestInFlightIs409ThenReplay(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}, 1), make(chan struct{})
	var pool *pgxpool.Pool
	f := setup(t, idempotency.Config{}, blocking(t, &pool, started, release))
	pool = f.pool
	q := newReq()

	first := make(chan response, 1)
	go func() { first <- do(t, f, q) }()
	<-started
	r := do(t, f, q)
	if r.status != http.StatusConflict || r.code() != apperr.IdempotencyInProgress {
		t.Fatalf("while in flight: %d %s, want 409 IDEMPOTENCY_IN_PROGRESS", r.status, r.body)
	}
	// A different request with the key is still a reuse, even while the first runs.
	other := q
	other.body = `{"title":"other"}`
	if r := do(t, f, other); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("other body while in flight: %d, want 422", r.status)
	}
	close(release)
	orig := <-first
	if orig.status != http.StatusCreated {
		t.Fatalf("first = %d", orig.status)
	}
	if r := do(t, f, q); !r.replayed() || !bytes.Equal(r.body, orig.body) {
		t.Fatalf("after: %d replayed=%v", r.status, r.replayed())
	}
}

func TestServerErrorIsNotStoredAndClientErrorIs(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		status = []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusBadRequest, http.StatusOK}
		pool   *pgxpool.Pool
	)
	f := setup(t, idempotency.Config{}, func(w http.ResponseWriter, r *http.Request) {
		id, _ := recordRun(t, pool, r)
		mu.Lock()
		s := status[0]
		status = status[1:]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s)
		fmt.Fprintf(w, `{"run":%d}`, id)
	})
	pool = f.pool
	q := newReq()
	for i, want := range []int{500, 503, 400} {
		r := do(t, f, q)
		if r.status != want || r.replayed() {
			t.Fatalf("try %d: %d replayed=%v, want %d fresh", i+1, r.status, r.replayed(), want)
		}
	}
	// The 400 was stored: the retry replays it and the handler (now answering 200)
	// does not run.
	r := do(t, f, q)
	if r.status != http.StatusBadRequest || !r.replayed() || string(r.body) != `{"run":3}` {
		t.Fatalf("after 400: %d replayed=%v %s", r.status, r.replayed(), r.body)
	}
	if n := runs(t, f); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}
}

func TestPanicReleasesTheKey(t *testing.T) {
	t.Parallel()
	var (
		pool     *pgxpool.Pool
		mu       sync.Mutex
		panicked bool
	)
	f := setup(t, idempotency.Config{}, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := !panicked
		panicked = true
		mu.Unlock()
		if first {
			panic("handler bug")
		}
		created(t, &pool)(w, r)
	})
	pool = f.pool
	q := newReq()
	if r := do(t, f, q); r.status != http.StatusInternalServerError {
		t.Fatalf("panic: %d", r.status)
	}
	if r := do(t, f, q); r.status != http.StatusCreated || r.replayed() {
		t.Fatalf("retry after panic: %d replayed=%v", r.status, r.replayed())
	}
}

func TestExpiredKeyIsIgnoredAndPurged(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	f := setup(t, idempotency.Config{TTL: time.Hour}, created(t, &pool))
	pool = f.pool
	q := newReq()
	first := do(t, f, q)

	f.clock.Advance(59 * time.Minute)
	if r := do(t, f, q); !r.replayed() {
		t.Fatal("replay within the TTL expected")
	}
	n, err := idempotency.Purge(context.Background(), f.pool, f.clock.Now())
	if err != nil || n != 0 {
		t.Fatalf("purge before expiry: %d, %v", n, err)
	}

	f.clock.Advance(time.Minute)
	second := do(t, f, q)
	if second.status != http.StatusCreated || second.replayed() || bytes.Equal(first.body, second.body) {
		t.Fatalf("after expiry: %d replayed=%v; want a fresh run", second.status, second.replayed())
	}
	// Reused with another body after expiry is a new request too, not a 422.
	f.clock.Advance(time.Hour)
	other := q
	other.body = `{"title":"new"}`
	if r := do(t, f, other); r.status != http.StatusCreated || r.replayed() {
		t.Fatalf("other body after expiry: %d", r.status)
	}
	if n := runs(t, f); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}

	// Another user's live key is not purged.
	do(t, f, newReq())
	n, err = idempotency.Purge(context.Background(), f.pool, f.clock.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("purge: %d, %v; want 2", n, err)
	}
	n, err = idempotency.Purge(context.Background(), f.pool, f.clock.Now().Add(time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("second purge: %d, %v; want 0", n, err)
	}
}

func TestStaleLockIsTakenOver(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}, 2), make(chan struct{})
	var pool *pgxpool.Pool
	f := setup(t, idempotency.Config{StaleLock: time.Minute}, blocking(t, &pool, started, release))
	pool = f.pool
	q := newReq()

	// The first owner hangs (as if its process died mid-request).
	first := make(chan response, 1)
	go func() { first <- do(t, f, q) }()
	<-started
	f.clock.Advance(59 * time.Second)
	if r := do(t, f, q); r.status != http.StatusConflict {
		t.Fatalf("before the lock is stale: %d, want 409", r.status)
	}
	f.clock.Advance(2 * time.Second)
	second := make(chan response, 1)
	go func() { second <- do(t, f, q) }()
	<-started // the retry took the key over and runs
	close(release)
	took := <-second
	<-first
	if took.status != http.StatusCreated {
		t.Fatalf("takeover: %d", took.status)
	}
	// The response kept is the one of the request that owned the key at the end.
	r := do(t, f, q)
	if !r.replayed() || !bytes.Equal(r.body, took.body) {
		t.Fatalf("replay after takeover: replayed=%v body %s, want %s", r.replayed(), r.body, took.body)
	}
}

func TestFiftyConcurrentIdenticalRequestsRunOnce(t *testing.T) {
	t.Parallel()
	const n = 50
	answered := make(chan struct{}, n)
	var pool *pgxpool.Pool
	inner := created(t, &pool)
	// The one request that gets to run holds on until all the others have been answered,
	// so every duplicate provably arrives while it is in flight.
	f := setup(t, idempotency.Config{}, func(w http.ResponseWriter, r *http.Request) {
		for range n - 1 {
			select {
			case <-answered:
			case <-time.After(20 * time.Second):
				t.Error("the duplicates were not answered while the first ran")
			}
		}
		inner(w, r)
	})
	pool = f.pool
	q := newReq()

	results := make(chan response, n)
	var start sync.WaitGroup
	start.Add(1)
	for range n {
		go func() {
			start.Wait()
			r := do(t, f, q)
			if r.status == http.StatusConflict {
				answered <- struct{}{}
			}
			results <- r
		}()
	}
	start.Done()
	var createdN, conflicts int
	for range n {
		r := <-results
		switch {
		case r.status == http.StatusCreated && !r.replayed():
			createdN++
		case r.status == http.StatusConflict && r.code() == apperr.IdempotencyInProgress:
			conflicts++
		default:
			t.Errorf("unexpected answer %d %s", r.status, r.body)
		}
	}
	if createdN != 1 || conflicts != n-1 {
		t.Fatalf("%d created, %d conflicts; want 1 and %d", createdN, conflicts, n-1)
	}
	if got := runs(t, f); got != 1 {
		t.Fatalf("handler ran %d times, want 1", got)
	}
	if r := do(t, f, q); !r.replayed() {
		t.Fatal("after the burst the key replays")
	}
}

func TestFiftyConcurrentIdenticalRequestsFreeRunning(t *testing.T) {
	t.Parallel()
	const n = 50
	var pool *pgxpool.Pool
	f := setup(t, idempotency.Config{}, created(t, &pool))
	pool = f.pool
	q := newReq()
	results := make(chan response, n)
	for range n {
		go func() { results <- do(t, f, q) }()
	}
	var original []byte
	var replays, conflicts int
	all := make([]response, 0, n)
	for range n {
		r := <-results
		all = append(all, r)
		switch {
		case r.status == http.StatusCreated && !r.replayed():
			if original != nil {
				t.Fatal("two requests ran the handler")
			}
			original = r.body
		case r.status == http.StatusCreated && r.replayed():
			replays++
		case r.status == http.StatusConflict:
			conflicts++
		default:
			t.Fatalf("unexpected answer %d %s", r.status, r.body)
		}
	}
	for _, r := range all {
		if r.replayed() && !bytes.Equal(r.body, original) {
			t.Fatal("a replay differs from the original")
		}
	}
	if got := runs(t, f); got != 1 || original == nil {
		t.Fatalf("handler ran %d times, want 1", got)
	}
	t.Logf("1 original, %d replays, %d conflicts", replays, conflicts)
}

func TestUsersWithTheSameKeyAreIndependent(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	f := setup(t, idempotency.Config{}, created(t, &pool))
	pool = f.pool
	a := newReq()
	b := a
	b.user = uuid.NewString()
	b.body = `{"title":"something else"}`
	ra, rb := do(t, f, a), do(t, f, b)
	if ra.status != http.StatusCreated || rb.status != http.StatusCreated || rb.replayed() {
		t.Fatalf("a %d, b %d replayed=%v", ra.status, rb.status, rb.replayed())
	}
	if r := do(t, f, a); !bytes.Equal(r.body, ra.body) {
		t.Fatal("a's replay is not a's response")
	}
	if r := do(t, f, b); !bytes.Equal(r.body, rb.body) {
		t.Fatal("b's replay is not b's response")
	}
	if n := runs(t, f); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
}

func TestKeyRules(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	optional := setup(t, idempotency.Config{}, created(t, &pool))
	required := setup(t, idempotency.Config{Required: true}, created(t, &pool))
	pool = optional.pool // both handlers count in the first fixture's database
	user := uuid.NewString()
	tests := []struct {
		name       string
		f          fixture
		q          req
		wantStatus int
		wantCode   apperr.Code
	}{
		{"missing and required", required, req{user: user, noKey: true, body: "{}"}, 400, apperr.IdempotencyKeyRequired},
		{"empty", required, req{user: user, key: "", body: "{}"}, 400, apperr.Validation},
		{"too long", optional, req{user: user, key: strings.Repeat("k", 256), body: "{}"}, 400, apperr.Validation},
		{"not ASCII", optional, req{user: user, key: "ключ", body: "{}"}, 400, apperr.Validation},
		{"longest allowed", optional, req{user: user, key: strings.Repeat("k", 255), body: "{}"}, 201, ""},
		{"printable with spaces", optional, req{user: user, key: "a key: #1 (retry)", body: "{}"}, 201, ""},
		{"missing and optional", optional, req{user: user, noKey: true, body: "{}"}, 201, ""},
		{"GET is not covered even when required", required, req{method: http.MethodGet, user: user, noKey: true}, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.f, tt.q)
			if r.status != tt.wantStatus || tt.wantCode != "" && r.code() != tt.wantCode {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	// Without a key nothing is remembered: the same request runs every time.
	q := req{user: user, noKey: true, body: `{"x":1}`}
	do(t, optional, q)
	if r := do(t, optional, q); r.replayed() {
		t.Fatal("a request without a key was replayed")
	}
}

func TestStreamingPassesThroughAndReplaysTheWholeStream(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	firstSeen := make(chan struct{})
	f := setup(t, idempotency.Config{}, func(w http.ResponseWriter, r *http.Request) {
		recordRun(t, pool, r)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: chunk\ndata: {\"text\":\"Hel\"}\n\n")
		http.NewResponseController(w).Flush()
		// The client must get the first event before the handler goes on: nothing is
		// buffered until the end.
		select {
		case <-firstSeen:
		case <-time.After(10 * time.Second):
			t.Error("first event did not reach the client while the stream was open")
		}
		fmt.Fprint(w, "event: chunk\ndata: {\"text\":\"lo\"}\n\nevent: final\ndata: {\"credits_used\":1}\n\n")
	})
	pool = f.pool
	q := newReq()

	r, err := http.NewRequest(http.MethodPost, f.url+"/ai/chat/stream", strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set(userHeader, q.user)
	r.Header.Set(idempotency.HeaderKey, q.key)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "event: chunk\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(firstSeen)
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	whole := line + string(rest)

	q.path = "/ai/chat/stream"
	replay := do(t, f, q)
	if !replay.replayed() || string(replay.body) != whole || replay.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("replay %d %q (%s), want the whole stream %q", replay.status, replay.body, replay.header.Get("Content-Type"), whole)
	}
	if n := runs(t, f); n != 1 {
		t.Fatalf("handler ran %d times", n)
	}
}

func TestForgetReleasesTheKey(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	forgot := make(chan bool, 2)
	f := setup(t, idempotency.Config{}, func(w http.ResponseWriter, r *http.Request) {
		recordRun(t, pool, r)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: error\ndata: {\"code\":\"AI_SERVICE_UNAVAILABLE\"}\n\n")
		forgot <- idempotency.Forget(r.Context())
	})
	pool = f.pool
	q := newReq()
	for i := range 2 {
		if r := do(t, f, q); r.status != http.StatusOK || r.replayed() {
			t.Fatalf("try %d: %d replayed=%v", i+1, r.status, r.replayed())
		}
		if !<-forgot {
			t.Fatal("Forget said the request had no key")
		}
	}
	if n := runs(t, f); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
	if idempotency.Forget(context.Background()) {
		t.Fatal("Forget outside the middleware reported true")
	}
}

func TestMigrateNeedsTheSchemaOnTheSearchPath(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, "idempotency_empty", func(context.Context, string) error { return nil })
	ctx := context.Background()
	pool, err := pg.Open(ctx, pg.Config{URL: url, Schema: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := idempotency.Migrate(ctx, pool, "idem_other"); err == nil {
		t.Fatal("Migrate into a schema that is not the pool's search_path succeeded")
	}
	// Twice into the right one is fine, and coexists with the service's own history.
	if err := idempotency.Migrate(ctx, pool, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	if err := idempotency.Migrate(ctx, pool, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM elsewhere.`+idempotency.VersionTable).Scan(&n); err != nil || n == 0 {
		t.Fatalf("version table: %d rows, %v", n, err)
	}
}
