// Package pg owns the connection to PostgreSQL: the pgx pool (pooler-aware), the one
// transaction helper, and embedded migrations applied into a service's own schema.
package pg

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config says how a service reaches its database.
type Config struct {
	// URL is DATABASE_URL.
	URL string
	// Schema is the service's own schema; every connection's search_path is set to it.
	Schema string
	// MaxConns and MinConns size the pool (DATABASE_MAX_CONNS, DATABASE_MIN_CONNS).
	MaxConns int32
	MinConns int32
	// Pooler is true when URL points at a transaction-mode pooler (PgBouncer, Neon's
	// pooled endpoint): no named prepared statements, and LISTEN/NOTIFY is not used
	// (the outbox relay and River poll instead). DATABASE_POOLER=transaction.
	Pooler bool
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema reports whether s is a safe unquoted schema name.
func ValidSchema(s string) bool { return schemaName.MatchString(s) }

// Open makes a pool and checks that the server answers.
func Open(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := PoolConfig(cfg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pg: open pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pg: ping: %w", err)
	}
	return pool, nil
}

// PoolConfig turns cfg into a pgxpool config.
func PoolConfig(cfg Config) (*pgxpool.Config, error) {
	if cfg.URL == "" {
		return nil, errors.New("pg: DATABASE_URL is empty")
	}
	if !ValidSchema(cfg.Schema) {
		return nil, fmt.Errorf("pg: invalid schema name %q", cfg.Schema)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pg: parse DATABASE_URL: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pc.MinConns = cfg.MinConns
	}
	pc.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
	if cfg.Pooler {
		// A transaction-mode pooler hands each transaction to any server connection, so
		// named prepared statements would be missing on the next one.
		pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	return pc, nil
}

// Querier is what both a pool and a transaction offer; store functions take it so they
// run inside or outside a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// TxBeginner is a pool (or a connection) that starts transactions.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// CommitHooker is a transaction that can run code once it has committed: the
// transactions InTx gives fn implement it. A callback registered with AfterCommit runs
// after Commit returned nil, in the order registered, and never when the transaction
// rolls back, fn panics or the commit fails. Like the transaction itself, it is not safe
// for concurrent use. Savepoints (tx.Begin) do not implement it.
//
// It is for work that must not run inside the transaction but must follow it, such as
// waking the outbox relay (libs/events) without holding a lock until the commit is flushed.
type CommitHooker interface {
	AfterCommit(fn func())
}

// TxWrapper is a transaction that wraps another (a store's batching or logging wrapper)
// and hands it out, so HooksOf finds the hooks of the one underneath.
type TxWrapper interface {
	Unwrap() pgx.Tx
}

// HooksOf is tx's CommitHooker, looking through TxWrappers: a wrapper that embeds pgx.Tx
// does not carry the AfterCommit of the transaction it wraps, and code that needs it
// (events.Enqueue) would otherwise take the transaction for a plain one.
func HooksOf(tx pgx.Tx) (CommitHooker, bool) {
	for tx != nil {
		if h, ok := tx.(CommitHooker); ok {
			return h, true
		}
		w, ok := tx.(TxWrapper)
		if !ok {
			return nil, false
		}
		tx = w.Unwrap()
	}
	return nil, false
}

// hookTx is the transaction InTx hands to fn. It is a pointer so that it stays usable as
// a map key, as a plain pgx.Tx is.
type hookTx struct {
	pgx.Tx
	afterCommit []func()
}

func (t *hookTx) AfterCommit(fn func()) { t.afterCommit = append(t.afterCommit, fn) }

// InTx runs fn in one transaction: committed when fn returns nil, rolled back otherwise
// (and on panic). This is the one transaction helper of every service. The transaction
// fn gets is a CommitHooker; its callbacks run after a successful commit, before InTx
// returns.
func InTx(ctx context.Context, db TxBeginner, fn func(tx pgx.Tx) error) (err error) {
	begun, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("pg: begin: %w", err)
	}
	tx := &hookTx{Tx: begun}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
		if err != nil {
			if rerr := tx.Rollback(context.WithoutCancel(ctx)); rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
				err = errors.Join(err, fmt.Errorf("pg: rollback: %w", rerr))
			}
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: commit: %w", err)
	}
	for _, f := range tx.afterCommit {
		f()
	}
	return nil
}

// IsUniqueViolation reports a unique_violation (23505), optionally on a named constraint.
func IsUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		return false
	}
	return constraint == "" || pe.ConstraintName == constraint
}

// IsNoRows reports pgx.ErrNoRows.
func IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
