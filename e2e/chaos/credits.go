package chaos

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
)

// CreditOp is one consume the credit load sent, retried with its operation id until it
// got a definite answer.
type CreditOp struct {
	UserID      string
	OperationID string
	Charged     int  // credits the answer said it took
	Refused     bool // INSUFFICIENT_CREDITS: a definite answer that took nothing
	Settled     bool // a definite answer came (false: gave up while the system was down)
	Attempts    int
	At          time.Time // the first attempt
	// InternalAt holds when attempts were answered INTERNAL_ERROR (a dependency failure
	// shown as a 500).
	InternalAt []time.Time
}

// Credits consumes one credit at a time over svc.billing.credits.consume, as the ai
// service does, and retries each operation with the same id after a failure, so a retry
// that reaches billing twice must not charge twice.
type Credits struct {
	nc    *nats.Conn
	users []User
	rate  int

	mu     sync.Mutex
	ops    []*CreditOp
	cancel context.CancelFunc
	done   chan struct{}
}

// NewCredits prepares a credit load of rate consumes per second on a connection that
// reconnects for ever (the broker is stopped during the run).
func NewCredits(natsURL string, users []User, rate int) (*Credits, error) {
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.Name("chaos-credits"))
	if err != nil {
		return nil, err
	}
	return &Credits{nc: nc, users: users, rate: rate}, nil
}

// Start sends consumes, one operation at a time per tick, in a goroutine per operation
// (bounded by the tick rate and each operation's give-up deadline).
func (c *Credits) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		t := time.NewTicker(time.Second / time.Duration(c.rate))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			op := &CreditOp{UserID: c.users[i%len(c.users)].ID, OperationID: uuid.NewString(), At: time.Now()}
			c.mu.Lock()
			c.ops = append(c.ops, op)
			c.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.settle(op)
			}()
		}
	}()
}

// settle retries op until a definite answer, for at most a minute (longer than any fault).
func (c *Credits) settle(op *CreditOp) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		at := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := rpc.Call[billingrpc.ConsumeRequest, billingrpc.ConsumeResponse](ctx, c.nc, billingrpc.SubjectConsume,
			billingrpc.ConsumeRequest{UserID: op.UserID, OperationID: op.OperationID, Amount: 1, Reason: "ai.chat"})
		cancel()
		c.mu.Lock()
		op.Attempts++
		switch {
		case err == nil:
			op.Charged, op.Settled = resp.Charged, true
		case apperr.CodeOf(err) == apperr.InsufficientCredits:
			op.Refused, op.Settled = true, true
		case apperr.CodeOf(err) == apperr.Internal:
			op.InternalAt = append(op.InternalAt, at)
		}
		settled := op.Settled
		c.mu.Unlock()
		if settled {
			return
		}
		if !retryable(err) {
			return
		}
		time.Sleep(200 * time.Millisecond) // pace the retries of this one operation
	}
}

func retryable(err error) bool {
	code := apperr.CodeOf(err)
	return code == apperr.ServiceUnavailable || code == apperr.Internal || errors.Is(err, context.DeadlineExceeded)
}

// Stop ends the load and waits until every operation settled or gave up.
func (c *Credits) Stop() {
	c.cancel()
	<-c.done
	c.nc.Close()
}

// Ops is a copy of every operation sent.
func (c *Credits) Ops() []CreditOp {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]CreditOp, len(c.ops))
	for i, op := range c.ops {
		out[i] = *op
		out[i].InternalAt = append([]time.Time(nil), op.InternalAt...)
	}
	return out
}
