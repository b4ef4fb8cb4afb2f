package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/perpetua-flow/backend/bench/internal/report"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/pg"
)

// floorSchema holds the insert floor's copy of the tasks table and its outbox, so the
// floor neither touches the service's rows nor wakes its relay.
const floorSchema = "benchfloor"

// httpFloor serves a fixed JSON body of a task answer's size from a bare net/http handler
// and loads it like the API: the most this machine's HTTP stack (and vegeta) can do.
func (b *bench) httpFloor(ctx context.Context) (report.Phase, error) {
	body, err := b.sampleBody(ctx)
	if err != nil {
		return report.Phase{}, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return report.Phase{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	url := "http://" + l.Addr().String() + "/api/v1/tasks/x"
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: url, Header: authHeader(b.users[0].Token)})
	p := b.attack(ctx, "floor/http/max", fmt.Sprintf("bare net/http handler, %d-byte JSON", len(body)), "floor", 0, tr, nil)
	return p, nil
}

// sampleBody is a real GET task answer, for the HTTP floor to answer the same bytes.
func (b *bench) sampleBody(ctx context.Context) ([]byte, error) {
	var raw map[string]any
	t := b.tasks[0]
	if err := b.call(ctx, b.gateway, "GET", "/api/v1/tasks/"+t.ID, b.users[t.Owner].Token, nil, http.StatusOK, &raw); err != nil {
		return nil, err
	}
	return jsonBytes(raw)
}

// loop runs op from conns goroutines for the phase's length and measures it like vegeta
// measures HTTP (the results go through vegeta.Metrics).
//
// Operations still running when the phase ends are waited for and counted, like vegeta's
// in-flight requests: cutting them off would hide the slowest ones and leave their work
// running into the next phase.
func (b *bench) loop(ctx context.Context, key, name, via string, op func(ctx context.Context, worker, i int) error) report.Phase {
	end := time.Now().Add(b.o.phase)
	var mu sync.Mutex
	var m vegeta.Metrics
	var errs uint64
	codes := map[string]int{}
	var firstErr string
	var wg sync.WaitGroup
	for w := range b.o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []*vegeta.Result
			for i := 0; ctx.Err() == nil && time.Now().Before(end); i++ {
				start := time.Now()
				err := op(ctx, w, i)
				if err != nil && ctx.Err() != nil {
					break // the whole run is stopping: not a result
				}
				res := &vegeta.Result{Timestamp: start, Latency: time.Since(start), Code: 200}
				if err != nil {
					res.Code, res.Error = 0, err.Error()
				}
				local = append(local, res)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range local {
				m.Add(r)
				if r.Error != "" {
					errs++
					codes["error"]++
					if firstErr == "" {
						firstErr = r.Error
					}
				} else {
					codes["ok"]++
				}
			}
		}()
	}
	wg.Wait()
	m.Close()
	p := report.Phase{
		Key: key, Name: name, Via: via, Conns: b.o.conns, Requests: m.Requests, Throughput: m.Throughput,
		P50: m.Latencies.P50, P90: m.Latencies.P90, P99: m.Latencies.P99, Max: m.Latencies.Max, Errors: errs, Codes: codes,
	}
	if firstErr != "" {
		p.Note = "first error: " + firstErr
	}
	b.log.Info("phase", "via", via, "what", name, "ops/s", int(p.Throughput), "p50", p.P50.Round(10*time.Microsecond),
		"p99", p.P99.Round(10*time.Microsecond), "errors", errs)
	return p
}

// pgFloors measures raw pgx on the same database: a select of a task by primary key, and
// a transaction inserting a task and its outbox row, both as the services do (pg.InTx, so
// events.Enqueue wakes the relay after the commit) and the old way (a plain transaction, so
// Enqueue calls pg_notify inside it).
func (b *bench) pgFloors(ctx context.Context) ([]report.Phase, error) {
	sel := b.loop(ctx, "floor/pg-select/max", "pgx select task by primary key", "floor", func(ctx context.Context, w, i int) error {
		t := b.tasks[(w*7919+i)%len(b.tasks)]
		var (
			id, userID, title, description, priority, completedBy string
			completed, hidden, archived                           bool
			version, focus, subtasks, subtasksDone                int
			due, completedAt                                      *time.Time
			estimate                                              *int
			templateID                                            *string
			createdAt, updatedAt                                  time.Time
		)
		return b.pool.QueryRow(ctx, `
			SELECT id::text, user_id::text, title, description, priority, due_date, estimated_duration,
			       focus_time_seconds, completed, completed_at, completed_by, hidden, archived, template_id::text,
			       subtask_count, subtask_completed_count, version, created_at, updated_at
			FROM tasks.tasks WHERE id = $1 AND user_id = $2`, t.ID, b.users[t.Owner].ID).
			Scan(&id, &userID, &title, &description, &priority, &due, &estimate, &focus, &completed, &completedAt,
				&completedBy, &hidden, &archived, &templateID, &subtasks, &subtasksDone, &version, &createdAt, &updatedAt)
	})

	pool, err := b.floorPool(ctx)
	if err != nil {
		return []report.Phase{sel}, err
	}
	defer pool.Close()
	// insertTask is the floor's transaction body: a task row and its created event.
	insertTask := func(ctx context.Context, w int) (func(tx pgx.Tx) error, error) {
		u := b.writers[w%len(b.writers)]
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		ev, err := events.New("bench", "tasks.task.created", u.ID, map[string]any{"task_id": id.String(), "user_id": u.ID, "title": "Floor task"})
		if err != nil {
			return nil, err
		}
		return func(tx pgx.Tx) error {
			now := time.Now().UTC()
			if _, err := tx.Exec(ctx, `INSERT INTO tasks (id, user_id, title, description, priority, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $6)`, id, u.ID, "Floor task", "created under load", "high", now); err != nil {
				return err
			}
			return events.Enqueue(ctx, tx, ev)
		}, nil
	}
	// As the services write. No relay runs in this process, so the after-commit wake-up
	// reaches no one; in a service it is one channel send, too little for the floor to show.
	ins := b.loop(ctx, "floor/pg-insert-outbox/max", "pgx insert task + outbox row (one tx)", "floor", func(ctx context.Context, w, _ int) error {
		body, err := insertTask(ctx, w)
		if err != nil {
			return err
		}
		return pg.InTx(ctx, pool, body)
	})
	// The same transaction with pg_notify inside, as Enqueue did before the after-commit
	// wake-up (and still does in a transaction without commit hooks). Postgres serialises
	// the commits of transactions that NOTIFY (a cluster-wide lock on the notification queue
	// until the commit is flushed), so with fsync on this row shows what that cost.
	notify := b.loop(ctx, "floor/pg-insert-outbox-notify/max", "pgx insert task + outbox row, pg_notify in the tx (old way, one tx)", "floor", func(ctx context.Context, w, _ int) error {
		body, err := insertTask(ctx, w)
		if err != nil {
			return err
		}
		return pgx.BeginFunc(ctx, pool, body)
	})
	return []report.Phase{sel, ins, notify}, nil
}

// floorPool is a pool whose search_path is the floor's schema, made like the tasks table
// (LIKE … INCLUDING ALL: same columns, checks and indexes) with the events tables.
func (b *bench) floorPool(ctx context.Context) (*pgxpool.Pool, error) {
	if _, err := b.pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+floorSchema+` CASCADE; CREATE SCHEMA `+floorSchema+`;
		CREATE TABLE `+floorSchema+`.tasks (LIKE tasks.tasks INCLUDING ALL)`); err != nil {
		return nil, fmt.Errorf("floor schema: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(b.databaseURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(b.o.conns)
	cfg.ConnConfig.RuntimeParams["search_path"] = floorSchema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := events.Migrate(ctx, pool, floorSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("floor outbox: %w", err)
	}
	return pool, nil
}
