package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
)

// ConsumeResult is the outcome of a consume (the first one's, for a retry).
type ConsumeResult struct {
	OperationID string
	Charged     int
	Balance     credit.Balance
	// Replayed is true when the operation had already been charged.
	Replayed bool
}

// Consume debits amount credits for operationID once: daily → subscription → purchased →
// kickstart, soonest-expiring then oldest within a kind. A retry with the same id returns
// the first charge and debits nothing. Not enough credits: INSUFFICIENT_CREDITS with the
// balance, and nothing is charged.
func (s *Store) Consume(ctx context.Context, userID, operationID string, amount int, reason string, now time.Time) (ConsumeResult, error) {
	res := ConsumeResult{OperationID: operationID}
	var short error
	// The operation is looked up in the lock's round trip: a retry that races the first
	// attempt waits for its lock and then sees its row.
	var charged int
	var replay bool
	op := &sideQuery{
		what: "find operation",
		sql:  `SELECT amount FROM credit_operations WHERE user_id = $1 AND operation_id = $2`,
		args: []any{userID, operationID},
		scan: func(row pgx.Row) error {
			err := row.Scan(&charged)
			if pg.IsNoRows(err) {
				return nil
			}
			replay = err == nil
			return err
		},
	}
	err := s.withAccountAnd(ctx, userID, now, op, func(a *account) error {
		if replay {
			res.Charged, res.Replayed, res.Balance = charged, true, a.balance()
			return nil
		}
		takes, err := credit.Plan(a.grants, amount, now)
		if err != nil {
			// The daily grant and write-offs made on the way still commit.
			short = credit.Insufficient(a.balance(), amount)
			res.Balance = a.balance()
			return nil
		}
		// One round trip for the operation, the debits, the movements, the history and the
		// event.
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO credit_operations (user_id, operation_id, amount, reason, created_at) VALUES ($1, $2, $3, $4, $5)`,
			userID, operationID, amount, reason, now)
		for _, t := range takes {
			b.Queue(`UPDATE credit_grants SET remaining = remaining - $3 WHERE id = $1 AND user_id = $2`, t.GrantID, userID, t.Amount)
			b.Queue(`INSERT INTO credit_movements (user_id, operation_id, grant_id, amount) VALUES ($1, $2, $3, $4)`, userID, operationID, t.GrantID, t.Amount)
			for i := range a.grants {
				if a.grants[i].ID == t.GrantID {
					a.grants[i].Remaining -= t.Amount
				}
			}
		}
		for _, k := range credit.ByKind(takes) {
			a.queueLedger(b, ledgerRow{kind: k.Kind, operation: opConsume, category: categoryAI, amount: -k.Amount,
				description: reason, reference: operationID})
		}
		if err := a.creditsEvent(billingevents.TypeCreditsConsumed, operationID, "", amount, reason); err != nil {
			return err
		}
		if err := a.queueFlush(ctx, b); err != nil {
			return err
		}
		if err := a.tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: debit: %w", err)
		}
		res.Charged, res.Balance = amount, a.balance()
		return nil
	})
	if err != nil {
		return ConsumeResult{}, err
	}
	if short != nil {
		return res, short
	}
	return res, nil
}

// RefundResult is the outcome of a refund.
type RefundResult struct {
	OperationID string
	Refunded    int
	Balance     credit.Balance
	Replayed    bool
}

// Refund gives back what operationID took, into the same grants. Credits taken from a
// grant that has expired since are not restored: they would have expired anyway, and
// restoring them elsewhere would turn daily credits into lasting ones. Refunding twice
// changes nothing; an unknown operation is NOT_FOUND.
func (s *Store) Refund(ctx context.Context, userID, operationID, reason string, now time.Time) (RefundResult, error) {
	res := RefundResult{OperationID: operationID}
	err := s.withAccount(ctx, userID, now, func(a *account) error {
		var refunded *int
		err := a.tx.QueryRow(ctx, `SELECT refunded FROM credit_operations WHERE user_id = $1 AND operation_id = $2`,
			userID, operationID).Scan(&refunded)
		if pg.IsNoRows(err) {
			return apperr.New(apperr.NotFound, "no such credit operation")
		}
		if err != nil {
			return fmt.Errorf("store: find operation: %w", err)
		}
		if refunded != nil {
			res.Refunded, res.Replayed, res.Balance = *refunded, true, a.balance()
			return nil
		}
		rows, err := a.tx.Query(ctx, `
			SELECT m.grant_id::text, m.amount, g.kind, g.expires_at, g.expired
			FROM credit_movements m JOIN credit_grants g ON g.id = m.grant_id
			WHERE m.user_id = $1 AND m.operation_id = $2`, userID, operationID)
		if err != nil {
			return fmt.Errorf("store: movements: %w", err)
		}
		type movement struct {
			grantID   string
			amount    int
			kind      credit.Kind
			expiresAt *time.Time
			expired   bool
		}
		moves, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (movement, error) {
			var m movement
			var kind string
			err := r.Scan(&m.grantID, &m.amount, &kind, &m.expiresAt, &m.expired)
			m.kind = credit.Kind(kind)
			return m, err
		})
		if err != nil {
			return fmt.Errorf("store: movements: %w", err)
		}
		var back []credit.Take
		for _, m := range moves {
			if m.expired || (m.expiresAt != nil && !now.Before(*m.expiresAt)) {
				continue
			}
			if _, err := a.tx.Exec(ctx, `UPDATE credit_grants SET remaining = remaining + $3 WHERE id = $1 AND user_id = $2`,
				m.grantID, userID, m.amount); err != nil {
				return fmt.Errorf("store: restore grant: %w", err)
			}
			back = append(back, credit.Take{GrantID: m.grantID, Kind: m.kind, Amount: m.amount})
			res.Refunded += m.amount
		}
		if err := a.load(ctx); err != nil {
			return err
		}
		a.running -= res.Refunded // the ledger rows below add it back one kind at a time
		for _, k := range credit.ByKind(back) {
			if err := a.ledger(ctx, ledgerRow{kind: k.Kind, operation: opRefund, category: categoryAI, amount: k.Amount,
				description: reason, reference: operationID}); err != nil {
				return err
			}
		}
		if _, err := a.tx.Exec(ctx, `UPDATE credit_operations SET refunded = $3, refunded_at = $4 WHERE user_id = $1 AND operation_id = $2`,
			userID, operationID, res.Refunded, now); err != nil {
			return fmt.Errorf("store: mark refunded: %w", err)
		}
		res.Balance = a.balance()
		return a.creditsEvent(billingevents.TypeCreditsRefunded, operationID, "", res.Refunded, reason)
	})
	if err != nil {
		return RefundResult{}, err
	}
	return res, nil
}

// Balance is the user's balance at now (making today's daily grant if it is due).
func (s *Store) Balance(ctx context.Context, userID string, now time.Time) (credit.Balance, error) {
	var b credit.Balance
	err := s.withAccount(ctx, userID, now, func(a *account) error {
		b = a.balance()
		return nil
	})
	return b, err
}

// LedgerEntry is one history row.
type LedgerEntry struct {
	ID           string
	UserID       string
	CreditType   string
	Operation    string
	Category     string
	Amount       int
	BalanceAfter int
	Description  string
	Reference    string
	CreatedAt    time.Time
}

// History is the user's ledger, newest first, one page of it, with the total count.
func (s *Store) History(ctx context.Context, userID string, page httpx.Page) ([]LedgerEntry, int, error) {
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM credit_ledger WHERE user_id = $1`, userID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count history: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id::text, user_id::text, credit_type, operation, category, amount, balance_after, description, reference, created_at
		FROM credit_ledger WHERE user_id = $1 ORDER BY seq DESC OFFSET $2 LIMIT $3`, userID, page.Offset, page.Limit)
	if err != nil {
		return nil, 0, fmt.Errorf("store: history: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LedgerEntry, error) {
		var e LedgerEntry
		err := r.Scan(&e.ID, &e.UserID, &e.CreditType, &e.Operation, &e.Category, &e.Amount, &e.BalanceAfter, &e.Description, &e.Reference, &e.CreatedAt)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: history: %w", err)
	}
	return entries, total, nil
}

// GrantKickstart gives a new user the kickstart credits, once (the grant's unique source
// makes a redelivered auth.user.created a no-op even past the inbox), and records the
// sign-up time that daily grants count from. It runs in the consumer's transaction.
func (s *Store) GrantKickstart(ctx context.Context, tx pgx.Tx, userID string, signedUpAt, now time.Time) error {
	a, err := open(ctx, tx, userID, now, &signedUpAt, nil)
	if err != nil {
		return err
	}
	if _, err := a.grant(ctx, grantSpec{kind: credit.Kickstart, amount: credit.KickstartAmount, source: "kickstart", sourceRef: "signup",
		description: "welcome credits"}); err != nil {
		return err
	}
	return a.flush(ctx)
}

// PerkDailyCredits is the perk type of an achievement that raises the daily grant
// (tasks emits daily_ai_credits; the catalogue calls it daily_credits).
var PerkDailyCredits = []string{"daily_ai_credits", "daily_credits"}

// AddPerk stores an unlocked achievement's daily-credit perk (once per achievement); the
// next daily grant includes it.
func (s *Store) AddPerk(ctx context.Context, tx pgx.Tx, userID, achievementID string, value int, now time.Time) error {
	if _, err := lockAccount(ctx, tx, userID, now, nil); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO credit_perks (user_id, achievement_id, value, unlocked_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, userID, achievementID, max(value, 0), now); err != nil {
		return fmt.Errorf("store: perk: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE credit_accounts SET daily_perk = (SELECT coalesce(sum(value), 0) FROM credit_perks WHERE user_id = $1), updated_at = $2
		WHERE user_id = $1`, userID, now); err != nil {
		return fmt.Errorf("store: perk total: %w", err)
	}
	return nil
}

// EraseUser deletes everything billing holds about the user (auth.user.deleted). The
// processed webhook ids stay, without the user, so a late duplicate still acts once.
func (s *Store) EraseUser(ctx context.Context, tx pgx.Tx, userID string) error {
	for _, q := range []string{
		`DELETE FROM credit_accounts WHERE user_id = $1`, // cascades to grants, perks, operations, movements, ledger
		`DELETE FROM subscriptions WHERE user_id = $1`,
		`DELETE FROM payments WHERE user_id = $1`,
		`UPDATE webhook_events SET user_id = NULL WHERE user_id = $1`,
	} {
		if _, err := tx.Exec(ctx, q, userID); err != nil {
			return fmt.Errorf("store: erase user: %w", err)
		}
	}
	return nil
}

// SweepExpired writes the expire rows of up to limit users whose grants expired with
// credits left (the history job; reads already ignore expired grants). It returns how
// many users it swept.
func (s *Store) SweepExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT user_id::text FROM credit_grants
		WHERE remaining > 0 AND NOT expired AND expires_at IS NOT NULL AND expires_at <= $1
		LIMIT $2`, now, limit)
	if err != nil {
		return 0, fmt.Errorf("store: expired grants: %w", err)
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("store: expired grants: %w", err)
	}
	for _, u := range users {
		// Only the write-off: making today's grant here would keep granting (and
		// expiring) daily credits for users who no longer come back.
		err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			a, err := lockAccount(ctx, tx, u, now, nil)
			if err != nil {
				return err
			}
			if err := a.load(ctx); err != nil {
				return err
			}
			if err := a.writeOffExpired(ctx); err != nil {
				return err
			}
			return a.flush(ctx)
		})
		if err != nil {
			return 0, err
		}
	}
	return len(users), nil
}
