package store

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/services/auth/migrations"
)

// Schema is auth's Postgres schema.
const Schema = "auth"

// Migrate applies the schema's whole migration on pool: auth's own tables, then the
// outbox and inbox of libs/events, and River's job tables.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pg.MigratePool(ctx, pool, Schema, migrations.FS, nil); err != nil {
		return err
	}
	if err := events.Migrate(ctx, pool, Schema); err != nil {
		return err
	}
	return jobs.Migrate(ctx, pool, Schema)
}
