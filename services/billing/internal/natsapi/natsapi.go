// Package natsapi is billing's NATS edge: the request-reply endpoints other services
// charge credits through (svc.billing.credits.consume|refund|balance) and the consumers
// of auth's and tasks' events (kickstart credits, daily-credit perks, erasure).
package natsapi

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/natsx"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
)

// Limits of a request-reply consume.
const (
	// MaxConsume bounds one debit (a 300 s transcription costs 25).
	MaxConsume = 1000
	// MaxOperationIDLength matches the Idempotency-Key it usually is.
	MaxOperationIDLength = 255
)

// Durable consumer names (part of the contract: STYLE.md).
const (
	DurableUserCreated = "billing-user-created"
	DurableUserDeleted = "billing-user-deleted"
	DurableAchievement = "billing-achievement-unlocked"
)

// Credits answers the request-reply endpoints.
type Credits struct {
	Store *store.Store
	Clock clock.Clock
	// Consumed and Refunded count credits by reason (nil: not counted).
	Consumed *prometheus.CounterVec
	Refunded *prometheus.CounterVec
}

// NewCreditMetrics registers billing_credits_consumed_total and
// billing_credits_refunded_total (by reason) on reg.
func NewCreditMetrics(reg prometheus.Registerer) (consumed, refunded *prometheus.CounterVec, err error) {
	consumed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "billing_credits_consumed_total", Help: "Credits debited by request-reply consumes, by reason (a retried operation counts once).",
	}, []string{"reason"})
	refunded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "billing_credits_refunded_total", Help: "Credits given back by refunds, by reason.",
	}, []string{"reason"})
	for _, c := range []prometheus.Collector{consumed, refunded} {
		if err := reg.Register(c); err != nil {
			return nil, nil, err
		}
	}
	return consumed, refunded, nil
}

// Register adds the endpoints to s.
func (c *Credits) Register(s *rpc.Service) error {
	if err := rpc.Handle(s, billingrpc.SubjectConsume, c.consume); err != nil {
		return err
	}
	if err := rpc.Handle(s, billingrpc.SubjectRefund, c.refund); err != nil {
		return err
	}
	return rpc.Handle(s, billingrpc.SubjectBalance, c.balance)
}

func balanceDTO(b credit.Balance) billingrpc.Balance {
	return billingrpc.Balance{
		Daily: b.Daily, Subscription: b.Subscription, Purchased: b.Purchased, Kickstart: b.Kickstart,
		Total: b.Total(), DailyResetsAt: b.DailyResetsAt.UTC().Format(time.RFC3339),
	}
}

func checkOperation(v *apperr.Validator, userID, operationID string) {
	v.Check(store.ValidUserID(userID), "user_id", "must be a UUID")
	v.Check(operationID != "" && len(operationID) <= MaxOperationIDLength, "operation_id", "must be 1–255 characters")
}

func (c *Credits) consume(ctx context.Context, req billingrpc.ConsumeRequest) (billingrpc.ConsumeResponse, error) {
	var v apperr.Validator
	checkOperation(&v, req.UserID, req.OperationID)
	v.Check(req.Amount >= 1 && req.Amount <= MaxConsume, "amount", "must be from 1 to 1000")
	if err := v.Err(); err != nil {
		return billingrpc.ConsumeResponse{}, err
	}
	if req.Reason == "" {
		req.Reason = "ai"
	}
	res, err := c.Store.Consume(ctx, req.UserID, req.OperationID, req.Amount, req.Reason, c.Clock.Now())
	if err != nil {
		return billingrpc.ConsumeResponse{}, store.Unavailable(err)
	}
	if c.Consumed != nil && !res.Replayed {
		c.Consumed.WithLabelValues(req.Reason).Add(float64(res.Charged))
	}
	return billingrpc.ConsumeResponse{OperationID: res.OperationID, Charged: res.Charged, Balance: balanceDTO(res.Balance)}, nil
}

func (c *Credits) refund(ctx context.Context, req billingrpc.RefundRequest) (billingrpc.RefundResponse, error) {
	var v apperr.Validator
	checkOperation(&v, req.UserID, req.OperationID)
	if err := v.Err(); err != nil {
		return billingrpc.RefundResponse{}, err
	}
	if req.Reason == "" {
		req.Reason = "refund"
	}
	res, err := c.Store.Refund(ctx, req.UserID, req.OperationID, req.Reason, c.Clock.Now())
	if err != nil {
		return billingrpc.RefundResponse{}, store.Unavailable(err)
	}
	if c.Refunded != nil && !res.Replayed && res.Refunded > 0 {
		c.Refunded.WithLabelValues(req.Reason).Add(float64(res.Refunded))
	}
	return billingrpc.RefundResponse{OperationID: res.OperationID, Refunded: res.Refunded, Balance: balanceDTO(res.Balance)}, nil
}

func (c *Credits) balance(ctx context.Context, req billingrpc.BalanceRequest) (billingrpc.Balance, error) {
	if !store.ValidUserID(req.UserID) {
		return billingrpc.Balance{}, apperr.Invalid(apperr.Field("user_id", "must be a UUID"))
	}
	b, err := c.Store.Balance(ctx, req.UserID, c.Clock.Now())
	if err != nil {
		return billingrpc.Balance{}, store.Unavailable(err)
	}
	return balanceDTO(b), nil
}

// Consumers are billing's event consumers.
type Consumers struct {
	Store  *store.Store
	Clock  clock.Clock
	Logger *slog.Logger
}

// Workers builds the consumers (each a durable JetStream consumer with an inbox).
func (c *Consumers) Workers(pool *pgxpool.Pool, js jetstream.JetStream, metrics *events.Metrics) ([]svc.Worker, error) {
	specs := []struct {
		stream, durable, subject string
		h                        events.TxHandler
	}{
		{natsx.StreamAuth.Name, DurableUserCreated, authevents.TypeUserCreated, c.userCreated},
		{natsx.StreamAuth.Name, DurableUserDeleted, authevents.TypeUserDeleted, c.userDeleted},
		{natsx.StreamTasks.Name, DurableAchievement, tasksevents.TypeAchievementUnlocked, c.achievementUnlocked},
	}
	var out []svc.Worker
	for _, s := range specs {
		cons, err := events.NewConsumer(pool, js, events.ConsumerConfig{
			Stream: s.stream, Durable: s.durable, Subjects: []string{s.subject}, Metrics: metrics,
		}, s.h, c.Logger)
		if err != nil {
			return nil, err
		}
		out = append(out, cons.Worker())
	}
	return out, nil
}

func (c *Consumers) userCreated(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var d authevents.UserCreated
	if err := ev.Decode(&d); err != nil {
		return events.Permanent(err)
	}
	if !store.ValidUserID(d.UserID) {
		return events.Permanent(apperr.Invalid(apperr.Field("user_id", "must be a UUID")))
	}
	signedUp := d.CreatedAt
	if signedUp.IsZero() {
		signedUp = ev.Time
	}
	return c.Store.GrantKickstart(ctx, tx, d.UserID, signedUp, c.Clock.Now())
}

func (c *Consumers) userDeleted(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var d authevents.UserDeleted
	if err := ev.Decode(&d); err != nil {
		return events.Permanent(err)
	}
	if !store.ValidUserID(d.UserID) {
		return events.Permanent(apperr.Invalid(apperr.Field("user_id", "must be a UUID")))
	}
	return c.Store.EraseUser(ctx, tx, d.UserID)
}

func (c *Consumers) achievementUnlocked(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	var d tasksevents.AchievementUnlocked
	if err := ev.Decode(&d); err != nil {
		return events.Permanent(err)
	}
	if !store.ValidUserID(d.UserID) {
		return events.Permanent(apperr.Invalid(apperr.Field("user_id", "must be a UUID")))
	}
	for _, p := range store.PerkDailyCredits {
		if d.PerkType == p {
			return c.Store.AddPerk(ctx, tx, d.UserID, d.AchievementID, d.PerkValue, c.Clock.Now())
		}
	}
	return nil // other perks (max_tasks, max_notes) are the tasks service's
}
