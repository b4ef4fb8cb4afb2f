// Package migrations holds billing's schema as goose SQL files, embedded in the binary
// and applied at start and by the `migrate` subcommand, together with the tables of the
// libraries billing uses (the events outbox and inbox, idempotency keys, River's job tables).
package migrations

import (
	"context"
	"embed"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/idempotency"
	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/pg"
)

// Schema is billing's Postgres schema.
const Schema = "billing"

// FS is the migration files at its root.
//
//go:embed *.sql
var FS embed.FS

// Apply brings the schema on pool (search_path billing) up to date.
func Apply(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	if err := pg.MigratePool(ctx, pool, Schema, FS, logger); err != nil {
		return err
	}
	if err := events.Migrate(ctx, pool, Schema); err != nil {
		return err
	}
	if err := idempotency.Migrate(ctx, pool, Schema); err != nil {
		return err
	}
	return jobs.Migrate(ctx, pool, Schema)
}
