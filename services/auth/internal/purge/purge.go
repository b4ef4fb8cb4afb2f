// Package purge removes what auth no longer needs, once a day: expired refresh tokens,
// sessions that can no longer refresh (expired, or revoked longer than the retention),
// published outbox rows past their replay window and old inbox rows.
package purge

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

// Interval is how often the purge runs.
const Interval = 24 * time.Hour

// InboxRetention outlives every possible redelivery: the streams keep events for
// events.RetentionPeriod and a replay may resend them within it (libs/events advice).
const InboxRetention = 2 * events.RetentionPeriod

// Purger runs one purge pass.
type Purger struct {
	Pool   *pgxpool.Pool
	Store  *store.Store
	Clock  clock.Clock
	Logger *slog.Logger
}

// Once runs every purge at the clock's now and logs what it removed.
func (p *Purger) Once(ctx context.Context) error {
	now := p.Clock.Now()
	tokens, sessions, err := p.Store.Purge(ctx, now)
	if err != nil {
		return err
	}
	outbox, err := events.PurgePublished(ctx, p.Pool, now.Add(-events.RetentionPeriod))
	if err != nil {
		return err
	}
	inbox, err := events.PurgeInbox(ctx, p.Pool, now.Add(-InboxRetention))
	if err != nil {
		return err
	}
	p.Logger.InfoContext(ctx, "purged", "refresh_tokens", tokens, "sessions", sessions, "outbox", outbox, "inbox", inbox)
	return nil
}

// Worker runs Once at start and then every Interval until ctx ends. A failed pass is
// logged and retried at the next tick; it never stops the service.
func (p *Purger) Worker() svc.Worker {
	return svc.Worker{Name: "purge", Run: func(ctx context.Context) error {
		t := time.NewTicker(Interval)
		defer t.Stop()
		for {
			if err := p.Once(ctx); err != nil && ctx.Err() == nil {
				p.Logger.ErrorContext(ctx, "purge failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}}
}
