package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/bench/internal/report"
	"github.com/perpetua-flow/backend/e2e/stack"
	"github.com/perpetua-flow/backend/libs/pgcluster"
)

// user is a signed-in user of the load.
type user struct {
	ID    string
	Token string
}

// task is a seeded task and its owner (an index into bench.users).
type task struct {
	ID    string
	Owner int
}

// bench holds what every phase needs.
type bench struct {
	o   options
	log *slog.Logger

	gateway, tasksURL, natsURL, databaseURL string

	st         *stack.Stack // nil with -url
	cluster    *pgcluster.Cluster
	clusterDir string
	pool       *pgxpool.Pool // on the stack's database, qualified names

	users   []user // readers and updaters, each with seeded tasks
	writers []user // creators, one per connection
	one     user   // the user whose 64 connections all create
	tasks   []task
	run     report.Run
	rss     *rssSampler
	client  *http.Client
}

// Settings that make the benchmark measure the system, not the limits that protect it.
var (
	rateLimits = map[string]string{
		"RATE_LIMIT_AUTH":    "100000000/1m",
		"RATE_LIMIT_AI":      "100000000/1m",
		"RATE_LIMIT_GENERAL": "100000000/1m",
	}
	poolSize = "32"
)

func newBench(ctx context.Context, o options, log *slog.Logger) (*bench, error) {
	b := &bench{o: o, log: log, client: &http.Client{Timeout: 30 * time.Second}}
	b.run = report.Run{Date: time.Now().UTC(), Quick: o.quick, Duration: o.phase.String(), Machine: machine()}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()
	if err := b.startSystem(ctx); err != nil {
		return nil, err
	}
	var version string
	if err := b.pool.QueryRow(ctx, `SELECT version()`).Scan(&version); err == nil {
		b.run.Machine.Postgres, _, _ = strings.Cut(version, " on ")
	}
	if b.st != nil {
		b.rss = newRSSSampler(b.st)
		b.rss.idle()
		b.rss.start()
	}
	if err := b.signIn(ctx); err != nil {
		return nil, err
	}
	if err := b.seed(ctx); err != nil {
		return nil, err
	}
	ok = true
	return b, nil
}

// startSystem starts a private durable Postgres (unless a database is given) and the stack
// (unless -url names a running one).
func (b *bench) startSystem(ctx context.Context) error {
	b.databaseURL = b.o.databaseURL
	if b.o.url != "" {
		b.gateway, b.tasksURL, b.natsURL = b.o.url, b.o.tasksURL, b.o.natsURL
		b.run.Settings = append(b.run.Settings, "stack=a running stack at "+b.o.url+" (its settings are its own)")
		return b.openPool(ctx)
	}
	if b.databaseURL == "" {
		dir, err := os.MkdirTemp("", "bench-pg-")
		if err != nil {
			return err
		}
		b.clusterDir = dir
		start := time.Now()
		c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: b.o.durable})
		if err != nil {
			return err
		}
		b.cluster = c
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "CREATE DATABASE bench")
		conn.Close(ctx)
		if err != nil {
			return err
		}
		b.databaseURL = c.URL("bench")
		durability := "fsync on, synchronous_commit on (durable, like production)"
		if !b.o.durable {
			durability = "fsync off, synchronous_commit off (-durable=false)"
		}
		b.run.Settings = append(b.run.Settings, "database=a private PostgreSQL cluster on loopback, "+durability+", max_connections 300")
		b.log.Info("postgres ready", "in", time.Since(start).Round(time.Millisecond))
	} else {
		b.run.Settings = append(b.run.Settings, "database=the given DATABASE_URL")
	}
	env := map[string]string{"LOG_LEVEL": b.o.logLevel, "DATABASE_MAX_CONNS": poolSize}
	start := time.Now()
	b.log.Info("building and starting the services")
	st, err := stack.New(stack.Options{DatabaseURL: b.databaseURL, Env: env, ServiceEnv: map[string]map[string]string{"gateway": rateLimits}})
	if err != nil {
		return err
	}
	b.st = st
	b.gateway, b.tasksURL, b.natsURL = st.GatewayURL, st.URLs["tasks"], st.NATSURL
	b.log.Info("stack ready", "in", time.Since(start).Round(time.Millisecond), "gateway", b.gateway)
	b.run.Settings = append(b.run.Settings,
		"services=the five services built from this checkout, child processes on loopback, LOG_LEVEL="+b.o.logLevel+", DATABASE_MAX_CONNS="+poolSize+" each",
		"NATS=embedded JetStream (SyncAlways: fsync before every ack)",
		"gateway rate limits=raised for the benchmark: RATE_LIMIT_AUTH, RATE_LIMIT_AI and RATE_LIMIT_GENERAL = 100000000/1m (API.md §8)",
		fmt.Sprintf("load=vegeta v12.13.0 (library), %d connections, %v per phase, fixed-rate phases at %d/s", b.o.conns, b.o.phase, b.o.rate),
	)
	return b.openPool(ctx)
}

func (b *bench) openPool(ctx context.Context) error {
	cfg, err := pgxpool.ParseConfig(b.databaseURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(b.o.conns)
	b.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return b.pool.Ping(ctx)
}

func (b *bench) close() {
	if b.rss != nil {
		b.rss.stop()
	}
	if b.pool != nil {
		b.pool.Close()
	}
	if b.st != nil {
		if err := b.st.Close(); err != nil {
			b.log.Warn("stop the stack", "err", err)
		}
	}
	if b.cluster != nil {
		if err := b.cluster.Stop(); err != nil {
			b.log.Warn("stop postgres", "err", err)
		}
	}
	if b.clusterDir != "" {
		_ = os.RemoveAll(b.clusterDir)
	}
}

// devLogin signs email in through the gateway.
func (b *bench) devLogin(ctx context.Context, email string) (user, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
		User        struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := b.call(ctx, b.gateway, "POST", "/api/v1/auth/dev/login", "", map[string]string{"email": email, "name": "Bench User"}, http.StatusOK, &tok); err != nil {
		return user{}, err
	}
	return user{ID: tok.User.ID, Token: tok.AccessToken}, nil
}

// call sends one request and decodes the answer into out unless the status differs.
func (b *bench) call(ctx context.Context, base, method, path, token string, body any, want int, out any) error {
	return stack.Call(ctx, b.client, base, method, path, token, body, want, out)
}

// signIn makes the readers, the writers and the single user, all Pro (no task limit):
// dev login, the tier set in auth's table, and a second login for a token that says Pro.
func (b *bench) signIn(ctx context.Context) error {
	start := time.Now()
	run := uuid.NewString()[:8]
	emails := make([]string, 0, b.o.users+b.o.conns+1)
	for i := range b.o.users + b.o.conns + 1 {
		emails = append(emails, fmt.Sprintf("bench-%s-%d@example.test", run, i))
	}
	ids := make([]string, len(emails))
	for i, e := range emails {
		u, err := b.devLogin(ctx, e)
		if err != nil {
			return fmt.Errorf("sign in: %w", err)
		}
		ids[i] = u.ID
	}
	// Setup shortcut: Pro by the table, not by a (simulated) payment, so the run needs no
	// payment flow; the token's tier is what the services read.
	if _, err := b.pool.Exec(ctx, `UPDATE auth.users SET tier = 'pro' WHERE id = ANY($1::uuid[])`, ids); err != nil {
		return fmt.Errorf("make the users pro: %w", err)
	}
	all := make([]user, len(emails))
	for i, e := range emails {
		u, err := b.devLogin(ctx, e)
		if err != nil {
			return fmt.Errorf("sign in again: %w", err)
		}
		all[i] = u
	}
	b.users, b.writers, b.one = all[:b.o.users], all[b.o.users:b.o.users+b.o.conns], all[len(all)-1]
	b.log.Info("users signed in", "count", len(all), "in", time.Since(start).Round(time.Millisecond))
	return nil
}

// seed writes tasksPer tasks for every reader straight into the tasks table (as the
// service would have: version 1), newest last. Limits count the rows themselves.
func (b *bench) seed(ctx context.Context) error {
	start := time.Now()
	now := time.Now().UTC().Add(-time.Hour)
	var rows [][]any
	for i := range b.o.tasksPer {
		for ui, u := range b.users {
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			at := now.Add(time.Duration(i) * time.Millisecond)
			rows = append(rows, []any{id, uuid.MustParse(u.ID), fmt.Sprintf("Seeded task %d", i), "Seeded by the benchmark", "medium", at, at})
			b.tasks = append(b.tasks, task{ID: id.String(), Owner: ui})
		}
	}
	if _, err := b.pool.CopyFrom(ctx, pgx.Identifier{"tasks", "tasks"},
		[]string{"id", "user_id", "title", "description", "priority", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("seed tasks: %w", err)
	}
	if _, err := b.pool.Exec(ctx, `ANALYZE tasks.tasks`); err != nil {
		return err
	}
	b.log.Info("tasks seeded", "count", len(rows), "in", time.Since(start).Round(time.Millisecond))
	return nil
}

// machine describes this machine from /proc.
func machine() report.Machine {
	m := report.Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				m.MemTotal = fmt.Sprintf("%.1f GB", float64(kb)/1024/1024)
				break
			}
		}
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
