package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
	"github.com/perpetua-flow/backend/services/billing/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// migrate prepares the template database once per test binary.
func migrate(ctx context.Context, url string) error {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = migrations.Schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrations.Apply(ctx, pool, nil)
}

type fixture struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	store *store.Store
	clock *clock.Fake
}

// start is a few hours before a UTC midnight that is also a month end, so tests cross both.
var start = time.Date(2026, 1, 31, 20, 0, 0, 0, time.UTC)

func setup(t testing.TB) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t, "billing", migrations.Schema, migrate)
	return &fixture{ctx: context.Background(), pool: pool, store: store.New(pool), clock: clock.NewFake(start)}
}

func newUser() string { return uuid.NewString() }

// signUp delivers auth.user.created's effect: kickstart credits from the sign-up time.
func (f *fixture) signUp(t testing.TB, user string) {
	t.Helper()
	err := pg.InTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.store.GrantKickstart(f.ctx, tx, user, f.clock.Now(), f.clock.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) balance(t testing.TB, user string) credit.Balance {
	t.Helper()
	b, err := f.store.Balance(f.ctx, user, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ledgerSum is the sum of the user's signed ledger rows and the sum of what their grants
// hold: two independent accounts of the same credits.
func (f *fixture) ledgerSum(t testing.TB, user string) (ledger, grants int) {
	t.Helper()
	if err := f.pool.QueryRow(f.ctx, `SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE user_id = $1`, user).Scan(&ledger); err != nil {
		t.Fatal(err)
	}
	if err := f.pool.QueryRow(f.ctx, `SELECT coalesce(sum(remaining), 0) FROM credit_grants WHERE user_id = $1`, user).Scan(&grants); err != nil {
		t.Fatal(err)
	}
	return ledger, grants
}

// grantPurchased adds purchased credits directly (as a captured payment would).
func (f *fixture) grantPurchased(t testing.TB, user string, n int) {
	t.Helper()
	if err := f.store.GrantPurchased(f.ctx, user, uuid.NewString(), n, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
}
