package events

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/svc"
)

// RelayConfig tunes the outbox relay. The zero value is the production setting for a
// direct connection.
type RelayConfig struct {
	// Schema whose outbox is relayed; default the pool's current_schema().
	Schema string
	// Pooler is true behind a transaction-mode pooler (pg.Config.Pooler): no LISTEN, the
	// relay polls every PollInterval instead.
	Pooler bool
	// PollInterval between passes in pooler mode (default 200ms).
	PollInterval time.Duration
	// Interval of the fallback ticker beside LISTEN/NOTIFY (default 1s).
	Interval time.Duration
	// BatchSize is the most rows one pass reads (default 500).
	BatchSize int
	// MaxInFlight bounds the publishes awaiting their JetStream ack (default 256).
	MaxInFlight int
	// AckTimeout bounds one pass's wait for its acks (default 30s); rows not acked by then
	// stay unpublished and are retried (JetStream drops the duplicate).
	AckTimeout time.Duration
	// FlushTimeout bounds the last passes after the worker's context ends (default 5s),
	// so events committed by the final HTTP requests leave before the process does.
	FlushTimeout time.Duration
	// Metrics, when not nil, receives the backlog and publish counts.
	Metrics *Metrics
}

func (c RelayConfig) withDefaults() RelayConfig {
	if c.PollInterval <= 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 256
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = 5 * time.Second
	}
	return c
}

// Relay publishes the outbox of one schema to JetStream.
//
// Each pass runs in one transaction that first takes a transaction-level advisory lock
// (pg_try_advisory_xact_lock, a key derived from the schema): of all replicas, one passes
// at a time. The pass reads the oldest unpublished rows (published_at IS NULL, in
// created_at, id order, so a row whose transaction committed late is read by the next
// pass), publishes them asynchronously with at most MaxInFlight acks outstanding and
// Nats-Msg-Id = event id, waits for the acks, and marks the acknowledged rows in one UPDATE
// before committing and releasing the lock.
//
// A pass starts at start, on a wake-up and on the fallback ticker (Interval, or
// PollInterval behind a pooler). Enqueue in a pg.InTx transaction wakes every relay of its
// process after the commit (a service runs one; commits during a pass coalesce into one
// more pass). Enqueue in any other transaction, in this process or another (a tool),
// sends a NOTIFY on NotifyChannel, which wakes the relay through its listener (not behind
// a pooler); a (re)connected listener wakes it too.
//
// Every commit is followed by a pass that starts after it. A woken pass that finds the
// lock held by another replica cannot count on that replica, whose SELECT may have run
// before the commit and which this process's commits do not wake, so the relay retries
// every busyRetry until one of its passes holds the lock, rather than wait for the ticker.
// A tick that finds the lock held needs no retry: it answers no commit. Commits of a
// replica whose relay has stopped (a shutdown, after the final flush) wait for the ticker
// of the others.
//
// The lock is per transaction rather than per session so that it holds behind a
// transaction-mode pooler too, and a crashed holder releases it with its transaction. A
// crash after publishing and before the commit leaves the rows unmarked: the next pass
// republishes them and JetStream drops the duplicates inside its window
// (natsx.DuplicateWindow).
type Relay struct {
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	cfg    RelayConfig
	logger *slog.Logger

	// afterPublish, set only by tests, runs after the acks and before the mark; an error
	// aborts the pass as a crash there would.
	afterPublish func(acked []string) error
	// lockBusy, set only by tests, runs after each pass that found the lock held.
	lockBusy func()

	backlogMu   sync.Mutex
	backlogAtTS time.Time
}

// NewRelay makes a relay; run it with Worker (or Run).
func NewRelay(pool *pgxpool.Pool, js jetstream.JetStream, cfg RelayConfig, logger *slog.Logger) *Relay {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{pool: pool, js: js, cfg: cfg.withDefaults(), logger: logger.With("component", "outbox-relay")}
}

// Worker runs the relay beside the HTTP server (svc.Runtime.Serve).
func (r *Relay) Worker() svc.Worker { return svc.Worker{Name: "outbox-relay", Run: r.Run} }

// Run relays until ctx ends, then finishes the pass in flight, flushes what is pending
// (within FlushTimeout) and returns nil.
func (r *Relay) Run(ctx context.Context) error {
	// Passes never see ctx's cancellation: a batch once published is always marked, and
	// a relay stopped at once still flushes.
	work := context.WithoutCancel(ctx)
	schema := r.cfg.Schema
	if schema == "" {
		sctx, cancel := context.WithTimeout(work, r.cfg.FlushTimeout)
		err := r.pool.QueryRow(sctx, `SELECT current_schema()`).Scan(&schema)
		cancel()
		if err != nil {
			return fmt.Errorf("events: relay: current schema: %w", err)
		}
	}
	if !pg.ValidSchema(schema) {
		return fmt.Errorf("events: relay: invalid schema %q", schema)
	}
	key := relayLockKey(schema)

	wake := make(chan struct{}, 1)
	// Registered before the first pass: a commit either precedes that pass's SELECT or
	// wakes this relay.
	defer registerWake(wake)()
	interval := r.cfg.Interval
	var listeners sync.WaitGroup
	lctx, stopListening := context.WithCancel(ctx)
	defer func() {
		stopListening()
		listeners.Wait()
	}()
	if r.cfg.Pooler {
		interval = r.cfg.PollInterval
	} else {
		listeners.Go(func() { r.listen(lctx, NotifyChannel(schema), wake) })
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	retry := time.NewTimer(busyRetry)
	retry.Stop()
	defer retry.Stop()

	// owed: a wake-up has come that no pass holding the lock has started after yet.
	owed := false
	for {
		busy := r.drain(work, key, ctx.Done())
		switch {
		case !busy:
			owed = false
			retry.Stop()
		case owed:
			retry.Reset(busyRetry)
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(work, r.cfg.FlushTimeout)
			r.drain(fctx, key, nil)
			cancel()
			return nil
		case <-wake:
			owed = true
		case <-retry.C:
		case <-ticker.C:
		}
	}
}

// busyRetry is how soon a woken relay whose pass found the lock held tries again: soon
// enough that an event does not wait for the ticker, rare enough that the try (one short
// transaction) costs the holder nothing.
const busyRetry = 20 * time.Millisecond

// passSlack is a pass's time for its queries beside AckTimeout.
const passSlack = 30 * time.Second

// drain runs passes while they come back full (a backlog) and stop is open. busy reports
// that its last pass found the lock held by another relay.
func (r *Relay) drain(ctx context.Context, key int64, stop <-chan struct{}) (busy bool) {
	for {
		// A pass is bounded even though shutdown does not cancel it: a database that
		// stops answering must not hang the relay (or the service's exit) forever.
		pctx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout+passSlack)
		locked, full, err := r.pass(pctx, key)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Error("outbox pass failed", "err", err)
			}
			return false
		}
		if !locked {
			if r.lockBusy != nil {
				r.lockBusy()
			}
			return true
		}
		if !full || ctx.Err() != nil {
			return false
		}
		select {
		case <-stop:
			return false
		default:
		}
	}
}

// pass publishes and marks one batch under the relay lock. locked reports that it got the
// lock (otherwise it did nothing); full, a batch of BatchSize rows all published, so more
// may be waiting.
func (r *Relay) pass(ctx context.Context, key int64) (locked, full bool, err error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return false, false, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if rerr := tx.Rollback(context.WithoutCancel(ctx)); rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
	}()
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, key).Scan(&locked); err != nil {
		return false, false, fmt.Errorf("relay lock: %w", err)
	}
	if !locked {
		return false, false, nil // another replica is passing
	}
	rows, err := tx.Query(ctx, `
		SELECT id::text, subject, payload::text, headers::text, created_at
		FROM outbox
		WHERE published_at IS NULL
		ORDER BY created_at, id
		LIMIT $1`, r.cfg.BatchSize)
	if err != nil {
		return true, false, fmt.Errorf("select: %w", err)
	}
	batch, err := pgx.CollectRows(rows, scanOutboxRow)
	if err != nil {
		return true, false, fmt.Errorf("select: %w", err)
	}
	if len(batch) == 0 {
		r.observeBacklog(ctx, tx, true)
		return true, false, tx.Commit(ctx)
	}

	acked, dups, perr := r.publish(ctx, batch)
	if r.afterPublish != nil {
		if err := r.afterPublish(acked); err != nil {
			return true, false, err
		}
	}
	if len(acked) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1::uuid[])`, acked); err != nil {
			return true, false, fmt.Errorf("mark published: %w", err)
		}
	}
	r.observeBacklog(ctx, tx, len(batch) < r.cfg.BatchSize)
	if err := tx.Commit(ctx); err != nil {
		return true, false, fmt.Errorf("commit: %w", err)
	}
	if m := r.cfg.Metrics; m != nil {
		m.Published.Add(float64(len(acked)))
		m.Duplicates.Add(float64(dups))
		m.PublishErrors.Add(float64(len(batch) - len(acked)))
	}
	if perr != nil {
		return true, false, perr
	}
	return true, len(batch) == r.cfg.BatchSize, nil
}

// publish sends the batch with a sliding window of MaxInFlight outstanding acks and returns
// the ids JetStream acknowledged (dups of them were already stored). A failed row does not
// stop the rest: it stays unpublished and is retried on a later pass.
func (r *Relay) publish(ctx context.Context, batch []outboxRow) (acked []string, dups int, err error) {
	type inFlight struct {
		id  string
		ack jetstream.PubAckFuture
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout)
	defer cancel()
	var errs []error
	wait := func(p inFlight) {
		select {
		case a := <-p.ack.Ok():
			acked = append(acked, p.id)
			if a.Duplicate {
				dups++
			}
		case e := <-p.ack.Err():
			errs = append(errs, fmt.Errorf("publish %s: %w", p.id, e))
		case <-actx.Done():
			errs = append(errs, fmt.Errorf("publish %s: no ack: %w", p.id, actx.Err()))
		}
	}
	window := make([]inFlight, 0, r.cfg.MaxInFlight)
	for _, row := range batch {
		if len(window) == r.cfg.MaxInFlight {
			wait(window[0])
			window = window[1:]
		}
		f, perr := r.js.PublishMsgAsync(row.msg(r.logger))
		if perr != nil {
			// The connection refuses more; collect what is in flight and retry later.
			errs = append(errs, fmt.Errorf("publish %s: %w", row.id, perr))
			break
		}
		window = append(window, inFlight{id: row.id, ack: f})
	}
	for _, p := range window {
		wait(p)
	}
	if len(errs) > 0 {
		// Log every failed row once (the first few) and return one error for the pass.
		for i, e := range errs {
			if i == 5 {
				r.logger.Warn("more publish failures", "count", len(errs)-i)
				break
			}
			r.logger.Warn("outbox publish failed", "err", e)
		}
		return acked, dups, fmt.Errorf("%d of %d rows not published: %w", len(errs), len(batch), errs[0])
	}
	return acked, dups, nil
}

// observeBacklog sets the backlog gauge, at most once a second unless force (an idle pass,
// where the count is cheap).
func (r *Relay) observeBacklog(ctx context.Context, tx pgx.Tx, force bool) {
	m := r.cfg.Metrics
	if m == nil {
		return
	}
	r.backlogMu.Lock()
	due := force || time.Since(r.backlogAtTS) >= time.Second
	if due {
		r.backlogAtTS = time.Now()
	}
	r.backlogMu.Unlock()
	if !due {
		return
	}
	var n int64
	var lag float64
	if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
		FROM outbox WHERE published_at IS NULL`).Scan(&n, &lag); err != nil {
		r.logger.Warn("outbox backlog count failed", "err", err)
		return
	}
	m.Backlog.Set(float64(n))
	m.Lag.Set(lag)
}

// listen holds a dedicated connection (not one of the pool's) on LISTEN channel and
// signals wake on each notification, reconnecting after a failure. Notifications lost while
// disconnected are covered by the signal sent on every (re)connect and by the ticker.
func (r *Relay) listen(ctx context.Context, channel string, wake chan<- struct{}) {
	for {
		err := r.listenOnce(ctx, channel, wake)
		if ctx.Err() != nil {
			return
		}
		r.logger.Warn("outbox listener lost; reconnecting", "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, channel string, wake chan<- struct{}) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer func() {
		if err := conn.Close(context.WithoutCancel(ctx)); err != nil {
			r.logger.Debug("close listener", "err", err)
		}
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	signal(wake)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		signal(wake)
	}
}

// signal wakes the relay loop without blocking; one pending wake-up is enough.
func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// relays holds the wake channels of the relays running in this process, which Enqueue
// signals after a commit.
var relays = struct {
	sync.Mutex
	wakes map[chan struct{}]struct{}
}{wakes: map[chan struct{}]struct{}{}}

// registerWake adds wake to the relays Enqueue wakes until the returned func is called.
func registerWake(wake chan struct{}) (unregister func()) {
	relays.Lock()
	relays.wakes[wake] = struct{}{}
	relays.Unlock()
	return func() {
		relays.Lock()
		delete(relays.wakes, wake)
		relays.Unlock()
	}
}

// wakeRelays wakes every relay running in this process, without blocking.
func wakeRelays() {
	relays.Lock()
	defer relays.Unlock()
	for wake := range relays.wakes {
		signal(wake)
	}
}

// relayLockKey is the advisory lock of the relay of one schema.
func relayLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("perpetua/events/outbox-relay/" + schema))
	return int64(h.Sum64())
}
