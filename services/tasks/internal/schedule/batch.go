package schedule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
)

// batcher fires the reminder jobs that run at the same moment in shared transactions
// (group commit): a job joins the queue of waiting jobs, and whichever job gets one of
// the concurrency slots takes up to max waiting jobs (its own or others') and fires them
// in one transaction, then hands each job its outcome. There is no timer: a lone job
// fires at once, and during a burst the jobs arriving while the slots are busy wait and
// go together in the next batch, so batches grow with the load.
type batcher struct {
	store     Firer
	publisher Publisher
	max       int
	slots     chan struct{}

	mu      sync.Mutex
	waiting []*fireRequest
}

// fireRequest is one job waiting for its outcome.
type fireRequest struct {
	job  store.ReminderJob
	done chan fireResult // buffered: the batch never blocks on a job that gave up
}

type fireResult struct {
	outcome reminder.Outcome
	err     error
}

func newBatcher(firer Firer, pub Publisher, size, concurrency int) *batcher {
	return &batcher{store: firer, publisher: pub, max: size, slots: make(chan struct{}, concurrency)}
}

// fire returns the outcome of job, fired in some batch. It returns ctx's error if ctx
// ends before a batch took the job; once taken, it waits for that batch's answer (the
// batch runs under the context of the job that runs it).
func (b *batcher) fire(ctx context.Context, job store.ReminderJob) (reminder.Outcome, error) {
	req := &fireRequest{job: job, done: make(chan fireResult, 1)}
	b.mu.Lock()
	b.waiting = append(b.waiting, req)
	b.mu.Unlock()
	for {
		select {
		case res := <-req.done:
			return res.outcome, res.err
		default:
		}
		select {
		case res := <-req.done:
			return res.outcome, res.err
		case b.slots <- struct{}{}:
			batch := b.take()
			if len(batch) == 0 {
				// Ours is in a batch that is running: wait for it.
				<-b.slots
				res := <-req.done
				return res.outcome, res.err
			}
			b.run(ctx, batch)
			<-b.slots
		case <-ctx.Done():
			if b.withdraw(req) {
				return "", ctx.Err()
			}
			res := <-req.done
			return res.outcome, res.err
		}
	}
}

// take removes up to max waiting jobs, oldest first.
func (b *batcher) take() []*fireRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(b.waiting), b.max)
	batch := make([]*fireRequest, n)
	copy(batch, b.waiting[:n])
	b.waiting = append(b.waiting[:0], b.waiting[n:]...)
	return batch
}

// withdraw removes req if no batch has taken it yet.
func (b *batcher) withdraw(req *fireRequest) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, r := range b.waiting {
		if r == req {
			b.waiting = append(b.waiting[:i], b.waiting[i+1:]...)
			return true
		}
	}
	return false
}

// run fires batch in one transaction, pushes its notifications after the commit and
// answers every job of it, also when the store panics (the panic goes on to River).
func (b *batcher) run(ctx context.Context, batch []*fireRequest) {
	answered := false
	defer func() {
		if p := recover(); p != nil {
			if !answered {
				for _, req := range batch {
					req.done <- fireResult{err: fmt.Errorf("fire reminders: panic: %v", p)}
				}
			}
			panic(p)
		}
	}()
	jobs := make([]store.ReminderJob, len(batch))
	for i, req := range batch {
		jobs[i] = req.job
	}
	results := b.fireSplitting(ctx, jobs)
	answered = true
	for i, req := range batch {
		req.done <- results[i]
	}
}

// fireSplitting fires jobs in one transaction and pushes its notifications. When the
// transaction fails for a reason of its own (a statement, a bad row) rather than the
// database being unreachable, it fires each half apart, recursively, so a reminder that
// always fails fails alone (River retries it) and its batch-mates fire now: k such
// reminders cost about 2·k·log₂(len(jobs)) more transactions.
func (b *batcher) fireSplitting(ctx context.Context, jobs []store.ReminderJob) []fireResult {
	out := make([]fireResult, len(jobs))
	outcomes, pushed, err := b.store.FireReminders(ctx, jobs)
	switch {
	case err == nil:
		if b.publisher != nil && len(pushed) > 0 {
			b.publisher.Publish(pushed...)
		}
		for i := range jobs {
			out[i] = fireResult{outcome: outcomes[i]}
		}
	case len(jobs) > 1 && splittable(ctx, err):
		mid := len(jobs) / 2
		copy(out, b.fireSplitting(ctx, jobs[:mid]))
		copy(out[mid:], b.fireSplitting(ctx, jobs[mid:]))
	default:
		for i := range out {
			out[i] = fireResult{err: err}
		}
	}
	return out
}

// splittable: the batch failed for something in it, not because its context ended or
// the database cannot be reached (then every half would fail too).
func splittable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return !errors.As(err, &netErr) && !errors.As(err, &connectErr) && !pgconn.SafeToRetry(err)
}
