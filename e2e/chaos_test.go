package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/e2e/chaos"
	"github.com/perpetua-flow/backend/e2e/stack"
	"github.com/perpetua-flow/backend/libs/pgcluster"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

// chaosConfig sizes a run. The short form runs in `make test`; CHAOS_FULL=1 (make chaos)
// runs the long one.
type chaosConfig struct {
	users      int
	rate       int // HTTP requests per second through the gateway
	workers    int // connections: at most this many requests in flight
	creditRate int // consumes per second over NATS
	natsDown   time.Duration
	pgDown     time.Duration
	rounds     int // how many times the whole fault list runs
}

var (
	chaosShort = chaosConfig{users: 16, rate: 40, workers: 16, creditRate: 5, natsDown: 5 * time.Second, pgDown: 2 * time.Second, rounds: 1}
	chaosFull  = chaosConfig{users: 64, rate: 80, workers: 32, creditRate: 20, natsDown: 10 * time.Second, pgDown: 5 * time.Second, rounds: 2}
)

// TestChaos runs a steady mixed load through the gateway and a stream of credit consumes
// over NATS while it kills -9 each service in turn and restarts it, stops the broker and
// starts it again, and restarts PostgreSQL (when the test owns the cluster). Then it
// proves against the database and the broker: every task answered 2xx is stored with at
// least the version the answer reported; every committed outbox event was applied by each
// of its consumers exactly once (outbox ids = inbox ids, nothing dead-lettered); no credit
// was spent twice and every charged consume is in the ledger; no request was answered 500
// (a missing dependency is a 502/503); each fault was recovered from, without restarting
// the services that were not killed; and it prints the time each recovery took.
func TestChaos(t *testing.T) {
	t.Parallel()
	cfg := chaosShort
	if os.Getenv("CHAOS_FULL") != "" {
		cfg = chaosFull
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	begin := time.Now()
	db := chaosDatabase(t)
	s := stack.Start(t, stack.Options{DatabaseURL: db.url})
	t.Logf("stack ready in %v", time.Since(begin).Round(time.Millisecond))
	users := make([]chaos.User, cfg.users)
	for i := range users {
		c := s.SignIn(email())
		users[i] = chaos.User{ID: c.UserID, Token: c.Token}
	}
	probeUser := s.SignIn(email())
	probe := chaos.NewProbe(s.GatewayURL)

	load := chaos.NewLoad(s.GatewayURL, users, cfg.rate, cfg.workers)
	credits, err := chaos.NewCredits(s.NATSURL, users, cfg.creditRate)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	load.Start()
	credits.Start()
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			load.Stop()
			credits.Stop()
		}
	}
	t.Cleanup(stopLoad)
	steady(t, load, start, cfg.rate)

	pids := func() map[string]int {
		m := map[string]int{}
		for _, name := range stack.Services {
			m[name] = s.Pid(name)
		}
		return m
	}
	ready := func(name string) func(ctx context.Context) error {
		p := chaos.NewProbe(s.URLs[name])
		return func(ctx context.Context) error {
			return p.Expect(ctx, http.StatusOK, "GET", "/health/ready", "", nil, nil)
		}
	}
	probes := map[string]func(ctx context.Context) error{
		"auth": func(ctx context.Context) error {
			return probe.Expect(ctx, http.StatusOK, "POST", "/api/v1/auth/dev/login", "", map[string]string{"email": email(), "name": "Chaos probe"}, nil)
		},
		"tasks": func(ctx context.Context) error {
			return probe.Expect(ctx, http.StatusOK, "GET", "/api/v1/tasks?limit=1", probeUser.Token, nil, nil)
		},
		"billing": func(ctx context.Context) error {
			return probe.Expect(ctx, http.StatusOK, "GET", "/api/v1/credits/balance", probeUser.Token, nil, nil)
		},
		"ai": ready("ai"),
		"gateway": func(ctx context.Context) error {
			return probe.Expect(ctx, http.StatusOK, "GET", "/health/ready", "", nil, nil)
		},
	}
	// While the broker or the database is gone, the gateway's readiness must say 503
	// (its upstreams report the missing dependency), never 500.
	gatewayUnready := func(ctx context.Context) error {
		return probe.Expect(ctx, http.StatusServiceUnavailable, "GET", "/health/ready", "", nil, nil)
	}

	var faults []chaos.Fault
	for _, name := range stack.Services {
		faults = append(faults, chaos.Fault{
			Name:   "kill -9 " + name,
			Inject: func() error { s.Kill(name); return nil },
			Repair: func() error { return s.Launch(name) },
			Probe:  probes[name],
		})
	}
	faults = append(faults, chaos.Fault{
		Name:      fmt.Sprintf("NATS down %v", cfg.natsDown),
		Inject:    func() error { s.StopNATS(); return nil },
		Down:      cfg.natsDown,
		Repair:    s.StartNATSErr,
		Probe:     eventProbe(probe),
		WhileDown: gatewayUnready,
		Pids:      pids,
	})
	if db.restart != nil {
		faults = append(faults, chaos.Fault{
			Name:      fmt.Sprintf("PostgreSQL restart (down %v)", cfg.pgDown),
			Inject:    db.stop,
			Down:      cfg.pgDown,
			Repair:    db.restart,
			Probe:     allOf(probes["tasks"], probes["billing"], eventProbe(probe)),
			WhileDown: gatewayUnready,
			Pids:      pids,
		})
	} else {
		t.Log("PostgreSQL restart skipped: DATABASE_URL names a server this test does not own")
	}

	var results []chaos.Result
	for range cfg.rounds {
		for _, f := range faults {
			r := chaos.Run(ctx, f, 90*time.Second)
			results = append(results, r)
			if r.Err != nil {
				t.Errorf("%s: %v", r.Name, r.Err)
				break
			}
			steady(t, load, r.Recovered, cfg.rate)
		}
	}
	end := time.Now()
	stopLoad()

	pool, err := pgxpool.New(ctx, db.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	nc, err := nats.Connect(s.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	checker := chaos.Checker{Pool: pool, JS: js}
	// Redeliveries back off (1 s, 5 s, 30 s): give the consumers time to catch up.
	if err := checker.Settled(ctx, 2*time.Minute); err != nil {
		t.Errorf("events still outstanding after the load: %v", err)
	}
	rep, err := checker.Verify(ctx, load, credits)
	if err != nil {
		t.Fatal(err)
	}

	outcomes := load.Outcomes()
	var lines []string
	for _, r := range results {
		if r.Recovered.IsZero() {
			continue
		}
		lost, duplicated := rep.In(r.Injected, r.Recovered)
		tally := chaos.Tally(outcomes, r.Injected, r.Recovered)
		line := fmt.Sprintf("%-32s lost = %d, duplicated = %d, recovered in %6.2fs (%5.2fs after the repair); meanwhile %s",
			r.Name, lost, duplicated, r.Recovery().Seconds(), r.AfterRepair().Seconds(), formatTally(tally))
		lines = append(lines, line)
		if tally["500"] > 0 {
			t.Errorf("%s: %d requests answered 500 (a missing dependency must be a 503)", r.Name, tally["500"])
		}
		if len(r.Restarted) > 0 {
			t.Errorf("%s: services restarted although only the dependency failed: %v", r.Name, r.Restarted)
		}
		if r.DownErr != nil {
			t.Errorf("%s: while down: %v", r.Name, r.DownErr)
		}
	}
	total := chaos.Tally(outcomes, start, end)
	internal := 0
	for _, op := range credits.Ops() {
		internal += len(op.InternalAt)
	}
	t.Logf("chaos run: %d requests in %v (%s), %d ticks dropped; %d credit consumes (%d answered INTERNAL_ERROR)\n%s\n%s\nTOTAL: lost = %d, duplicated = %d",
		len(outcomes), end.Sub(start).Round(time.Second), formatTally(total), load.Dropped(), len(credits.Ops()), internal,
		strings.Join(lines, "\n"), rep.String(), rep.Lost(), rep.Duplicated())
	if rep.Lost() != 0 || rep.Duplicated() != 0 {
		t.Errorf("lost = %d, duplicated = %d (want 0 and 0)", rep.Lost(), rep.Duplicated())
	}
	if total["500"] > 0 {
		t.Errorf("%d requests answered 500 during the run", total["500"])
	}
	if internal > 0 {
		t.Errorf("%d credit consumes were answered INTERNAL_ERROR (a missing dependency must be SERVICE_UNAVAILABLE)", internal)
	}
	if rep.AckedTasks == 0 || rep.CreditSettled == 0 {
		t.Errorf("the load made no progress: %d tasks acknowledged, %d consumes settled", rep.AckedTasks, rep.CreditSettled)
	}
}

// Each fault's line counts the findings whose write happened while it ran; findings that
// belong to no single write (a user's balance) count only in the TOTAL line.

// steady waits until the load has had successes after t again: the system is serving.
func steady(t *testing.T, load *chaos.Load, since time.Time, rate int) {
	t.Helper()
	want := max(rate/2, 5)
	stack.Eventually(t, time.Minute, func() error {
		if n := load.OKSince(since); n < want {
			return fmt.Errorf("%d successful requests since %s, want %d", n, since.Format("15:04:05.000"), want)
		}
		return nil
	})
}

// eventProbe signs a new user in and waits for billing to grant the kickstart credits:
// auth's outbox, the relay, JetStream and billing's consumer all work again.
func eventProbe(p chaos.Probe) func(ctx context.Context) error {
	var token string
	return func(ctx context.Context) error {
		if token == "" {
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if err := p.Expect(ctx, http.StatusOK, "POST", "/api/v1/auth/dev/login", "", map[string]string{"email": email(), "name": "Chaos probe"}, &tok); err != nil {
				return err
			}
			token = tok.AccessToken
		}
		var b struct{ Data struct{ Kickstart int } }
		if err := p.Expect(ctx, http.StatusOK, "GET", "/api/v1/credits/balance", token, nil, &b); err != nil {
			return err
		}
		if b.Data.Kickstart != 5 {
			return fmt.Errorf("kickstart = %d: auth.user.created not applied yet", b.Data.Kickstart)
		}
		token = "" // the next use of this probe signs up another user
		return nil
	}
}

func allOf(fs ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, f := range fs {
			if err := f(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

func formatTally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// chaosDB is the database of a chaos run: on a private cluster the test can restart, or
// (with DATABASE_URL set) a fresh pgtest database on a server it must not restart.
type chaosDB struct {
	url     string
	stop    func() error
	restart func() error // nil when the server is not ours
}

func chaosDatabase(t *testing.T) chaosDB {
	t.Helper()
	if os.Getenv("DATABASE_URL") != "" {
		return chaosDB{url: pgtest.NewDatabase(t, "e2e", func(context.Context, string) error { return nil })}
	}
	// Under /tmp itself: as root the server runs as postgres, which cannot enter the
	// test's private temp directory.
	dir, err := os.MkdirTemp("", "chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cluster := c
	t.Cleanup(func() {
		_ = cluster.Stop()
		_ = os.RemoveAll(dir)
	})
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE chaos")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port := c.Port()
	return chaosDB{
		url:  c.URL("chaos"),
		stop: func() error { return cluster.Stop() },
		restart: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Port: port})
			if err != nil {
				return err
			}
			cluster = c
			return nil
		},
	}
}
