// Package natsapi is auth's NATS edge: the consumer of billing's subscription facts,
// which sets the tier that the next access token carries.
package natsapi

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/natsx"
	"github.com/perpetua-flow/backend/services/auth/internal/account"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

// TierConsumer is the durable name of the tier consumer (part of the event contract:
// renaming it starts over from the beginning of the stream).
const TierConsumer = "auth-tier"

// TierSubjects are the billing facts that change a user's tier.
var TierSubjects = []string{
	billingevents.TypeSubscriptionActivated,
	billingevents.TypeSubscriptionRenewed,
	billingevents.TypeSubscriptionExpired,
}

// NewTierConsumer consumes billing.subscription.activated|renewed|expired on the BILLING
// stream and applies each to users.tier in the transaction that records it in the inbox.
func NewTierConsumer(pool *pgxpool.Pool, js jetstream.JetStream, clk clock.Clock, metrics *events.Metrics, logger *slog.Logger) (*events.Consumer, error) {
	h := TierHandler(clk, logger)
	return events.NewConsumer(pool, js, events.ConsumerConfig{
		Stream:   natsx.StreamBilling.Name,
		Durable:  TierConsumer,
		Subjects: TierSubjects,
		Metrics:  metrics,
	}, h, logger)
}

// TierHandler applies one subscription fact. An expired subscription means free whatever
// the payload says; activated and renewed take the payload's tier (pro when it is empty).
// A fact older than the last one applied to that user is ignored (ordering by Seq, then
// OccurredAt), as is one about a user who no longer exists.
func TierHandler(clk clock.Clock, logger *slog.Logger) events.TxHandler {
	return func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
		var sub billingevents.Subscription
		if err := ev.Decode(&sub); err != nil {
			return events.Permanent(fmt.Errorf("decode %s %s: %w", ev.Type, ev.ID, err))
		}
		if sub.UserID == "" {
			sub.UserID = ev.Subject
		}
		if uuid.Validate(sub.UserID) != nil {
			return events.Permanent(fmt.Errorf("%s %s: user id %q is not a UUID", ev.Type, ev.ID, sub.UserID))
		}
		tier := sub.Tier
		switch ev.Type {
		case billingevents.TypeSubscriptionExpired:
			tier = account.TierFree
		default:
			if tier == "" {
				tier = account.TierPro
			}
		}
		if !account.ValidTier(tier) {
			return events.Permanent(fmt.Errorf("%s %s: unknown tier %q", ev.Type, ev.ID, tier))
		}
		occurred := sub.OccurredAt
		if occurred.IsZero() {
			occurred = ev.Time
		}
		applied, err := store.ApplyTier(ctx, tx, account.TierChange{
			UserID: sub.UserID, Tier: tier, Seq: sub.Seq, OccurredAt: occurred,
		}, clk.Now())
		if err != nil {
			return err
		}
		logger.InfoContext(ctx, "subscription fact", "event_id", ev.ID, "type", ev.Type, "user_id", sub.UserID, "tier", tier, "seq", sub.Seq, "applied", applied)
		return nil
	}
}
