package events

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/telemetry"
)

// VersionTable keeps the history of this package's migrations in each service's schema,
// beside (not inside) the service's own schema_migrations.
const VersionTable = "events_schema_migrations"

// RetentionPeriod is how long published outbox rows are kept for Replay before a job
// purges them (DESIGN-NOTES.md); it matches the streams' 7-day MaxAge.
const RetentionPeriod = 7 * 24 * time.Hour

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate creates the outbox and inbox tables in schema (creating the schema too), with
// the history in <schema>.events_schema_migrations. Call it from the service's migrator,
// after or before its own migrations: they do not share version numbers.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if !pg.ValidSchema(schema) {
		return fmt.Errorf("events: invalid schema name %q", schema)
	}
	fsys, err := schemaMigrations(schema)
	if err != nil {
		return err
	}
	if err := pg.MigratePoolTable(ctx, pool, schema, VersionTable, fsys, nil); err != nil {
		return fmt.Errorf("events: migrate: %w", err)
	}
	return nil
}

// schemaMigrations returns the embedded migrations with {{schema}} replaced, so the tables
// land in the named schema whatever the pool's search_path.
func schemaMigrations(schema string) (fs.FS, error) {
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("events: migrations: %w", err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("events: migrations: %w", err)
		}
		out[e.Name()] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(string(b), "{{schema}}", schema)), Mode: 0o444}
	}
	return out, nil
}

// NotifyChannel is the LISTEN/NOTIFY channel the relay listens on, and Enqueue signals in
// a transaction that cannot run code after its commit.
func NotifyChannel(schema string) string { return schema + "_outbox" }

// Enqueue writes evs to the outbox in the caller's transaction, so they are published if
// and only if the transaction commits. The subject is each event's Type. The W3C trace
// context and baggage of ctx (telemetry.InjectNATS) are stored with each row and travel in
// the message headers, so the consumer's span joins the producer's trace.
//
// How the relay learns of the commit depends on tx. In a transaction of pg.InTx (a
// pg.CommitHooker, found through wrappers by pg.HooksOf) Enqueue wakes the relays running
// in this process once the transaction has committed. Any other transaction (a plain pgx.Tx, a savepoint) gets a pg_notify on
// "<current_schema()>_outbox", delivered at commit, so its search_path must be the
// service's schema. The in-process wake-up is the fast path: a transaction that NOTIFYs
// holds a cluster-wide lock from its pre-commit until its commit is flushed, so such
// commits, in every schema of the cluster, happen one at a time.
//
// A process that enqueues in pg.InTx without running a relay wakes no one: its events wait
// for the fallback ticker of the relays elsewhere (RelayConfig.Interval).
func Enqueue(ctx context.Context, tx pgx.Tx, evs ...Event) error {
	if len(evs) == 0 {
		return nil
	}
	args, err := outboxArgs(ctx, evs)
	if err != nil {
		return err
	}
	// One round trip for the rows, however many events (and one for the notification in a
	// transaction without commit hooks).
	if _, err := tx.Exec(ctx, insertOutboxSQL, args...); err != nil {
		return fmt.Errorf("events: enqueue: %w", err)
	}
	if h, ok := pg.HooksOf(tx); ok {
		h.AfterCommit(wakeRelays)
		return nil
	}
	if _, err := tx.Exec(ctx, notifySQL); err != nil {
		return fmt.Errorf("events: notify relay: %w", err)
	}
	return nil
}

// QueueEnqueue is Enqueue for a caller that already sends a batch in tx: the outbox rows
// (and, in a transaction without commit hooks, the notification) are queued on b, so they
// cost no round trip of their own. They are written when the caller sends b; an error then
// comes from the batch.
func QueueEnqueue(ctx context.Context, tx pgx.Tx, b *pgx.Batch, evs ...Event) error {
	if len(evs) == 0 {
		return nil
	}
	args, err := outboxArgs(ctx, evs)
	if err != nil {
		return err
	}
	b.Queue(insertOutboxSQL, args...)
	if h, ok := pg.HooksOf(tx); ok {
		h.AfterCommit(wakeRelays)
	} else {
		b.Queue(notifySQL)
	}
	return nil
}

// insertOutboxSQL writes the rows of outboxArgs. Rows of one transaction share created_at
// (now()); their time-ordered ids keep them in the order given.
const insertOutboxSQL = `
	INSERT INTO outbox (id, subject, type, payload, headers)
	SELECT t.id::uuid, t.typ, t.typ, t.payload::jsonb, t.headers::jsonb
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(id, typ, payload, headers)`

// notifySQL wakes the relays listening on the schema's channel when the transaction
// commits.
const notifySQL = `SELECT pg_notify(current_schema() || '_outbox', '')`

// outboxArgs validates evs and makes insertOutboxSQL's arguments: ids, types, payloads and
// the trace headers of ctx.
func outboxArgs(ctx context.Context, evs []Event) ([]any, error) {
	carrier := nats.Header{}
	telemetry.InjectNATS(ctx, carrier)
	headers := make(map[string]string, len(carrier))
	for k, vs := range carrier {
		if len(vs) > 0 {
			headers[k] = vs[0]
		}
	}
	hdr, err := json.Marshal(headers)
	if err != nil {
		return nil, fmt.Errorf("events: marshal headers: %w", err)
	}
	ids := make([]string, len(evs))
	types := make([]string, len(evs))
	payloads := make([]string, len(evs))
	hdrs := make([]string, len(evs))
	for i, ev := range evs {
		if err := ev.Validate(); err != nil {
			return nil, err
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("events: marshal %s: %w", ev.ID, err)
		}
		ids[i], types[i], payloads[i], hdrs[i] = ev.ID, ev.Type, string(b), string(hdr)
	}
	return []any{ids, types, payloads, hdrs}, nil
}

// PurgePublished deletes outbox rows published before olderThan and returns how many.
// Run it from a daily job with olderThan = now - RetentionPeriod; rows never published are
// never deleted.
func PurgePublished(ctx context.Context, pool *pgxpool.Pool, olderThan time.Time) (int64, error) {
	// published_at >= created_at, so the created_at bound is implied and lets the index
	// narrow the scan.
	tag, err := pool.Exec(ctx, `
		DELETE FROM outbox
		WHERE created_at < $1 AND published_at IS NOT NULL AND published_at < $1`, olderThan)
	if err != nil {
		return 0, fmt.Errorf("events: purge outbox: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PurgeInbox deletes inbox rows processed before olderThan and returns how many. Safe once
// the event can no longer be delivered: use at least the streams' MaxAge (RetentionPeriod)
// plus a margin, e.g. 2*RetentionPeriod, because a Replay within RetentionPeriod may
// redeliver.
func PurgeInbox(ctx context.Context, pool *pgxpool.Pool, olderThan time.Time) (int64, error) {
	tag, err := pool.Exec(ctx, `DELETE FROM inbox WHERE processed_at < $1`, olderThan)
	if err != nil {
		return 0, fmt.Errorf("events: purge inbox: %w", err)
	}
	return tag.RowsAffected(), nil
}

// replayPage bounds the rows Replay holds in memory at once.
const replayPage = 500

// Replay republishes every outbox row created in [from, to), published or not, in
// (created_at, id) order, with the same Nats-Msg-Id, and returns how many it published.
// It is for recovery after a broker lost data: JetStream drops a message whose id is still
// inside its duplicate window, and consumers ignore one already in their inbox, so a replay
// never causes a second effect. It does not mark rows; the relay still owns that.
func Replay(ctx context.Context, pool *pgxpool.Pool, js jetstream.JetStream, from, to time.Time) (int64, error) {
	var (
		n       int64
		afterAt = from
		afterID = "00000000-0000-0000-0000-000000000000" // below every real id, so created_at = from is included
	)
	for {
		rows, err := pool.Query(ctx, `
			SELECT id::text, subject, payload::text, headers::text, created_at
			FROM outbox
			WHERE created_at < $2 AND (created_at, id) > ($1, $3::uuid)
			ORDER BY created_at, id
			LIMIT $4`, afterAt, to, afterID, replayPage)
		if err != nil {
			return n, fmt.Errorf("events: replay: %w", err)
		}
		batch, err := pgx.CollectRows(rows, scanOutboxRow)
		if err != nil {
			return n, fmt.Errorf("events: replay: %w", err)
		}
		if len(batch) == 0 {
			return n, nil
		}
		for _, r := range batch {
			if _, err := js.PublishMsg(ctx, r.msg(slog.Default())); err != nil {
				return n, fmt.Errorf("events: replay %s: %w", r.id, err)
			}
			n++
		}
		last := batch[len(batch)-1]
		afterAt, afterID = last.createdAt, last.id
	}
}

// outboxRow is one row as the relay and Replay publish it.
type outboxRow struct {
	id        string
	subject   string
	payload   string
	headers   string
	createdAt time.Time
}

func scanOutboxRow(row pgx.CollectableRow) (outboxRow, error) {
	var r outboxRow
	err := row.Scan(&r.id, &r.subject, &r.payload, &r.headers, &r.createdAt)
	return r, err
}

// msg is the JetStream message of a row: the envelope as body, the stored trace headers,
// and Nats-Msg-Id = event id so JetStream drops a republish.
func (r outboxRow) msg(logger *slog.Logger) *nats.Msg {
	m := nats.NewMsg(r.subject)
	m.Data = []byte(r.payload)
	var stored map[string]string
	if err := json.Unmarshal([]byte(r.headers), &stored); err != nil {
		// The column is written only by Enqueue; a malformed value loses the trace
		// context of one event, never the event.
		logger.Warn("events: outbox headers are not a JSON object", "id", r.id, "err", err)
	}
	for k, v := range stored {
		m.Header.Set(k, v)
	}
	m.Header.Set("Content-Type", "application/cloudevents+json")
	m.Header.Set(jetstream.MsgIDHeader, r.id)
	return m
}
