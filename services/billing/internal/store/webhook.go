package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/services/billing/internal/checkout"
	"github.com/perpetua-flow/backend/services/billing/internal/subscription"
)

// Webhook outcomes (stored with the event id and logged).
const (
	OutcomeDuplicate = "duplicate"
	OutcomeApplied   = "applied"
	OutcomeUnknown   = "unknown_type"
)

type paymentRow struct {
	id, userID, kind, status string
	credits                  int
}

func findPayment(ctx context.Context, tx pgx.Tx, providerID, reference string) (paymentRow, bool, error) {
	const cols = `SELECT id::text, user_id::text, kind, status, credits FROM payments `
	var p paymentRow
	scan := func(row pgx.Row) (bool, error) {
		err := row.Scan(&p.id, &p.userID, &p.kind, &p.status, &p.credits)
		if pg.IsNoRows(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("store: find payment: %w", err)
		}
		return true, nil
	}
	if providerID != "" {
		if ok, err := scan(tx.QueryRow(ctx, cols+`WHERE provider_payment_id = $1 FOR UPDATE`, providerID)); ok || err != nil {
			return p, ok, err
		}
	}
	if ValidUserID(reference) { // billing's payment ids are UUIDs, sent as the reference
		if ok, err := scan(tx.QueryRow(ctx, cols+`WHERE id = $1 FOR UPDATE`, reference)); ok || err != nil {
			return p, ok, err
		}
	}
	return p, false, nil
}

// ApplyWebhook acts on a verified Checkout.com event exactly once: the event id is stored
// in the same transaction as the effect, so a duplicate finds it and does nothing. Events
// may come in any order; each rule below is deterministic:
//   - payment_captured of a payment already captured: nothing (one payment pays once).
//   - payment_declined after that payment was captured: nothing.
//   - a subscription capture while the paid period has more than RenewalWindow left:
//     nothing more (a subscription_renewed already moved the period).
//   - subscription_renewed for a subscription billing does not know (or that expired):
//     recorded and ignored; only a captured payment starts Pro.
//   - a renewal that does not move the period end past RenewalTolerance: nothing.
//
// It returns the outcome (also stored).
func (s *Store) ApplyWebhook(ctx context.Context, ev checkout.Event, now time.Time) (string, error) {
	outcome := OutcomeApplied
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO webhook_events (id, type, outcome, received_at) VALUES ($1, $2, '', $3) ON CONFLICT DO NOTHING`,
			ev.ID, ev.Type, now)
		if err != nil {
			return fmt.Errorf("store: record webhook: %w", err)
		}
		if tag.RowsAffected() == 0 {
			outcome = OutcomeDuplicate
			return nil
		}
		userID := ev.Data.Metadata.UserID
		switch ev.Type {
		case checkout.TypePaymentCaptured, checkout.TypePaymentDeclined, checkout.TypeSubscriptionRenewed, checkout.TypeSubscriptionCancelled:
			if p, found, err := findPayment(ctx, tx, ev.Data.ID, ev.Data.Reference); err != nil {
				return err
			} else if found {
				userID = p.userID // what billing recorded wins over what the event says
			}
		default:
			outcome = OutcomeUnknown
			return finishWebhook(ctx, tx, ev.ID, "", outcome)
		}
		if !ValidUserID(userID) {
			outcome = "ignored: no valid metadata.user_id"
			return finishWebhook(ctx, tx, ev.ID, "", outcome)
		}
		a, err := open(ctx, tx, userID, now, nil, nil)
		if err != nil {
			return err
		}
		switch ev.Type {
		case checkout.TypePaymentCaptured:
			outcome, err = a.paymentCaptured(ctx, ev)
		case checkout.TypePaymentDeclined:
			outcome, err = a.paymentDeclined(ctx, ev)
		case checkout.TypeSubscriptionRenewed:
			outcome, err = a.subscriptionRenewed(ctx, ev)
		case checkout.TypeSubscriptionCancelled:
			outcome, err = a.subscriptionCancelled(ctx, ev)
		}
		if err != nil {
			return err
		}
		if err := a.flush(ctx); err != nil {
			return err
		}
		return finishWebhook(ctx, tx, ev.ID, userID, outcome)
	})
	return outcome, err
}

func finishWebhook(ctx context.Context, tx pgx.Tx, id, userID, outcome string) error {
	var uid *string
	if userID != "" {
		uid = &userID
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_events SET outcome = $2, user_id = $3 WHERE id = $1`, id, outcome, uid); err != nil {
		return fmt.Errorf("store: webhook outcome: %w", err)
	}
	return nil
}

// settlePayment moves the payment of ev to status (creating its row when billing did not
// start it, e.g. a payment made outside a hosted page) and returns it as it was before.
func (a *account) settlePayment(ctx context.Context, ev checkout.Event, status string) (paymentRow, bool, error) {
	p, found, err := findPayment(ctx, a.tx, ev.Data.ID, ev.Data.Reference)
	if err != nil {
		return paymentRow{}, false, err
	}
	var providerID *string
	if ev.Data.ID != "" {
		providerID = &ev.Data.ID
	}
	if found {
		if p.status == PaymentCaptured {
			return p, true, nil // final
		}
		_, err = a.tx.Exec(ctx, `UPDATE payments SET status = $2, provider_payment_id = coalesce($3, provider_payment_id), updated_at = $4 WHERE id = $1`,
			p.id, status, providerID, a.now)
		if err != nil {
			return paymentRow{}, false, fmt.Errorf("store: settle payment: %w", err)
		}
		return p, true, nil
	}
	p = paymentRow{id: newID(), userID: a.userID, kind: ev.Data.Metadata.Kind, credits: max(ev.Data.Metadata.Amount, 0)}
	if p.kind != checkout.KindSubscription && p.kind != checkout.KindCredits {
		return p, false, nil
	}
	if p.kind == checkout.KindSubscription {
		p.credits = 0
	}
	_, err = a.tx.Exec(ctx, `
		INSERT INTO payments (id, user_id, kind, credits, price_minor, currency, status, provider_payment_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`,
		p.id, a.userID, p.kind, p.credits, ev.Data.Amount, ev.Data.Currency, status, providerID, a.now)
	if err != nil {
		return paymentRow{}, false, fmt.Errorf("store: record payment: %w", err)
	}
	return p, false, nil
}

// paymentEvent emits billing.payment.*; Amount is the money (minor units of Currency),
// as Checkout.com reported it.
func (a *account) paymentEvent(typ string, p paymentRow, ev checkout.Event) error {
	return a.emit(typ, billingevents.Payment{
		UserID: a.userID, PaymentID: p.id, Kind: p.kind, Amount: int(ev.Data.Amount), Currency: ev.Data.Currency, OccurredAt: a.now,
	})
}

func (a *account) paymentCaptured(ctx context.Context, ev checkout.Event) (string, error) {
	p, _, err := a.settlePayment(ctx, ev, PaymentCaptured)
	if err != nil {
		return "", err
	}
	if p.status == PaymentCaptured {
		return "ignored: payment already captured", nil
	}
	if p.kind != checkout.KindSubscription && p.kind != checkout.KindCredits {
		return "ignored: metadata.kind is not subscription or credits", nil
	}
	if err := a.paymentEvent(billingevents.TypePaymentCaptured, p, ev); err != nil {
		return "", err
	}
	if p.kind == checkout.KindCredits {
		if p.credits <= 0 {
			return "ignored: no credits in metadata.amount", nil
		}
		_, err := a.grantPurchased(ctx, p.id, p.credits)
		return OutcomeApplied, err
	}
	sub, found, err := loadSubscription(ctx, a.tx, a.userID, true)
	if err != nil {
		return "", err
	}
	if !found {
		sub = subscription.Subscription{ID: newID(), UserID: a.userID}
	}
	if ev.Data.SubscriptionID != "" {
		sub.ProviderID = ev.Data.SubscriptionID
	}
	switch {
	case !sub.Live():
		sub.Activate(a.now)
		if err := saveSubscription(ctx, a.tx, sub, a.now); err != nil {
			return "", err
		}
		if err := a.subscriptionCredits(ctx, sub, false); err != nil {
			return "", err
		}
		return "activated", a.subscriptionEvent(billingevents.TypeSubscriptionActivated, sub)
	case sub.RenewalDue(a.now) && sub.Renew(subscription.AddPeriod(sub.PeriodEnd)):
		return "renewed", a.renewed(ctx, sub)
	default:
		return "ignored: period already paid", saveSubscription(ctx, a.tx, sub, a.now)
	}
}

func (a *account) renewed(ctx context.Context, sub subscription.Subscription) error {
	if err := saveSubscription(ctx, a.tx, sub, a.now); err != nil {
		return err
	}
	if err := a.subscriptionCredits(ctx, sub, true); err != nil {
		return err
	}
	return a.subscriptionEvent(billingevents.TypeSubscriptionRenewed, sub)
}

func (a *account) paymentDeclined(ctx context.Context, ev checkout.Event) (string, error) {
	p, found, err := a.settlePayment(ctx, ev, PaymentDeclined)
	if err != nil {
		return "", err
	}
	switch {
	case found && p.status == PaymentCaptured:
		return "ignored: decline after capture", nil
	case found && p.status == PaymentDeclined:
		return "ignored: payment already declined", nil
	case p.kind != checkout.KindSubscription && p.kind != checkout.KindCredits:
		return "ignored: metadata.kind is not subscription or credits", nil
	}
	if err := a.paymentEvent(billingevents.TypePaymentDeclined, p, ev); err != nil {
		return "", err
	}
	if p.kind != checkout.KindSubscription {
		return "declined", nil
	}
	sub, subFound, err := loadSubscription(ctx, a.tx, a.userID, true)
	if err != nil {
		return "", err
	}
	if !subFound || !sub.PaymentFailed(a.now) {
		return "declined", nil // a first payment that failed: nothing to degrade
	}
	return "declined: " + string(sub.Status), saveSubscription(ctx, a.tx, sub, a.now)
}

func (a *account) subscriptionRenewed(ctx context.Context, ev checkout.Event) (string, error) {
	sub, found, err := loadSubscription(ctx, a.tx, a.userID, true)
	if err != nil {
		return "", err
	}
	if !found || !sub.Live() {
		return "ignored: unknown subscription", nil
	}
	if ev.Data.CurrentPeriodEnd == nil {
		return "ignored: no current_period_end", nil
	}
	if ev.Data.SubscriptionID != "" {
		sub.ProviderID = ev.Data.SubscriptionID
	}
	if !sub.Renew(ev.Data.CurrentPeriodEnd.UTC()) {
		return "ignored: period already renewed", nil
	}
	return "renewed", a.renewed(ctx, sub)
}

func (a *account) subscriptionCancelled(ctx context.Context, _ checkout.Event) (string, error) {
	sub, found, err := loadSubscription(ctx, a.tx, a.userID, true)
	if err != nil {
		return "", err
	}
	if !found || !sub.Cancel() {
		return "ignored: nothing to cancel", nil
	}
	if err := saveSubscription(ctx, a.tx, sub, a.now); err != nil {
		return "", err
	}
	return "cancelled", a.subscriptionEvent(billingevents.TypeSubscriptionCancelled, sub)
}
