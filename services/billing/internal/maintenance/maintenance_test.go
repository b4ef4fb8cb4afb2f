package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pgtest"
	"github.com/perpetua-flow/backend/services/billing/internal/checkout"
	"github.com/perpetua-flow/backend/services/billing/internal/maintenance"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
	"github.com/perpetua-flow/backend/services/billing/internal/subscription"
	"github.com/perpetua-flow/backend/services/billing/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

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

// TestJobsRunOnRiver: the periodic jobs are registered with River and, run by it, expire
// a cancelled subscription whose period is over and write off expired daily credits.
func TestJobsRunOnRiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, "billing", migrations.Schema, migrate)
	st := store.New(pool)
	clk := clock.NewFake(time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC))
	user := uuid.NewString()
	if _, err := st.ApplyWebhook(ctx, checkout.Event{ID: "evt_" + uuid.NewString(), Type: checkout.TypePaymentCaptured,
		Data: checkout.EventData{ID: "pay_" + uuid.NewString(), Metadata: checkout.Metadata{UserID: user, Kind: checkout.KindSubscription}}}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	sub, err := st.CancelSubscription(ctx, user, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(sub.PeriodEnd.Add(time.Minute))

	workers := river.NewWorkers()
	periodic, err := maintenance.Register(workers, pool, st, clk, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	client, err := jobs.NewClient(pool, jobs.Config{Schema: migrations.Schema, Workers: workers, PeriodicJobs: periodic, TestOnly: true}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- jobs.Worker(client).Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _, err := st.Subscription(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == subscription.Expired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the River job did not expire the subscription: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
