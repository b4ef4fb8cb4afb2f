package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/idempotency"
	"github.com/perpetua-flow/backend/libs/jobs"

	"github.com/perpetua-flow/backend/services/ai/internal/store"
)

// migrateSchema applies the ai schema's own migrations and the tables the shared
// libraries keep in it: the outbox and inbox, idempotency keys and the job queue.
func migrateSchema(ctx context.Context, pool *pgxpool.Pool) error {
	if err := store.MigrateOwn(ctx, pool); err != nil {
		return err
	}
	if err := events.Migrate(ctx, pool, store.Schema); err != nil {
		return fmt.Errorf("events tables: %w", err)
	}
	if err := idempotency.Migrate(ctx, pool, store.Schema); err != nil {
		return fmt.Errorf("idempotency table: %w", err)
	}
	if err := jobs.Migrate(ctx, pool, store.Schema); err != nil {
		return fmt.Errorf("job tables: %w", err)
	}
	return nil
}
