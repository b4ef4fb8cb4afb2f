package pg_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

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
	cfg := setup(t)
	ctx := context.Background()
	pool, err := pg.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	if err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO things (id, name) VALUES (1, 'kept')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
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
