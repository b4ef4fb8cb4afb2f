package pg_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openPool is a pool on a migrated database of its own, closed with the test.
func openPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pg.Open(context.Background(), setup(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func migrations(t testing.TB) fs.FS {
	sub, err := fs.Sub(os.DirFS("testdata"), "migrations")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func setup(t *testing.T) pg.Config {
	t.Helper()
	fsys := migrations(t)
	url := pgtest.NewDatabase(t, "pg", func(ctx context.Context, u string) error {
		return pg.Migrate(ctx, pg.Config{URL: u, Schema: "demo"}, fsys, logging.Discard())
	})
	return pg.Config{URL: url, Schema: "demo", MaxConns: 4}
}

func TestInTxCommitsAndRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t)

	if err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO things (id, name) VALUES (1, 'kept')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO things (id, name) VALUES (2, 'gone')`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx error = %v, want boom", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM demo.things`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("rows = %d, want 1 (the rolled-back insert must be gone)", n)
	}
}

// afterCommit registers a callback counting its runs on tx, failing the test if tx has no
// commit hooks.
func afterCommit(t *testing.T, tx pgx.Tx, runs *int) {
	t.Helper()
	h, ok := tx.(pg.CommitHooker)
	if !ok {
		t.Fatalf("InTx's transaction %T is not a pg.CommitHooker", tx)
	}
	h.AfterCommit(func() { *runs++ })
}

func TestInTxRunsAfterCommitHooksOnlyOnCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t)
	// A deferred unique constraint is checked by COMMIT itself, so a transaction can get as
	// far as the commit and fail there.
	if _, err := pool.Exec(ctx, `CREATE TABLE deferred (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO deferred (id) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")

	tests := []struct {
		name     string
		fn       func(tx pgx.Tx) error
		wantErr  string // a part of the error; "" for none
		wantRuns int
	}{
		{name: "commit runs each hook once", fn: func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO things (id, name) VALUES (10, 'kept')`)
			return err
		}, wantRuns: 2},
		{name: "rollback runs none", fn: func(tx pgx.Tx) error { return boom }, wantErr: "boom"},
		{name: "a failed commit runs none", fn: func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO deferred (id) VALUES (1)`)
			return err
		}, wantErr: "pg: commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var runs, seenAtCommit int
			err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
				afterCommit(t, tx, &runs)
				afterCommit(t, tx, &runs)
				err := tt.fn(tx)
				seenAtCommit = runs
				return err
			})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("InTx error = %v, want %q", err, tt.wantErr)
			}
			if seenAtCommit != 0 {
				t.Errorf("%d hooks ran inside the transaction", seenAtCommit)
			}
			if runs != tt.wantRuns {
				t.Errorf("hooks ran %d times, want %d", runs, tt.wantRuns)
			}
		})
	}

	t.Run("panic runs none", func(t *testing.T) {
		var runs int
		func() {
			defer func() {
				if recover() == nil {
					t.Error("InTx swallowed the panic")
				}
			}()
			_ = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
				afterCommit(t, tx, &runs)
				panic("boom")
			})
		}()
		if runs != 0 {
			t.Errorf("hooks ran %d times after a panic, want 0", runs)
		}
	})
}

func TestMigrateIsIdempotentAndUsesOwnVersionTable(t *testing.T) {
	t.Parallel()
	cfg := setup(t)
	ctx := context.Background()
	if err := pg.Migrate(ctx, cfg, migrations(t), logging.Discard()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	pool, err := pg.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var v int64
	if err := pool.QueryRow(ctx, `SELECT max(version_id) FROM demo.schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 1 {
		t.Fatalf("version = %d, want 1", v)
	}
}

func TestPoolerModeRuns(t *testing.T) {
	t.Parallel()
	cfg := setup(t)
	cfg.Pooler = true
	ctx := context.Background()
	pool, err := pg.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if pool.Config().ConnConfig.DefaultQueryExecMode != pgx.QueryExecModeExec {
		t.Fatal("pooler mode must not use the statement cache")
	}
	var name string
	if _, err := pool.Exec(ctx, `INSERT INTO things (id, name) VALUES ($1, $2)`, 7, "x"); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT name FROM things WHERE id = $1`, 7).Scan(&name); err != nil || name != "x" {
		t.Fatalf("got %q, %v", name, err)
	}
}

func TestOpenRejectsBadSchema(t *testing.T) {
	t.Parallel()
	if _, err := pg.PoolConfig(pg.Config{URL: "postgres://x@127.0.0.1/db", Schema: "a;drop"}); err == nil {
		t.Fatal("want an error for an unsafe schema name")
	}
}

// wrapped is a store's transaction wrapper: it embeds pgx.Tx, which does not carry
// AfterCommit, and hands out the transaction underneath.
type wrapped struct{ pgx.Tx }

func (w wrapped) Unwrap() pgx.Tx { return w.Tx }

// opaque wraps without Unwrap.
type opaque struct{ pgx.Tx }

func TestHooksOfLooksThroughWrappers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t)
	ran := 0
	err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		for name, candidate := range map[string]pgx.Tx{"InTx's": tx, "wrapped": wrapped{tx}, "wrapped twice": wrapped{wrapped{tx}}} {
			h, ok := pg.HooksOf(candidate)
			if !ok {
				t.Errorf("%s transaction: no hooks found", name)
				continue
			}
			h.AfterCommit(func() { ran++ })
		}
		if _, ok := pg.HooksOf(opaque{tx}); ok {
			t.Error("a wrapper without Unwrap was looked through")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ran != 3 {
		t.Fatalf("%d hooks ran after the commit, want the 3 registered through InTx's transaction and its wrappers", ran)
	}
	plain, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = plain.Rollback(ctx) }()
	if _, ok := pg.HooksOf(wrapped{plain}); ok {
		t.Error("a plain transaction, wrapped, has hooks")
	}
}
