package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/services/billing/internal/checkout"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
	"github.com/perpetua-flow/backend/services/billing/internal/subscription"
)

// PendingHold is how long a started but unpaid credit purchase counts toward the monthly
// cap; after that an abandoned checkout no longer blocks new purchases.
const PendingHold = time.Hour

// Payment statuses.
const (
	PaymentPending  = "pending"
	PaymentCaptured = "captured"
	PaymentDeclined = "declined"
	PaymentFailed   = "failed"
)

// Payment is a hosted payment billing started.
type Payment struct {
	ID         string
	UserID     string
	Kind       string // checkout.KindSubscription or checkout.KindCredits
	Credits    int
	PriceMinor int64
	Currency   string
}

// GrantPurchased adds n purchased credits for a captured payment (once per payment).
func (s *Store) GrantPurchased(ctx context.Context, userID, paymentID string, n int, now time.Time) error {
	return s.withAccount(ctx, userID, now, func(a *account) error {
		_, err := a.grantPurchased(ctx, paymentID, n)
		return err
	})
}

func (a *account) grantPurchased(ctx context.Context, paymentID string, n int) (bool, error) {
	return a.grant(ctx, grantSpec{kind: credit.Purchased, amount: n, source: "payment", sourceRef: paymentID,
		description: strconv.Itoa(n) + " credits purchased"})
}

// StartPayment records a pending hosted payment after checking that it may be made: no
// second Pro subscription (ALREADY_SUBSCRIBED), at most MonthlyPurchaseCap credits bought
// per UTC month (LIMIT_EXCEEDED). The user's account lock makes the check hold under
// concurrent requests.
func (s *Store) StartPayment(ctx context.Context, p Payment, now time.Time) error {
	return pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockAccount(ctx, tx, p.UserID, now, nil); err != nil {
			return err
		}
		switch p.Kind {
		case checkout.KindSubscription:
			sub, found, err := loadSubscription(ctx, tx, p.UserID, false)
			if err != nil {
				return err
			}
			if found && sub.Live() {
				return apperr.New(apperr.AlreadySubscribed, "you already have a Pro subscription")
			}
		case checkout.KindCredits:
			var bought int
			if err := tx.QueryRow(ctx, `
				SELECT coalesce(sum(credits), 0) FROM payments
				WHERE user_id = $1 AND kind = 'credits' AND created_at >= $2
				  AND (status = 'captured' OR (status = 'pending' AND created_at > $3))`,
				p.UserID, credit.StartOfMonth(now), now.Add(-PendingHold)).Scan(&bought); err != nil {
				return fmt.Errorf("store: month's purchases: %w", err)
			}
			if !credit.PurchaseAllowed(bought, p.Credits) {
				return apperr.New(apperr.LimitExceeded, fmt.Sprintf("at most %d credits can be bought per month", credit.MonthlyPurchaseCap),
					apperr.Field("amount", fmt.Sprintf("%d credits can still be bought this month", max(credit.MonthlyPurchaseCap-bought, 0))))
			}
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO payments (id, user_id, kind, credits, price_minor, currency, status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)`,
			p.ID, p.UserID, p.Kind, p.Credits, p.PriceMinor, p.Currency, now); err != nil {
			return fmt.Errorf("store: insert payment: %w", err)
		}
		return nil
	})
}

// PaymentStarted records the provider's session id of a pending payment.
func (s *Store) PaymentStarted(ctx context.Context, paymentID, sessionID string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE payments SET provider_session_id = $2, updated_at = $3 WHERE id = $1`, paymentID, sessionID, now)
	if err != nil {
		return fmt.Errorf("store: payment session: %w", err)
	}
	return nil
}

// PaymentNotStarted marks a payment the provider refused to start, releasing its share of
// the monthly cap.
func (s *Store) PaymentNotStarted(ctx context.Context, paymentID string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE payments SET status = 'failed', updated_at = $2 WHERE id = $1 AND status = 'pending'`, paymentID, now)
	if err != nil {
		return fmt.Errorf("store: payment failed: %w", err)
	}
	return nil
}

// Subscription is the user's subscription, if they ever had one.
func (s *Store) Subscription(ctx context.Context, userID string) (subscription.Subscription, bool, error) {
	return loadSubscription(ctx, s.pool, userID, false)
}

func loadSubscription(ctx context.Context, q pg.Querier, userID string, lock bool) (subscription.Subscription, bool, error) {
	sql := `SELECT id::text, user_id::text, provider_id, status, period_start, period_end, cancel_at_period_end,
		failed_payments, grace_ends_at, seq FROM subscriptions WHERE user_id = $1`
	if lock {
		sql += " FOR UPDATE"
	}
	var sub subscription.Subscription
	var status string
	var grace *time.Time
	err := q.QueryRow(ctx, sql, userID).Scan(&sub.ID, &sub.UserID, &sub.ProviderID, &status, &sub.PeriodStart, &sub.PeriodEnd,
		&sub.CancelAtPeriodEnd, &sub.FailedPayments, &grace, &sub.Seq)
	if pg.IsNoRows(err) {
		return subscription.Subscription{}, false, nil
	}
	if err != nil {
		return subscription.Subscription{}, false, fmt.Errorf("store: subscription: %w", err)
	}
	sub.Status = subscription.Status(status)
	sub.PeriodStart, sub.PeriodEnd = sub.PeriodStart.UTC(), sub.PeriodEnd.UTC()
	if grace != nil {
		sub.GraceEndsAt = grace.UTC()
	}
	return sub, true, nil
}

func saveSubscription(ctx context.Context, tx pgx.Tx, sub subscription.Subscription, now time.Time) error {
	var grace *time.Time
	if !sub.GraceEndsAt.IsZero() {
		grace = &sub.GraceEndsAt
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO subscriptions (id, user_id, provider_id, status, period_start, period_end, cancel_at_period_end,
			failed_payments, grace_ends_at, seq, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
		ON CONFLICT (user_id) DO UPDATE SET provider_id = EXCLUDED.provider_id, status = EXCLUDED.status,
			period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
			cancel_at_period_end = EXCLUDED.cancel_at_period_end, failed_payments = EXCLUDED.failed_payments,
			grace_ends_at = EXCLUDED.grace_ends_at, seq = EXCLUDED.seq, updated_at = EXCLUDED.updated_at`,
		sub.ID, sub.UserID, sub.ProviderID, string(sub.Status), sub.PeriodStart, sub.PeriodEnd, sub.CancelAtPeriodEnd,
		sub.FailedPayments, grace, sub.Seq, now)
	if err != nil {
		return fmt.Errorf("store: save subscription: %w", err)
	}
	return nil
}

func (a *account) subscriptionEvent(typ string, sub subscription.Subscription) error {
	var end *time.Time
	if sub.PeriodEnd.After(time.Time{}) {
		e := sub.PeriodEnd
		end = &e
	}
	return a.emit(typ, billingevents.Subscription{
		UserID: a.userID, SubscriptionID: sub.ID, Tier: sub.Tier(), Status: string(sub.Status),
		CurrentPeriodEnd: end, Seq: sub.Seq, OccurredAt: a.now,
	})
}

// subscriptionCredits grants a period's credits: at a renewal the unused subscription
// credits are written off, up to CarryoverCap of them carried into the new period, then
// SubscriptionAmount added. The grants' source is the period, so a period pays once.
func (a *account) subscriptionCredits(ctx context.Context, sub subscription.Subscription, renewal bool) error {
	ref := sub.ID + ":" + sub.PeriodEnd.Format(time.RFC3339)
	if renewal {
		unused := 0
		kept := a.grants[:0]
		for _, g := range a.grants {
			if g.Kind != credit.Subscription || !g.Usable(a.now) {
				kept = append(kept, g)
				continue
			}
			unused += g.Remaining
			if _, err := a.tx.Exec(ctx, `UPDATE credit_grants SET remaining = 0, expired = true WHERE id = $1 AND user_id = $2`, g.ID, a.userID); err != nil {
				return fmt.Errorf("store: close subscription grant: %w", err)
			}
		}
		a.grants = kept
		if unused > 0 {
			if err := a.ledger(ctx, ledgerRow{kind: credit.Subscription, operation: opExpire, category: credit.Subscription.Category(),
				amount: -unused, description: fmt.Sprintf("%d unused subscription credits at renewal", unused), reference: ref}); err != nil {
				return err
			}
		}
		if n := credit.Carryover(unused); n > 0 {
			if _, err := a.grant(ctx, grantSpec{kind: credit.Subscription, amount: n, source: "carryover", sourceRef: ref,
				operation: opCarryover, description: fmt.Sprintf("%d subscription credits carried over", n)}); err != nil {
				return err
			}
		}
	}
	_, err := a.grant(ctx, grantSpec{kind: credit.Subscription, amount: credit.SubscriptionAmount, source: "subscription", sourceRef: ref,
		description: "Pro monthly credits"})
	return err
}

// CancelSubscription cancels at period end; Pro stays until then. Cancelling again
// answers the same; without a live subscription there is nothing to cancel: NOT_FOUND.
func (s *Store) CancelSubscription(ctx context.Context, userID string, now time.Time) (subscription.Subscription, error) {
	var out subscription.Subscription
	err := s.withAccount(ctx, userID, now, func(a *account) error {
		sub, found, err := loadSubscription(ctx, a.tx, userID, true)
		if err != nil {
			return err
		}
		if !found || !sub.Live() {
			return apperr.New(apperr.NotFound, "there is no active subscription to cancel")
		}
		if sub.Cancel() {
			if err := saveSubscription(ctx, a.tx, sub, now); err != nil {
				return err
			}
			if err := a.subscriptionEvent(billingevents.TypeSubscriptionCancelled, sub); err != nil {
				return err
			}
		}
		out = sub
		return nil
	})
	return out, err
}

// ExpireSubscriptions ends the subscriptions whose grace period or cancelled period is
// over at now (the job), emitting billing.subscription.expired. It returns how many.
func (s *Store) ExpireSubscriptions(ctx context.Context, now time.Time, limit int) (int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT user_id::text FROM subscriptions
		WHERE (status = 'grace' AND grace_ends_at <= $1) OR (status = 'cancelled' AND period_end <= $1)
		LIMIT $2`, now, limit)
	if err != nil {
		return 0, fmt.Errorf("store: due subscriptions: %w", err)
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("store: due subscriptions: %w", err)
	}
	n := 0
	for _, u := range users {
		err := s.withAccount(ctx, u, now, func(a *account) error {
			sub, found, err := loadSubscription(ctx, a.tx, u, true)
			if err != nil || !found || !sub.ExpireDue(now) {
				return err
			}
			n++
			if err := saveSubscription(ctx, a.tx, sub, now); err != nil {
				return err
			}
			return a.subscriptionEvent(billingevents.TypeSubscriptionExpired, sub)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
