package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/natsx"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	schema = "evtest"
	stream = "TASKS"
	waitUp = 20 * time.Second
)

type env struct {
	url  string
	pool *pgxpool.Pool
	nc   *nats.Conn
	js   jetstream.JetStream
}

// setup gives the test its own database (outbox, inbox and an effects table in schema
// evtest) and its own JetStream server with the streams of natsx.
func setup(t testing.TB) env {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, "events", func(ctx context.Context, u string) error {
		pool, err := pg.Open(ctx, pg.Config{URL: u, Schema: schema})
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := events.Migrate(ctx, pool, schema); err != nil {
			return err
		}
		// What a consumer's handler changes; no unique key, so a second effect would show.
		_, err = pool.Exec(ctx, `CREATE TABLE evtest.effects (consumer text NOT NULL, event_id text NOT NULL)`)
		return err
	})
	pool := openPool(t, url, false)
	nc, err := nats.Connect(natsembed.StartTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsureStreams(ctx, js, natsx.Config{}); err != nil {
		t.Fatal(err)
	}
	return env{url: url, pool: pool, nc: nc, js: js}
}

func openPool(t testing.TB, url string, pooler bool) *pgxpool.Pool {
	t.Helper()
	pool, err := pg.Open(context.Background(), pg.Config{URL: url, Schema: schema, MaxConns: 10, Pooler: pooler})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newEvent(t testing.TB, typ string) events.Event {
	t.Helper()
	ev, err := events.New("perpetua/test", typ, uuid.NewString(), map[string]string{"note": "hello"})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// enqueue commits n events in one transaction and returns them.
func enqueue(t testing.TB, ctx context.Context, pool *pgxpool.Pool, n int) []events.Event {
	t.Helper()
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = newEvent(t, "tasks.test.happened")
	}
	if err := pg.InTx(ctx, pool, func(tx pgx.Tx) error { return events.Enqueue(ctx, tx, evs...) }); err != nil {
		t.Fatal(err)
	}
	return evs
}

// enqueuePlain commits n events in a plain pgx transaction (no commit hooks: Enqueue
// notifies) and returns them.
func enqueuePlain(t testing.TB, ctx context.Context, db pg.TxBeginner, n int) []events.Event {
	t.Helper()
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = newEvent(t, "tasks.test.happened")
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := events.Enqueue(ctx, tx, evs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return evs
}

// start runs a worker until the test ends and checks that it stops cleanly (nil).
func start(t testing.TB, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("worker returned %v, want nil after cancel", err)
				}
			case <-time.After(waitUp):
				t.Errorf("worker did not stop within %v", waitUp)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitUp)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func streamMsgs(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func unpublished(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func effects(t testing.TB, pool *pgxpool.Pool, consumer, eventID string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM effects WHERE consumer = $1 AND event_id = $2`, consumer, eventID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// recordEffect is a TxHandler whose effect is one row in effects.
func recordEffect(consumer string) events.TxHandler {
	return func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
		_, err := tx.Exec(ctx, `INSERT INTO effects (consumer, event_id) VALUES ($1, $2)`, consumer, ev.ID)
		return err
	}
}

func newRelay(e env, cfg events.RelayConfig) *events.Relay {
	return events.NewRelay(e.pool, e.js, cfg, logging.Discard())
}

func metrics(t testing.TB) *events.Metrics {
	t.Helper()
	m, err := events.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewMakesACloudEventsEnvelope(t *testing.T) {
	t.Parallel()
	userID := uuid.NewString()
	ev, err := events.New("perpetua/tasks", "tasks.task.completed", userID, map[string]any{"task_id": "t1", "n": 3})
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(ev.ID)
	if err != nil || id.Version() != 7 {
		t.Fatalf("id %q: version %v, err %v; want a UUID v7", ev.ID, id.Version(), err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"specversion": "1.0", "id": ev.ID, "source": "perpetua/tasks", "type": "tasks.task.completed",
		"subject": userID, "datacontenttype": "application/json",
	}
	for k, v := range want {
		if wire[k] != v {
			t.Errorf("%s = %v, want %v", k, wire[k], v)
		}
	}
	ts, _ := wire["time"].(string)
	if parsed, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Since(parsed) > time.Minute {
		t.Errorf("time %q: want RFC 3339 in UTC, now (err %v)", ts, err)
	}

	back, err := events.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		TaskID string `json:"task_id"`
		N      int    `json:"n"`
	}
	if err := back.Decode(&data); err != nil || data.TaskID != "t1" || data.N != 3 {
		t.Fatalf("Decode = %+v, %v", data, err)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The wire form of the envelope is a contract with every consumer: a change shows here.
func TestEnvelopeWireFormat(t *testing.T) {
	t.Parallel()
	ev := events.Event{
		SpecVersion:     events.SpecVersion,
		ID:              "0192f5c6-7d1e-7a3b-8c4d-5e6f7a8b9c0d",
		Source:          "perpetua/tasks",
		Type:            "tasks.task.completed",
		Subject:         "7b0c3c1e-2f7d-4a55-9a43-0d7f3c1d2e4f",
		Time:            time.Date(2026, 3, 1, 12, 30, 0, 123456000, time.UTC),
		DataContentType: events.ContentTypeJSON,
		Data:            json.RawMessage(`{"task_id":"t1"}`),
	}
	got, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const golden = "testdata/envelope.golden"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestEnvelopeWireFormat -update)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("envelope changed:\n%s\nwant:\n%s", got, want)
	}
}

func TestInvalidEventsAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, source, typ string }{
		{"empty type", "perpetua/x", ""},
		{"wildcard type", "perpetua/x", "tasks.*"},
		{"empty token", "perpetua/x", "tasks..done"},
		{"space", "perpetua/x", "tasks.task done"},
		{"no source", "", "tasks.task.done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := events.New(tc.source, tc.typ, "u", struct{}{}); err == nil {
				t.Fatal("want an error")
			}
		})
	}
	if _, err := events.Parse([]byte(`{"specversion":"0.3","id":"x","source":"s","type":"a.b","time":"2026-01-01T00:00:00Z"}`)); err == nil {
		t.Fatal("Parse accepted specversion 0.3")
	}
}

func TestCommittedEventIsPublishedWithMsgIDAndTraceContext(t *testing.T) {
	t.Parallel()
	e := setup(t)
	traceID := trace.TraceID(uuid.New())
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	ev := enqueue(t, ctx, e.pool, 1)[0]

	m := metrics(t)
	start(t, newRelay(e, events.RelayConfig{Metrics: m}).Run)
	eventually(t, "the row marked published", func() bool { return unpublished(t, e.pool) == 0 })

	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, ev.Type)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get(jetstream.MsgIDHeader); got != ev.ID {
		t.Errorf("Nats-Msg-Id = %q, want %q", got, ev.ID)
	}
	if tp := raw.Header.Get("traceparent"); !strings.Contains(tp, traceID.String()) {
		t.Errorf("traceparent = %q, want trace %s", tp, traceID)
	}
	got, err := events.Parse(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Subject != ev.Subject || !got.Time.Equal(ev.Time) || string(got.Data) != `{"note": "hello"}` && string(got.Data) != `{"note":"hello"}` {
		t.Errorf("published %+v, want %+v", got, ev)
	}
	// Counted after the relay's commit: wait for it rather than race it.
	eventually(t, "the published counter", func() bool { return testutil.ToFloat64(m.Published) >= 1 })
	if v := testutil.ToFloat64(m.Published); v != 1 {
		t.Errorf("published counter = %v, want 1", v)
	}

	// The consumer sees the producer's trace.
	seen := make(chan trace.TraceID, 1)
	c, err := events.NewPlainConsumer(e.pool, e.js, events.ConsumerConfig{Stream: stream, Durable: "evtest-trace"},
		func(ctx context.Context, ev events.Event) error {
			seen <- trace.SpanContextFromContext(ctx).TraceID()
			return nil
		}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	start(t, c.Run)
	select {
	case got := <-seen:
		if got != traceID {
			t.Fatalf("handler trace = %s, want %s", got, traceID)
		}
	case <-time.After(waitUp):
		t.Fatal("handler never ran")
	}
}

func TestRolledBackTransactionEmitsNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	// The ticker never fires: the marker below leaves on its commit's wake-up.
	start(t, newRelay(e, events.RelayConfig{Interval: time.Hour}).Run)

	rolledBack := errors.New("business rule failed")
	err := pg.InTx(ctx, e.pool, func(tx pgx.Tx) error {
		if err := events.Enqueue(ctx, tx, newEvent(t, "tasks.test.rolledback")); err != nil {
			return err
		}
		return rolledBack
	})
	if !errors.Is(err, rolledBack) {
		t.Fatalf("InTx = %v", err)
	}
	// A committed marker after it: once the marker is in the stream, the relay has passed
	// over everything committed before it.
	marker := enqueue(t, ctx, e.pool, 1)[0]
	eventually(t, "the marker published", func() bool { return unpublished(t, e.pool) == 0 && streamMsgs(t, e.js, stream) >= 1 })
	if n := streamMsgs(t, e.js, stream); n != 1 {
		t.Fatalf("stream holds %d messages, want only the marker %s", n, marker.ID)
	}
	var rows int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("outbox rows = %d (%v), want 1", rows, err)
	}
}

// A commit in pg.InTx wakes the relay of this process at once: no ticker fires and no
// NOTIFY is sent (pooler mode: no LISTEN either, so no listener's connect wake-up).
func TestCommitInInTxWakesTheRelay(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	start(t, newRelay(e, events.RelayConfig{Pooler: true, PollInterval: time.Hour, Interval: time.Hour}).Run)
	// The first round may be published by the relay's pass at start; every later one only
	// by a wake-up.
	for round := 1; round <= 3; round++ {
		enqueue(t, ctx, e.pool, 1)
		eventually(t, fmt.Sprintf("round %d published", round), func() bool {
			return unpublished(t, e.pool) == 0 && streamMsgs(t, e.js, stream) == uint64(round)
		})
	}
}

// QueueEnqueue's rows ride the caller's batch: written with it, atomically with the rest
// of the batch, and the commit wakes the relay like Enqueue's.
func TestQueueEnqueueRidesTheCallersBatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	start(t, newRelay(e, events.RelayConfig{Pooler: true, PollInterval: time.Hour, Interval: time.Hour}).Run)

	// A batch whose last statement fails writes none of its outbox rows.
	err := pg.InTx(ctx, e.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		if err := events.QueueEnqueue(ctx, tx, b, newEvent(t, "tasks.test.batch_failed")); err != nil {
			return err
		}
		b.Queue(`SELECT 1/0`)
		return tx.SendBatch(ctx, b).Close()
	})
	if err == nil {
		t.Fatal("a batch dividing by zero succeeded")
	}
	err = pg.InTx(ctx, e.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT 1`)
		if err := events.QueueEnqueue(ctx, tx, b, newEvent(t, "tasks.test.batched"), newEvent(t, "tasks.test.batched")); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	// Only a wake-up can publish: both tickers wait an hour.
	eventually(t, "the batched events published", func() bool { return unpublished(t, e.pool) == 0 && streamMsgs(t, e.js, stream) == 2 })
	var rows int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("outbox rows = %d (%v), want the 2 of the committed batch", rows, err)
	}
	if err := pg.InTx(ctx, e.pool, func(tx pgx.Tx) error {
		return events.QueueEnqueue(ctx, tx, &pgx.Batch{}, events.Event{})
	}); err == nil {
		t.Fatal("an invalid event was queued")
	}
}

// unwrapper is a store's transaction wrapper: embedding pgx.Tx drops AfterCommit, Unwrap
// hands the transaction underneath to pg.HooksOf.
type unwrapper struct{ pgx.Tx }

func (u unwrapper) Unwrap() pgx.Tx { return u.Tx }

// Enqueue in a plain transaction still NOTIFYs the relay's channel; in pg.InTx it does not
// (the in-process wake-up replaces it).
func TestEnqueueNotifiesOnlyWithoutCommitHooks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	connect := func() *pgx.Conn {
		conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		return conn
	}
	listener, hooked, plain := connect(), connect(), connect()
	if _, err := listener.Exec(ctx, "LISTEN "+pgx.Identifier{events.NotifyChannel(schema)}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	if err := pg.InTx(ctx, hooked, func(tx pgx.Tx) error { return events.Enqueue(ctx, tx, newEvent(t, "tasks.test.hooked")) }); err != nil {
		t.Fatal(err)
	}
	// A store's wrapper of that transaction (pg.TxWrapper) must not hide its hooks.
	if err := pg.InTx(ctx, hooked, func(tx pgx.Tx) error {
		return events.Enqueue(ctx, unwrapper{tx}, newEvent(t, "tasks.test.hooked_wrapped"))
	}); err != nil {
		t.Fatal(err)
	}
	enqueuePlain(t, ctx, plain, 1)

	// Notifications arrive in commit order: had either pg.InTx transaction notified, its
	// notification would come first.
	wctx, cancel := context.WithTimeout(ctx, waitUp)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no notification for the plain transaction: %v", err)
	}
	if want := plain.PgConn().PID(); n.PID != want {
		t.Fatalf("first notification from backend %d, want the plain transaction's %d (the pg.InTx one %d must not notify)",
			n.PID, want, hooked.PgConn().PID())
	}
}

// A relay woken by a commit while another replica holds the lock retries until it holds
// the lock itself: the holder's SELECT may have run before the commit. The ticker never
// fires and nothing else wakes it.
//
// Not parallel: every commit in this process wakes every relay, so other tests' commits
// would wake this one too and hide a missing retry.
func TestWokenRelayRetriesWhileTheLockIsHeld(t *testing.T) {
	e := setup(t)
	ctx := context.Background()

	holder, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Rollback(context.Background()) })
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, events.RelayLockKey(schema)); err != nil {
		t.Fatal(err)
	}

	var busy atomic.Int64
	relay := newRelay(e, events.RelayConfig{Pooler: true, PollInterval: time.Hour, Interval: time.Hour})
	events.SetLockBusy(relay, func() { busy.Add(1) })
	start(t, relay.Run)
	eventually(t, "the pass at start to find the lock held", func() bool { return busy.Load() >= 1 })

	enqueue(t, ctx, e.pool, 1)
	// The woken pass and at least one retry find the lock held.
	atCommit := busy.Load()
	eventually(t, "the relay to retry", func() bool { return busy.Load() >= atCommit+2 })
	if n := unpublished(t, e.pool); n != 1 {
		t.Fatalf("%d rows unpublished while the lock is held, want 1", n)
	}

	if err := holder.Commit(ctx); err != nil { // releases the lock
		t.Fatal(err)
	}
	eventually(t, "the event published once the lock is free", func() bool {
		return unpublished(t, e.pool) == 0 && streamMsgs(t, e.js, stream) == 1
	})
}

// The relay is "killed" between publish and mark: it published and got the acks, but the
// mark never committed. A new relay republishes, JetStream drops the duplicates, and the
// consumer applies each event once.
func TestEventSurvivesRelayKilledBetweenPublishAndMark(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	evs := enqueue(t, ctx, e.pool, 5)

	var killed atomic.Int32
	first := newRelay(e, events.RelayConfig{})
	events.SetAfterPublish(first, func(acked []string) error {
		killed.Add(1)
		return errors.New("killed before the mark")
	})
	stopFirst := start(t, first.Run)
	eventually(t, "the first relay to publish", func() bool { return killed.Load() > 0 && streamMsgs(t, e.js, stream) == 5 })
	stopFirst()
	if n := unpublished(t, e.pool); n != 5 {
		t.Fatalf("%d unpublished rows after the kill, want 5 (nothing marked)", n)
	}

	m := metrics(t)
	start(t, newRelay(e, events.RelayConfig{Metrics: m}).Run)
	// The relay counts after its commit, so the rows can read as marked an instant before
	// the counter moves: wait for both.
	eventually(t, "the second relay to mark every row and count the duplicates", func() bool {
		return unpublished(t, e.pool) == 0 && testutil.ToFloat64(m.Duplicates) >= 5
	})
	if n := streamMsgs(t, e.js, stream); n != 5 {
		t.Fatalf("stream holds %d messages, want 5 (the republish deduplicated)", n)
	}
	if d := testutil.ToFloat64(m.Duplicates); d != 5 {
		t.Errorf("duplicates = %v, want 5", d)
	}

	const durable = "evtest-effects"
	c, err := events.NewConsumer(e.pool, e.js, events.ConsumerConfig{Stream: stream, Durable: durable}, recordEffect(durable), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	start(t, c.Run)
	for _, ev := range evs {
		eventually(t, "the effect of "+ev.ID, func() bool { return effects(t, e.pool, durable, ev.ID) > 0 })
	}
	waitAcked(t, e.js, durable)
	for _, ev := range evs {
		if n := effects(t, e.pool, durable, ev.ID); n != 1 {
			t.Errorf("event %s applied %d times, want 1", ev.ID, n)
		}
	}
}

// waitAcked waits until the consumer has nothing pending or unacknowledged.
func waitAcked(t testing.TB, js jetstream.JetStream, durable string) {
	t.Helper()
	eventually(t, durable+" to ack everything", func() bool {
		c, err := js.Consumer(context.Background(), stream, durable)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	})
}

// A transaction that started (and wrote its row) before another committed, but committed
// after the relay had published the other, is still published.
func TestRowCommittedLateIsPublished(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	start(t, newRelay(e, events.RelayConfig{}).Run)

	late, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = late.Rollback(context.Background()) })
	lateEv := newEvent(t, "tasks.test.late")
	if err := events.Enqueue(ctx, late, lateEv); err != nil {
		t.Fatal(err)
	}

	early := enqueue(t, ctx, e.pool, 1)[0]
	eventually(t, "the early commit published", func() bool { return streamMsgs(t, e.js, stream) == 1 && unpublished(t, e.pool) == 0 })

	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the late commit published", func() bool { return streamMsgs(t, e.js, stream) == 2 && unpublished(t, e.pool) == 0 })

	var lateAt, earlyAt time.Time
	if err := e.pool.QueryRow(ctx, `SELECT created_at FROM outbox WHERE id = $1`, lateEv.ID).Scan(&lateAt); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.QueryRow(ctx, `SELECT created_at FROM outbox WHERE id = $1`, early.ID).Scan(&earlyAt); err != nil {
		t.Fatal(err)
	}
	if !lateAt.Before(earlyAt) {
		t.Fatalf("test premise: the late row's created_at %v should precede the early row's %v", lateAt, earlyAt)
	}
}

func TestRelayInPoolerModeDeliversWithoutListen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	pooled := openPool(t, e.url, true)
	relay := events.NewRelay(pooled, e.js, events.RelayConfig{Pooler: true, PollInterval: 20 * time.Millisecond}, logging.Discard())
	start(t, relay.Run)

	evs := enqueue(t, ctx, pooled, 3)
	eventually(t, "pooler-mode relay to publish", func() bool { return unpublished(t, e.pool) == 0 && streamMsgs(t, e.js, stream) == 3 })

	var listeners int
	if err := e.pool.QueryRow(ctx, `
		SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'LISTEN%'`).Scan(&listeners); err != nil {
		t.Fatal(err)
	}
	if listeners != 0 {
		t.Fatalf("%d LISTEN sessions in pooler mode, want 0", listeners)
	}
	const durable = "evtest-pooler"
	c, err := events.NewConsumer(pooled, e.js, events.ConsumerConfig{Stream: stream, Durable: durable}, recordEffect(durable), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	start(t, c.Run)
	for _, ev := range evs {
		eventually(t, "the effect of "+ev.ID, func() bool { return effects(t, e.pool, durable, ev.ID) == 1 })
	}
}

func TestTwoRelaysNeverPublishARowTwice(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	m1, m2 := metrics(t), metrics(t)
	// Small batches so the two relays contend for the lock many times.
	start(t, newRelay(e, events.RelayConfig{BatchSize: 7, Metrics: m1}).Run)
	start(t, newRelay(e, events.RelayConfig{BatchSize: 7, Metrics: m2}).Run)

	const txs, perTx = 30, 10
	var wg sync.WaitGroup
	for range txs {
		wg.Go(func() { enqueue(t, ctx, e.pool, perTx) })
	}
	wg.Wait()
	eventually(t, "every row published and counted", func() bool {
		return unpublished(t, e.pool) == 0 && testutil.ToFloat64(m1.Published)+testutil.ToFloat64(m2.Published) >= txs*perTx
	})

	if n := streamMsgs(t, e.js, stream); n != txs*perTx {
		t.Fatalf("stream holds %d messages, want %d", n, txs*perTx)
	}
	p1, p2 := testutil.ToFloat64(m1.Published), testutil.ToFloat64(m2.Published)
	d1, d2 := testutil.ToFloat64(m1.Duplicates), testutil.ToFloat64(m2.Duplicates)
	if p1+p2 != txs*perTx || d1+d2 != 0 {
		t.Fatalf("relays published %v + %v (duplicates %v + %v), want %d in all and no duplicate", p1, p2, d1, d2, txs*perTx)
	}
}

func TestRelayFlushesPendingRowsWhenStopped(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	// Polling so rarely, and enqueueing in a transaction that wakes no relay (pg_notify to
	// a channel nobody listens on in pooler mode), that only the flush on stop can publish.
	relay := newRelay(e, events.RelayConfig{Pooler: true, PollInterval: time.Hour})
	stop := start(t, relay.Run)
	enqueuePlain(t, ctx, e.pool, 4)
	stop()
	if n := unpublished(t, e.pool); n != 0 {
		t.Fatalf("%d rows unpublished after the relay stopped, want 0", n)
	}
	if n := streamMsgs(t, e.js, stream); n != 4 {
		t.Fatalf("stream holds %d messages, want 4", n)
	}
}

func TestConsumerDeadLettersAfterMaxDeliver(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	start(t, newRelay(e, events.RelayConfig{}).Run)

	tests := []struct {
		name     string
		err      error
		panics   bool
		attempts int
	}{
		{"fails every time", errors.New("downstream is broken"), false, 3},
		{"permanent", events.Permanent(errors.New("payload cannot apply")), false, 1},
		{"panics", errors.New("nil map write"), true, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			durable := "evtest-dl-" + uuid.NewString()[:8]
			typ := "tasks.dl." + strings.ReplaceAll(tc.name, " ", "_")
			var attempts atomic.Int32
			var lastMu sync.Mutex
			var lasts []bool // events.LastAttempt as each attempt saw it
			m := metrics(t)
			c, err := events.NewConsumer(e.pool, e.js, events.ConsumerConfig{
				Stream: stream, Durable: durable, Subjects: []string{typ},
				MaxDeliver: 3, Backoff: []time.Duration{10 * time.Millisecond}, Metrics: m,
			}, func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
				attempts.Add(1)
				lastMu.Lock()
				lasts = append(lasts, events.LastAttempt(ctx))
				lastMu.Unlock()
				if tc.panics {
					panic(tc.err.Error())
				}
				return tc.err
			}, logging.Discard())
			if err != nil {
				t.Fatal(err)
			}
			start(t, c.Run)
			ev := newEvent(t, typ)
			if err := pg.InTx(ctx, e.pool, func(tx pgx.Tx) error { return events.Enqueue(ctx, tx, ev) }); err != nil {
				t.Fatal(err)
			}

			dls, err := e.js.Stream(ctx, natsx.StreamDeadLetter.Name)
			if err != nil {
				t.Fatal(err)
			}
			var dl *jetstream.RawStreamMsg
			eventually(t, "the dead letter", func() bool {
				dl, err = dls.GetLastMsgForSubject(ctx, "deadletter."+durable+"."+typ)
				return err == nil
			})
			waitAcked(t, e.js, durable)
			if got := int(attempts.Load()); got != tc.attempts {
				t.Errorf("handler ran %d times, want %d", got, tc.attempts)
			}
			lastMu.Lock()
			for i, last := range lasts {
				if want := i == 2; last != want {
					t.Errorf("attempt %d: LastAttempt = %v, want %v", i+1, last, want)
				}
			}
			lastMu.Unlock()
			if r := dl.Header.Get(events.HeaderDeadLetterReason); !strings.Contains(r, tc.err.Error()) {
				t.Errorf("reason %q, want it to contain %q", r, tc.err)
			}
			if d := dl.Header.Get(events.HeaderDeadLetterDeliveries); d != fmt.Sprint(tc.attempts) {
				t.Errorf("deliveries header %q, want %d", d, tc.attempts)
			}
			got, err := events.Parse(dl.Data)
			if err != nil || got.ID != ev.ID {
				t.Fatalf("dead letter carries %+v (%v), want event %s", got, err, ev.ID)
			}
			if n := effects(t, e.pool, durable, ev.ID); n != 0 {
				t.Errorf("failed handler left %d effects", n)
			}
			if v := testutil.ToFloat64(m.Handled.WithLabelValues(durable, events.OutcomeDeadLetter)); v != 1 {
				t.Errorf("dead_letter count = %v, want 1", v)
			}
		})
	}
}

// The same event reaches the stream twice (a replay after the duplicate window, or a
// producer retry with another message id): the inbox stops the second effect, for both
// consumer kinds.
func TestRedeliveredEventHasNoSecondEffect(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	ev := newEvent(t, "tasks.test.twice")
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		msg := nats.NewMsg(ev.Type)
		msg.Data = body
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-copy-%d", ev.ID, i))
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}

	const txDurable, plainDurable = "evtest-tx", "evtest-plain"
	txc, err := events.NewConsumer(e.pool, e.js, events.ConsumerConfig{Stream: stream, Durable: txDurable}, recordEffect(txDurable), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	var plainRuns atomic.Int32
	plain, err := events.NewPlainConsumer(e.pool, e.js, events.ConsumerConfig{Stream: stream, Durable: plainDurable},
		func(ctx context.Context, ev events.Event) error {
			plainRuns.Add(1)
			return nil
		}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	start(t, txc.Worker().Run)
	start(t, plain.Worker().Run)
	waitAcked(t, e.js, txDurable)
	waitAcked(t, e.js, plainDurable)
	if n := effects(t, e.pool, txDurable, ev.ID); n != 1 {
		t.Errorf("tx consumer applied the event %d times, want 1", n)
	}
	if n := plainRuns.Load(); n != 1 {
		t.Errorf("plain handler ran %d times, want 1", n)
	}
}

// Stopping the worker while a handler runs lets that handler finish, commit and ack.
func TestConsumerStopFinishesTheMessageInFlight(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	start(t, newRelay(e, events.RelayConfig{}).Run)
	const durable = "evtest-drain"
	started, release := make(chan struct{}), make(chan struct{})
	c, err := events.NewConsumer(e.pool, e.js, events.ConsumerConfig{Stream: stream, Durable: durable},
		func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
			close(started)
			<-release
			return recordEffect(durable)(ctx, tx, ev)
		}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, c.Worker().Run)
	ev := enqueue(t, ctx, e.pool, 1)[0]
	select {
	case <-started:
	case <-time.After(waitUp):
		t.Fatal("handler never started")
	}
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("the worker stopped before its handler finished")
	case <-time.After(50 * time.Millisecond): // the worker must still be waiting
	}
	close(release)
	<-stopped
	if n := effects(t, e.pool, durable, ev.ID); n != 1 {
		t.Fatalf("effects = %d after stop, want 1", n)
	}
	waitAcked(t, e.js, durable)
}

// A failed attempt rolls back its inbox row with its effect, so the retry applies it.
func TestFailedAttemptIsRetriedAndAppliedOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	start(t, newRelay(e, events.RelayConfig{}).Run)
	const durable = "evtest-retry"
	var attempts atomic.Int32
	c, err := events.NewConsumer(e.pool, e.js, events.ConsumerConfig{
		Stream: stream, Durable: durable, Backoff: []time.Duration{10 * time.Millisecond},
	}, func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
		if err := recordEffect(durable)(ctx, tx, ev); err != nil {
			return err
		}
		if attempts.Add(1) < 3 {
			return errors.New("transient")
		}
		return nil
	}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	start(t, c.Run)
	ev := enqueue(t, ctx, e.pool, 1)[0]
	eventually(t, "the effect", func() bool { return effects(t, e.pool, durable, ev.ID) > 0 })
	waitAcked(t, e.js, durable)
	if n := effects(t, e.pool, durable, ev.ID); n != 1 || attempts.Load() != 3 {
		t.Fatalf("effects %d after %d attempts, want 1 after 3", n, attempts.Load())
	}
}

func TestReplayAfterBrokerLossAndPurge(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	from := time.Now().Add(-time.Minute)
	enqueue(t, ctx, e.pool, 3)
	stop := start(t, newRelay(e, events.RelayConfig{}).Run)
	eventually(t, "published", func() bool { return unpublished(t, e.pool) == 0 })
	stop()

	// The broker loses the stream (and its duplicate window) entirely.
	if err := e.js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsureStreams(ctx, e.js, natsx.Config{}, natsx.StreamTasks); err != nil {
		t.Fatal(err)
	}
	n, err := events.Replay(ctx, e.pool, e.js, from, time.Now().Add(time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("Replay = %d, %v; want 3", n, err)
	}
	if got := streamMsgs(t, e.js, stream); got != 3 {
		t.Fatalf("stream holds %d after replay, want 3", got)
	}
	// An empty range replays nothing.
	if n, err := events.Replay(ctx, e.pool, e.js, from.Add(-time.Hour), from); err != nil || n != 0 {
		t.Fatalf("Replay of an empty range = %d, %v", n, err)
	}

	// Purge removes published rows only.
	enqueue(t, ctx, e.pool, 1) // never published: no relay runs now
	purged, err := events.PurgePublished(ctx, e.pool, time.Now().Add(time.Minute))
	if err != nil || purged != 3 {
		t.Fatalf("PurgePublished = %d, %v; want 3", purged, err)
	}
	if n := unpublished(t, e.pool); n != 1 {
		t.Fatalf("%d unpublished rows after purge, want 1 kept", n)
	}
}

func TestMigrateIsIdempotentBesideServiceMigrations(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if err := events.Migrate(ctx, e.pool, schema); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	// A service's own migration 1, in the same schema, is not mistaken for ours.
	service := fstest.MapFS{"00001_things.sql": {Data: []byte(
		"-- +goose Up\nCREATE TABLE evtest.things (id int PRIMARY KEY);\n-- +goose Down\nDROP TABLE evtest.things;\n")}}
	if err := pg.MigratePool(ctx, e.pool, schema, service, logging.Discard()); err != nil {
		t.Fatalf("service migrations beside ours: %v", err)
	}
	for _, table := range []string{"evtest.events_schema_migrations", "evtest.schema_migrations"} {
		var v int64
		if err := e.pool.QueryRow(ctx, `SELECT max(version_id) FROM `+table).Scan(&v); err != nil || v != 1 {
			t.Fatalf("%s version = %d (%v), want 1", table, v, err)
		}
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO things (id) VALUES (1)`); err != nil {
		t.Fatalf("the service's table is missing: %v", err)
	}
	if err := events.Migrate(ctx, e.pool, "bad;schema"); err == nil {
		t.Fatal("Migrate accepted an unsafe schema name")
	}
}

func TestConsumerConfigIsValidated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	noop := func(context.Context, pgx.Tx, events.Event) error { return nil }
	for _, cfg := range []events.ConsumerConfig{
		{Stream: stream, Durable: ""},
		{Stream: stream, Durable: "has.dot"},
		{Stream: "", Durable: "ok"},
	} {
		if _, err := events.NewConsumer(e.pool, e.js, cfg, noop, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// BenchmarkOutboxEnqueue measures Enqueue in committed transactions of 100 events.
func BenchmarkOutboxEnqueue(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	const perTx = 100
	b.ResetTimer()
	for total := 0; total < b.N; total += perTx {
		enqueue(b, ctx, e.pool, min(perTx, b.N-total))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRelayPublish measures the relay alone: b.N rows already committed, timed from
// the relay's start until every row is acknowledged by JetStream and marked. The embedded
// server syncs every write to disk before acking (SyncAlways), so this is mostly the
// disk's fsync rate; run with TMPDIR on tmpfs to see the relay's own cost.
func BenchmarkRelayPublish(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	const perTx = 500
	for total := 0; total < b.N; total += perTx {
		enqueue(b, ctx, e.pool, min(perTx, b.N-total))
	}
	b.ResetTimer()
	start(b, newRelay(e, events.RelayConfig{}).Run)
	deadline := time.Now().Add(10 * time.Minute)
	for unpublished(b, e.pool) > 0 {
		if time.Now().After(deadline) {
			b.Fatal("relay did not publish everything within 10 minutes")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
