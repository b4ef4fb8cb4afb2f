package jobs_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const schema = "jobs_test"

type markArgs struct {
	Token string `json:"token"`
}

func (markArgs) Kind() string { return "jobs_test_mark" }

type run struct {
	token string
	at    time.Time
}

type markWorker struct {
	river.WorkerDefaults[markArgs]
	ran chan<- run
}

func (w *markWorker) Work(_ context.Context, job *river.Job[markArgs]) error {
	w.ran <- run{token: job.Args.Token, at: time.Now()}
	return nil
}

type fixture struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	ran    <-chan run
}

func migrate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return jobs.Migrate(ctx, pool, schema)
}

// setup gives the test its own database with River's tables and a running client.
func setup(t *testing.T, pooler bool) fixture {
	t.Helper()
	url := pgtest.NewDatabase(t, "jobs", migrate)
	pc, err := pg.PoolConfig(pg.Config{URL: url, Schema: schema, Pooler: pooler, MaxConns: 10})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	ran := make(chan run, 16)
	workers := river.NewWorkers()
	river.AddWorker(workers, &markWorker{ran: ran})
	client, err := jobs.NewClient(pool, jobs.Config{
		Schema:       schema,
		Pooler:       pooler,
		PollInterval: 100 * time.Millisecond,
		Workers:      workers,
		TestOnly:     true,
	}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	w := jobs.Worker(client)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	return fixture{pool: pool, client: client, ran: ran}
}

func insertTx(t *testing.T, f fixture, token string, opts *river.InsertOpts, commit bool) {
	t.Helper()
	ctx := context.Background()
	errRollback := errors.New("roll back")
	err := pg.InTx(ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := f.client.InsertTx(ctx, tx, markArgs{Token: token}, opts); err != nil {
			return err
		}
		if !commit {
			return errRollback
		}
		return nil
	})
	if commit && err != nil || !commit && !errors.Is(err, errRollback) {
		t.Fatalf("insert: %v", err)
	}
}

// waitFor returns the run of token, failing after timeout. Runs of other tokens are
// collected in seen.
func waitFor(t *testing.T, f fixture, token string, timeout time.Duration, seen map[string]int) run {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-f.ran:
			seen[r.token]++
			if r.token == token {
				return r
			}
		case <-deadline:
			t.Fatalf("job %s did not run within %s", token, timeout)
		}
	}
}

func jobRows(t *testing.T, f fixture, token string) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE args->>'token' = $1`, token).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestJobInCommittedTxRunsAndRolledBackNever(t *testing.T) {
	t.Parallel()
	f := setup(t, false)
	rolledBack, committed := uuid.NewString(), uuid.NewString()

	insertTx(t, f, rolledBack, nil, false)
	insertTx(t, f, committed, nil, true)

	seen := map[string]int{}
	waitFor(t, f, committed, 15*time.Second, seen)
	// The rolled-back job was inserted first; it never existed, so it can never run.
	if seen[rolledBack] != 0 || jobRows(t, f, rolledBack) != 0 {
		t.Fatalf("rolled-back job ran %d times, rows %d", seen[rolledBack], jobRows(t, f, rolledBack))
	}
	if seen[committed] != 1 {
		t.Fatalf("committed job ran %d times", seen[committed])
	}
}

func TestScheduledJobRunsAtItsTime(t *testing.T) {
	t.Parallel()
	f := setup(t, false)
	token := uuid.NewString()
	at := time.Now().Add(1500 * time.Millisecond)
	insertTx(t, f, token, &river.InsertOpts{ScheduledAt: at}, true)

	// River's scheduler promotes due jobs every few seconds on the elected leader.
	r := waitFor(t, f, token, 30*time.Second, map[string]int{})
	if r.at.Before(at) {
		t.Fatalf("scheduled job ran at %s, before its time %s", r.at, at)
	}
}

func TestPoolerModePollsWithoutListen(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	token := uuid.NewString()
	insertTx(t, f, token, nil, true)
	waitFor(t, f, token, 15*time.Second, map[string]int{})

	var listeners int
	if err := f.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'listen%'`).Scan(&listeners); err != nil {
		t.Fatal(err)
	}
	if listeners != 0 {
		t.Fatalf("%d connections LISTEN in pooler mode", listeners)
	}
}

func TestListenModeUsesListen(t *testing.T) {
	t.Parallel()
	f := setup(t, false)
	// The counterpart of the pooler test: the same query sees River's LISTEN connection
	// when polling is off, so its zero above means something.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var listeners int
		if err := f.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'listen%'`).Scan(&listeners); err != nil {
			t.Fatal(err)
		}
		if listeners > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no LISTEN connection seen")
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func TestConcurrentMigrationsOfAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, "jobs_empty", func(context.Context, string) error { return nil })
	// Replicas starting together: each migrates; the lock makes them take turns.
	const replicas = 3
	errs := make(chan error, replicas)
	for range replicas {
		go func() { errs <- migrate(context.Background(), url) }()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(context.Background(),
		`SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'river_job'`, schema).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 1 {
		t.Fatalf("river_job tables in %s: %d", schema, tables)
	}
}

// A job scheduled for later shows in river_queue_jobs{state="scheduled"} until it runs.
func TestQueueDepthCountsWaitingJobs(t *testing.T) {
	t.Parallel()
	f := setup(t, false)
	insertTx(t, f, "later-"+strconv.FormatInt(time.Now().UnixNano(), 36), &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}, true)
	reg := prometheus.NewRegistry()
	reg.MustRegister(jobs.NewQueueDepth(f.pool))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if fam.GetName() == "river_queue_jobs" && labels["state"] == "scheduled" && m.GetGauge().GetValue() == 1 {
				return
			}
		}
	}
	t.Fatalf("no river_queue_jobs{state=scheduled} = 1 in %v", families)
}
