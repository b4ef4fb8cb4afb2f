package pg

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// VersionTable is the name of each schema's migration history table.
const VersionTable = "schema_migrations"

// Migrate applies the embedded SQL migrations in fsys (goose format, files at its root)
// to cfg.Schema, creating the schema first. Each schema keeps its own history in
// <schema>.schema_migrations, and a Postgres advisory lock makes concurrent replicas
// migrate one at a time.
func Migrate(ctx context.Context, cfg Config, fsys fs.FS, logger *slog.Logger) error {
	pc, err := PoolConfig(cfg)
	if err != nil {
		return err
	}
	pc.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("pg: migrate: %w", err)
	}
	defer pool.Close()
	return MigratePool(ctx, pool, cfg.Schema, fsys, logger)
}

// MigratePool is Migrate on an existing pool whose search_path is schema.
func MigratePool(ctx context.Context, pool *pgxpool.Pool, schema string, fsys fs.FS, logger *slog.Logger) error {
	return MigratePoolTable(ctx, pool, schema, VersionTable, fsys, logger)
}

// MigratePoolTable is MigratePool with the history kept in <schema>.<table>. A library that
// owns tables in every service's schema (the events outbox and inbox) uses its own table,
// so its version numbers never collide with the service's own migrations.
func MigratePoolTable(ctx context.Context, pool *pgxpool.Pool, schema, table string, fsys fs.FS, logger *slog.Logger) error {
	if !ValidSchema(table) {
		return fmt.Errorf("pg: invalid version table name %q", table)
	}
	if !ValidSchema(schema) {
		return fmt.Errorf("pg: invalid schema name %q", schema)
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("pg: create schema %s: %w", schema, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return migrateDB(ctx, db, schema, table, fsys, logger)
}

func migrateDB(ctx context.Context, db *sql.DB, schema, table string, fsys fs.FS, logger *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{
		goose.WithTableName(schema + "." + table),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("pg: migrations of %s: %w", schema, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("pg: migrate %s: %w", schema, err)
	}
	return nil
}
