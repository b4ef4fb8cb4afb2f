package schedule_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/schedule"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const schema = "tasks"

// migrate prepares the template database as the service does: the tasks schema, the
// outbox of libs/events and River's tables.
func migrate(ctx context.Context, u string) error {
	pool, err := pg.Open(ctx, pg.Config{URL: u, Schema: schema, MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pg.MigratePool(ctx, pool, schema, migrations.FS, nil); err != nil {
		return err
	}
	if err := events.Migrate(ctx, pool, schema); err != nil {
		return err
	}
	return jobs.Migrate(ctx, pool, schema)
}

// outbox is the service's emitter (run.go): each event a CloudEvent in the outbox.
func outbox(ctx context.Context, tx pgx.Tx, typ, userID string, data any) error {
	ev, err := events.New(tasksevents.Source, typ, userID, data)
	if err != nil {
		return err
	}
	return events.Enqueue(ctx, tx, ev)
}

// observed counts what the reminder worker reports to its Observer.
type observed struct {
	mu       sync.Mutex
	outcomes map[reminder.Outcome]int
	delays   []time.Duration
}

func (o *observed) observe(out reminder.Outcome, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes[out]++
	o.delays = append(o.delays, d)
}

func (o *observed) count(out reminder.Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcomes[out]
}

// pushes records the notifications the worker pushes after commit.
type pushes struct {
	mu sync.Mutex
	ns []task.Notification
}

func (p *pushes) Publish(ns ...task.Notification) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ns = append(p.ns, ns...)
}

func (p *pushes) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ns)
}

// bundle is one store on its own database with a River client for the service's queues
// and workers.
type bundle struct {
	pool     *pgxpool.Pool
	store    *store.Store
	client   *river.Client[pgx.Tx]
	observed *observed
	pushed   *pushes
}

// setup makes a store on a fresh database, its clock clk, whose reminder jobs the River
// client (not yet started) works through firer (the store when nil).
func setup(tb testing.TB, clk clock.Clock, firer func(*store.Store) schedule.Firer) *bundle {
	tb.Helper()
	pool := pgtest.NewPool(tb, "tasks_schedule", schema, migrate)
	st := store.New(pool, clk, outbox)
	sched := &schedule.Scheduler{}
	st.SetScheduler(sched)
	b := &bundle{pool: pool, store: st, observed: &observed{outcomes: map[reminder.Outcome]int{}}, pushed: &pushes{}}
	var f schedule.Firer = st
	if firer != nil {
		f = firer(st)
	}
	workers := river.NewWorkers()
	logger := slog.New(slog.DiscardHandler)
	schedule.Register(workers, f, st, b.pushed, logger, b.observed.observe)
	queues := schedule.Queues()
	queues[river.QueueDefault] = river.QueueConfig{MaxWorkers: jobs.DefaultMaxWorkers}
	c, err := jobs.NewClient(pool, jobs.Config{Schema: schema, Workers: workers, Queues: queues, TestOnly: true}, logger)
	if err != nil {
		tb.Fatal(err)
	}
	sched.Bind(c)
	b.client = c
	return b
}

// start runs the River client until the test ends.
func (b *bundle) start(tb testing.TB) {
	tb.Helper()
	if err := b.client.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.client.Stop(ctx); err != nil {
			tb.Errorf("stop river: %v", err)
		}
	})
}

// jobStates counts the reminder jobs by state.
func (b *bundle) jobStates(tb testing.TB) map[string]int {
	tb.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT state::text, count(*) FROM river_job WHERE kind = $1 GROUP BY 1`,
		schedule.ReminderArgs{}.Kind())
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	var state string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error { out[state] = n; return nil }); err != nil {
		tb.Fatal(err)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, what string, within time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
