// Package natsapi is the NATS face of the tasks service: the JetStream consumers of other
// services' events (account erasure, transcriptions, billing activity) and the
// request-reply endpoints the ai service calls (svc.tasks.*).
package natsapi

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/aievents"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/natsx"
	"github.com/perpetua-flow/backend/libs/svc"

	"github.com/perpetua-flow/backend/services/tasks/internal/notify"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// Durable consumer names: part of the public contract (renaming one replays its stream).
const (
	DurableUserDeleted    = "tasks-user-deleted"
	DurableTranscriptions = "tasks-transcriptions"
	DurableBilling        = "tasks-billing-activity"
	DurableNotesConverted = "tasks-notes-converted"
)

// Consumers builds the service's event consumers as workers.
func Consumers(pool *pgxpool.Pool, js jetstream.JetStream, st *store.Store, hub *notify.Hub, metrics *events.Metrics, logger *slog.Logger) ([]svc.Worker, error) {
	h := &handlers{store: st, hub: hub}
	var out []svc.Worker
	add := func(c *events.Consumer, err error) error {
		if err != nil {
			return err
		}
		out = append(out, c.Worker())
		return nil
	}
	if err := add(events.NewConsumer(pool, js, events.ConsumerConfig{
		Stream: natsx.StreamAuth.Name, Durable: DurableUserDeleted, Subjects: []string{authevents.TypeUserDeleted}, Metrics: metrics,
	}, h.userDeleted, logger)); err != nil {
		return nil, err
	}
	if err := add(events.NewConsumer(pool, js, events.ConsumerConfig{
		Stream: natsx.StreamAI.Name, Durable: DurableTranscriptions,
		Subjects: []string{aievents.TypeTranscriptionCompleted, aievents.TypeTranscriptionFailed}, Metrics: metrics,
	}, h.transcription, logger)); err != nil {
		return nil, err
	}
	// A converted note counts toward notes_10, once per event (the inbox).
	if err := add(events.NewConsumer(pool, js, events.ConsumerConfig{
		Stream: natsx.StreamAI.Name, Durable: DurableNotesConverted, Subjects: []string{aievents.TypeNoteConverted}, Metrics: metrics,
	}, h.noteConverted, logger)); err != nil {
		return nil, err
	}
	// Billing events become activity rows and, for subscription changes, notifications that
	// must be pushed after their commit: the plain handler owns its transaction and is
	// idempotent through the event id stored on both rows.
	if err := add(events.NewPlainConsumer(pool, js, events.ConsumerConfig{
		Stream: natsx.StreamBilling.Name, Durable: DurableBilling,
		Subjects: []string{"billing.credits.*", "billing.subscription.*"}, Metrics: metrics,
	}, h.billing, logger)); err != nil {
		return nil, err
	}
	return out, nil
}

type handlers struct {
	store *store.Store
	hub   *notify.Hub
}

func (h *handlers) userDeleted(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var d authevents.UserDeleted
	if err := ev.Decode(&d); err != nil {
		return events.Permanent(err)
	}
	return h.store.EraseUser(ctx, tx, d.UserID)
}

// noteConverted counts the conversion; an achievement it unlocks is announced by its
// event and notification (read by the client from the table; this handler's transaction
// belongs to the consumer, so there is no push).
func (h *handlers) noteConverted(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var d aievents.NoteConverted
	if err := ev.Decode(&d); err != nil {
		return events.Permanent(err)
	}
	_, err := h.store.NoteConverted(ctx, tx, d.UserID)
	return err
}

func (h *handlers) transcription(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var d aievents.Transcription
	if err := ev.Decode(&d); err != nil {
		return events.Permanent(err)
	}
	return h.store.ApplyTranscription(ctx, tx, d.UserID, d.NoteID, d.Text, ev.Type == aievents.TypeTranscriptionCompleted)
}

// subscriptionTitles are the in-app notifications of subscription changes.
var subscriptionTitles = map[string][2]string{
	billingevents.TypeSubscriptionActivated: {"Welcome to Pro", "Your Pro subscription is active."},
	billingevents.TypeSubscriptionRenewed:   {"Subscription renewed", "Your Pro subscription was renewed."},
	billingevents.TypeSubscriptionCancelled: {"Subscription cancelled", "Your Pro subscription ends at the end of the period."},
	billingevents.TypeSubscriptionExpired:   {"Subscription ended", "Your Pro subscription has ended; you are on the free tier."},
}

func (h *handlers) billing(ctx context.Context, ev events.Event) error {
	action := strings.TrimPrefix(ev.Type, "billing.")
	var (
		userID  string
		details map[string]any
		et      task.EntityType
	)
	switch {
	case strings.HasPrefix(ev.Type, "billing.credits."):
		var d billingevents.Credits
		if err := ev.Decode(&d); err != nil {
			return events.Permanent(err)
		}
		userID, et = d.UserID, task.EntityCredits
		details = map[string]any{"operation_id": d.OperationID, "kind": d.Kind, "amount": d.Amount, "reason": d.Reason, "balance": d.Balance}
	case strings.HasPrefix(ev.Type, "billing.subscription."):
		var d billingevents.Subscription
		if err := ev.Decode(&d); err != nil {
			return events.Permanent(err)
		}
		userID, et = d.UserID, task.EntitySubscription
		details = map[string]any{"subscription_id": d.SubscriptionID, "tier": d.Tier, "status": d.Status}
	default:
		return nil
	}
	var pushed []task.Notification
	err := h.store.InTx(ctx, func(tx pgx.Tx) error {
		pushed = nil
		if _, err := h.store.RecordExternal(ctx, tx, ev.ID, userID, et, action, details, ev.Time); err != nil {
			return fmt.Errorf("activity of %s: %w", ev.ID, err)
		}
		t, ok := subscriptionTitles[ev.Type]
		if !ok || !store.ValidID(userID) {
			return nil
		}
		n, created, err := h.store.CreateNotification(ctx, tx, task.Notification{
			UserID: userID, Type: task.NotificationSubscription, Title: t[0], Body: t[1], ActionURL: "/settings/subscription",
		}, ev.ID)
		if created {
			pushed = append(pushed, n)
		}
		return err
	})
	if err == nil && h.hub != nil {
		h.hub.Publish(pushed...)
	}
	return err
}
