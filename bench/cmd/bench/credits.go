package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/perpetua-flow/backend/bench/internal/report"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
)

// plentyOfCredits is what each credit user is given, so no consume is refused.
const plentyOfCredits = 100_000_000

// creditPhases measures consumes over svc.billing.credits.consume as the ai service sends
// them (rpc.Call, one operation id each) from b.o.conns goroutines on one connection: all
// for one hot user (they serialise on its account lock), then spread over 1,000 users.
func (b *bench) creditPhases(ctx context.Context) ([]report.Phase, error) {
	hot := uuid.NewString()
	many := make([]string, 1000)
	for i := range many {
		many[i] = uuid.NewString()
	}
	if err := b.grantCredits(ctx, append([]string{hot}, many...)); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(b.natsURL, nats.Name("bench"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	consume := func(pick func(w, i int) string) func(ctx context.Context, w, i int) error {
		return func(ctx context.Context, w, i int) error {
			_, err := rpc.Call[billingrpc.ConsumeRequest, billingrpc.ConsumeResponse](ctx, nc, billingrpc.SubjectConsume,
				billingrpc.ConsumeRequest{UserID: pick(w, i), OperationID: uuid.NewString(), Amount: 1, Reason: "ai.chat"})
			return err
		}
	}
	return []report.Phase{
		b.loop(ctx, "nats/credits-hot-user/max", "consume 1 credit, one hot user", "nats", consume(func(int, int) string { return hot })),
		b.loop(ctx, "nats/credits-1000-users/max", "consume 1 credit, 1,000 users", "nats", consume(func(w, i int) string { return many[(w*131+i)%len(many)] })),
	}, nil
}

// grantCredits opens billing accounts with a purchased grant for users (setup by SQL:
// the same rows a captured purchase writes, without the payment).
func (b *bench) grantCredits(ctx context.Context, users []string) error {
	now := time.Now().UTC()
	if _, err := b.pool.Exec(ctx, `
		INSERT INTO billing.credit_accounts (user_id, created_at, updated_at)
		SELECT u, $2, $2 FROM unnest($1::uuid[]) AS u ON CONFLICT DO NOTHING`, users, now); err != nil {
		return fmt.Errorf("credit accounts: %w", err)
	}
	if _, err := b.pool.Exec(ctx, `
		INSERT INTO billing.credit_grants (id, user_id, kind, amount, remaining, source, source_ref, created_at)
		SELECT gen_random_uuid(), u, 'purchased', $2, $2, 'bench', gen_random_uuid()::text, $3 FROM unnest($1::uuid[]) AS u`,
		users, plentyOfCredits, now); err != nil {
		return fmt.Errorf("credit grants: %w", err)
	}
	return nil
}
