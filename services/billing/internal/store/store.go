// Package store is billing's SQL: the credit ledger, subscriptions, payments and webhook
// events, each use case in one transaction that starts by locking the user's
// credit_accounts row, with its events written to the outbox in the same transaction.
package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
)

// Store reads and writes billing's schema.
type Store struct {
	pool *pgxpool.Pool
}

// New is a store on pool (whose search_path is billing's schema).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool is the store's pool (for the consumers and jobs that share its transactions).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// ValidUserID reports whether id is a UUID (every user id is; anything else is a bad
// request, never a database error).
func ValidUserID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// account is one user's locked ledger inside a transaction: the grants not yet written
// off, the running balance the ledger rows carry, and the events to enqueue.
type account struct {
	tx        pgx.Tx
	userID    string
	now       time.Time
	createdAt time.Time
	dailyPerk int
	grants    []credit.Grant
	// running is the sum of remaining over grants not written off: what the last
	// ledger row's balance_after says.
	running int
	// hasToday: today's daily grant exists (possibly spent), so none is attempted.
	hasToday bool
	events   []events.Event
}

// lockAccount creates the user's account row if missing and locks it, so every credit
// change of the user runs one at a time. signedUpAt is the sign-up time when known
// (auth.user.created); a lazily created account starts now.
func lockAccount(ctx context.Context, tx pgx.Tx, userID string, now time.Time, signedUpAt *time.Time) (*account, error) {
	created := now
	if signedUpAt != nil {
		created = signedUpAt.UTC()
	}
	a := &account{tx: tx, userID: userID, now: now}
	lock := func() error {
		return tx.QueryRow(ctx, lockAccountSQL, userID).Scan(&a.createdAt, &a.dailyPerk)
	}
	err := lock()
	if pg.IsNoRows(err) {
		// First sight of the user: create the row (a concurrent first request may win the
		// insert; either way the row exists for the second lock).
		if _, err := tx.Exec(ctx, `
			INSERT INTO credit_accounts (user_id, created_at, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (user_id) DO NOTHING`, userID, created, now); err != nil {
			return nil, fmt.Errorf("store: create account: %w", err)
		}
		err = lock()
	}
	if err != nil {
		return nil, fmt.Errorf("store: lock account: %w", err)
	}
	if signedUpAt != nil && signedUpAt.Before(a.createdAt) {
		// auth's sign-up time wins over a lazily created account's.
		a.createdAt = signedUpAt.UTC()
		if _, err := tx.Exec(ctx, `UPDATE credit_accounts SET created_at = $2, updated_at = $3 WHERE user_id = $1`,
			userID, a.createdAt, now); err != nil {
			return nil, fmt.Errorf("store: account sign-up time: %w", err)
		}
	}
	return a, nil
}

// open locks the account and brings it up to date at now: leftovers of expired grants are
// written off as expire rows, and today's daily grant is made if it is due.
func open(ctx context.Context, tx pgx.Tx, userID string, now time.Time, signedUpAt *time.Time, side *sideQuery) (*account, error) {
	a, err := lockAndLoad(ctx, tx, userID, now, signedUpAt, side)
	if err != nil {
		return nil, err
	}
	if err := a.writeOffExpired(ctx); err != nil {
		return nil, err
	}
	if err := a.grantDaily(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// lockAccountSQL locks the user's account row and reads what the day's grant needs.
const lockAccountSQL = `SELECT created_at, daily_perk FROM credit_accounts WHERE user_id = $1 FOR UPDATE`

// loadGrantsSQL reads the grants that still hold credits, and today's daily grant even when
// spent (to know it exists).
const loadGrantsSQL = `
	SELECT id::text, kind, amount, remaining, expires_at, created_at, day IS NOT NULL AND day = $2::date
	FROM credit_grants WHERE user_id = $1 AND (remaining > 0 OR (kind = 'daily' AND day = $2::date))`

// lockAndLoad is lockAccount then load. For an account that exists (every request after
// the user's first) both go in one round trip: the batch's statements run in order in
// the transaction, so the grants are read under the lock. A first-seen user, or a
// sign-up time to reconcile, takes the general path.
func lockAndLoad(ctx context.Context, tx pgx.Tx, userID string, now time.Time, signedUpAt *time.Time, side *sideQuery) (*account, error) {
	if signedUpAt == nil {
		a, found, err := tryLockAndLoad(ctx, tx, userID, now, side)
		if err != nil || found {
			return a, err
		}
	}
	a, err := lockAccount(ctx, tx, userID, now, signedUpAt)
	if err != nil {
		return nil, err
	}
	if err := a.load(ctx); err != nil {
		return nil, err
	}
	if side != nil {
		if err := side.scan(tx.QueryRow(ctx, side.sql, side.args...)); err != nil {
			return nil, fmt.Errorf("store: %s: %w", side.what, err)
		}
	}
	return a, nil
}

// sideQuery is one more read a use case needs under the account's lock, sent in the same
// round trip as the lock (after it, so it sees what the lock's previous holder committed).
type sideQuery struct {
	what string // for errors
	sql  string
	args []any
	// scan reads the statement's row; it gets pgx.ErrNoRows through Scan when there is none.
	scan func(pgx.Row) error
}

// tryLockAndLoad locks and loads an existing account in one batch; found is false when
// the user has no account row yet.
func tryLockAndLoad(ctx context.Context, tx pgx.Tx, userID string, now time.Time, side *sideQuery) (a *account, found bool, err error) {
	b := &pgx.Batch{}
	b.Queue(lockAccountSQL, userID)
	b.Queue(loadGrantsSQL, userID, credit.StartOfDay(now))
	if side != nil {
		b.Queue(side.sql, side.args...)
	}
	br := tx.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); cerr != nil && err == nil {
			a, found, err = nil, false, fmt.Errorf("store: lock account: %w", cerr)
		}
	}()
	a = &account{tx: tx, userID: userID, now: now}
	err = br.QueryRow().Scan(&a.createdAt, &a.dailyPerk)
	if pg.IsNoRows(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: lock account: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, false, fmt.Errorf("store: load grants: %w", err)
	}
	if err := a.collectGrants(rows); err != nil {
		return nil, false, err
	}
	if side != nil {
		if err := side.scan(br.QueryRow()); err != nil {
			return nil, false, fmt.Errorf("store: %s: %w", side.what, err)
		}
	}
	return a, true, nil
}

func (a *account) load(ctx context.Context) error {
	rows, err := a.tx.Query(ctx, loadGrantsSQL, a.userID, credit.StartOfDay(a.now))
	if err != nil {
		return fmt.Errorf("store: load grants: %w", err)
	}
	return a.collectGrants(rows)
}

// collectGrants reads loadGrantsSQL's rows into the account.
func (a *account) collectGrants(rows pgx.Rows) error {
	a.hasToday = false
	grants, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (credit.Grant, error) {
		var g credit.Grant
		var kind string
		var exp *time.Time
		var isToday bool
		err := r.Scan(&g.ID, &kind, &g.Amount, &g.Remaining, &exp, &g.CreatedAt, &isToday)
		a.hasToday = a.hasToday || isToday
		g.Kind = credit.Kind(kind)
		if exp != nil {
			g.ExpiresAt = exp.UTC()
		}
		return g, err
	})
	if err != nil {
		return fmt.Errorf("store: load grants: %w", err)
	}
	// A spent daily grant was read only to know it exists.
	a.grants = slices.DeleteFunc(grants, func(g credit.Grant) bool { return g.Remaining == 0 })
	a.running = 0
	for _, g := range grants {
		a.running += g.Remaining
	}
	return nil
}

// balance is what can be spent now.
func (a *account) balance() credit.Balance { return credit.BalanceOf(a.grants, a.now) }

// ledgerRow is one history row to write.
type ledgerRow struct {
	kind        credit.Kind
	operation   string
	category    string
	amount      int // signed
	description string
	reference   string
}

// Ledger operations and categories of API.md §5.
const (
	opGrant     = "grant"
	opConsume   = "consume"
	opRefund    = "refund"
	opExpire    = "expire"
	opCarryover = "carryover"

	categoryAI = "ai"
)

func (a *account) ledger(ctx context.Context, rows ...ledgerRow) error {
	b := &pgx.Batch{}
	a.queueLedger(b, rows...)
	if err := a.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store: ledger: %w", err)
	}
	return nil
}

// queueLedger adds the rows to b, moving the running balance.
func (a *account) queueLedger(b *pgx.Batch, rows ...ledgerRow) {
	for _, r := range rows {
		a.running += r.amount
		b.Queue(`
			INSERT INTO credit_ledger (id, user_id, credit_type, operation, category, amount, balance_after, description, reference, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			newID(), a.userID, string(r.kind), r.operation, r.category, r.amount, a.running, r.description, r.reference, a.now)
	}
}

func (a *account) emit(typ string, data any) error {
	ev, err := events.New(billingevents.Source, typ, a.userID, data)
	if err != nil {
		return err
	}
	a.events = append(a.events, ev)
	return nil
}

// queueFlush puts the gathered events on b, the use case's last batch, instead of a round
// trip of their own.
func (a *account) queueFlush(ctx context.Context, b *pgx.Batch) error {
	if err := events.QueueEnqueue(ctx, a.tx, b, a.events...); err != nil {
		return err
	}
	a.events = nil
	return nil
}

// flush writes the gathered events to the outbox.
func (a *account) flush(ctx context.Context) error {
	if len(a.events) == 0 {
		return nil
	}
	if err := events.Enqueue(ctx, a.tx, a.events...); err != nil {
		return err
	}
	a.events = nil
	return nil
}

func (a *account) creditsEvent(typ, operationID string, kind credit.Kind, amount int, reason string) error {
	return a.emit(typ, billingevents.Credits{
		UserID: a.userID, OperationID: operationID, Kind: string(kind), Amount: amount,
		Reason: reason, Balance: a.balance().Total(), OccurredAt: a.now,
	})
}

// writeOffExpired writes an expire row for what expired grants still held, so the
// history explains every credit that disappeared at midnight.
func (a *account) writeOffExpired(ctx context.Context) error {
	kept := a.grants[:0]
	for _, g := range a.grants {
		if !g.Expired(a.now) {
			kept = append(kept, g)
			continue
		}
		if _, err := a.tx.Exec(ctx, `UPDATE credit_grants SET remaining = 0, expired = true WHERE id = $1 AND user_id = $2`, g.ID, a.userID); err != nil {
			return fmt.Errorf("store: expire grant: %w", err)
		}
		if err := a.ledger(ctx, ledgerRow{kind: g.Kind, operation: opExpire, category: g.Kind.Category(), amount: -g.Remaining,
			description: fmt.Sprintf("%d %s credits expired", g.Remaining, g.Kind), reference: g.ID}); err != nil {
			return err
		}
	}
	a.grants = kept
	return nil
}

// grantDaily makes today's daily grant when the day started after sign-up and it does not
// exist yet (the partial unique index on (user_id, day) makes "never twice" a fact).
func (a *account) grantDaily(ctx context.Context) error {
	if a.hasToday || !credit.DailyGrantDue(a.createdAt, a.now) {
		return nil
	}
	day := credit.StartOfDay(a.now)
	_, err := a.grant(ctx, grantSpec{
		kind: credit.Daily, amount: credit.DailyGrantAmount(a.dailyPerk), expiresAt: credit.NextMidnight(a.now), day: &day,
		source: "daily", sourceRef: day.Format(time.DateOnly), description: "daily credits for " + day.Format(time.DateOnly),
	})
	return err
}

// grantSpec describes a new grant.
type grantSpec struct {
	kind        credit.Kind
	amount      int
	expiresAt   time.Time
	day         *time.Time
	source      string
	sourceRef   string
	description string
	operation   string // grant (default) or carryover
	category    string // default kind's category
}

// grant inserts a grant unless its source already granted (then false), with its ledger
// row and billing.credits.granted event.
func (a *account) grant(ctx context.Context, g grantSpec) (bool, error) {
	if g.amount <= 0 {
		return false, nil
	}
	id := newID()
	var exp *time.Time
	if !g.expiresAt.IsZero() {
		exp = &g.expiresAt
	}
	tag, err := a.tx.Exec(ctx, `
		INSERT INTO credit_grants (id, user_id, kind, amount, remaining, expires_at, day, source, source_ref, created_at)
		VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING`,
		id, a.userID, string(g.kind), g.amount, exp, g.day, g.source, g.sourceRef, a.now)
	if err != nil {
		return false, fmt.Errorf("store: grant: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	a.grants = append(a.grants, credit.Grant{ID: id, Kind: g.kind, Amount: g.amount, Remaining: g.amount, ExpiresAt: g.expiresAt, CreatedAt: a.now})
	op, cat := g.operation, g.category
	if op == "" {
		op = opGrant
	}
	if cat == "" {
		cat = g.kind.Category()
	}
	if err := a.ledger(ctx, ledgerRow{kind: g.kind, operation: op, category: cat, amount: g.amount, description: g.description, reference: g.source + ":" + g.sourceRef}); err != nil {
		return false, err
	}
	return true, a.creditsEvent(billingevents.TypeCreditsGranted, g.source+":"+g.sourceRef, g.kind, g.amount, g.description)
}

// withAccount runs fn on the user's opened account in one transaction and enqueues the
// events fn gathered before commit.
func (s *Store) withAccount(ctx context.Context, userID string, now time.Time, fn func(a *account) error) error {
	return s.withAccountAnd(ctx, userID, now, nil, fn)
}

// withAccountAnd is withAccount with side read in the lock's round trip.
func (s *Store) withAccountAnd(ctx context.Context, userID string, now time.Time, side *sideQuery, fn func(a *account) error) error {
	return pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		a, err := open(ctx, tx, userID, now, nil, side)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
		return a.flush(ctx)
	})
}
