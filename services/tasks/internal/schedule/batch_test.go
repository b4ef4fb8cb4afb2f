package schedule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// gate is a Firer whose batches wait until the test lets them go; it records every
// batch, the most running at once, and answers each job by its version (even: fire).
type gate struct {
	release chan struct{}
	fail    func(jobs []store.ReminderJob) error

	mu      sync.Mutex
	running int
	most    int
	batches [][]store.ReminderJob
}

func (g *gate) FireReminders(ctx context.Context, jobs []store.ReminderJob) ([]reminder.Outcome, []task.Notification, error) {
	g.mu.Lock()
	g.running++
	g.most = max(g.most, g.running)
	g.batches = append(g.batches, jobs)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	if g.fail != nil {
		if err := g.fail(jobs); err != nil {
			return nil, nil, err
		}
	}
	outcomes := make([]reminder.Outcome, len(jobs))
	var ns []task.Notification
	for i, j := range jobs {
		outcomes[i] = reminder.Stale
		if j.Version%2 == 0 {
			outcomes[i] = reminder.Fire
			ns = append(ns, task.Notification{ID: j.ID})
		}
	}
	return outcomes, ns, nil
}

func (g *gate) stats() (most int, batches [][]store.ReminderJob) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.most, append([][]store.ReminderJob(nil), g.batches...)
}

type published struct {
	mu sync.Mutex
	ns []task.Notification
}

func (p *published) Publish(ns ...task.Notification) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ns = append(p.ns, ns...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type answer struct {
	job     store.ReminderJob
	outcome reminder.Outcome
	err     error
}

// fireAll runs fire for n jobs at once and returns their answers.
func fireAll(ctx context.Context, b *batcher, jobs []store.ReminderJob) chan answer {
	out := make(chan answer, len(jobs))
	for _, j := range jobs {
		go func() {
			o, err := b.fire(ctx, j)
			out <- answer{j, o, err}
		}()
	}
	return out
}

func jobsN(n int) []store.ReminderJob {
	out := make([]store.ReminderJob, n)
	for i := range out {
		out[i] = store.ReminderJob{ID: fmt.Sprintf("r%02d", i), Version: i}
	}
	return out
}

// TestBatcherGroupsJobs: jobs arriving while the slots are busy go together in batches of
// at most the batch size, never more batches at once than the concurrency, each job
// gets its own outcome, and each batch's notifications are pushed once.
func TestBatcherGroupsJobs(t *testing.T) {
	t.Parallel()
	g := &gate{release: make(chan struct{})}
	pub := &published{}
	b := newBatcher(g, pub, 5, 2)
	jobs := jobsN(23)
	answers := fireAll(context.Background(), b, jobs)
	waitFor(t, "the slots to fill and the rest to wait", func() bool {
		most, _ := g.stats()
		b.mu.Lock()
		defer b.mu.Unlock()
		return most == 2 && len(b.waiting) >= 23-2*5
	})
	close(g.release)
	got := map[string]reminder.Outcome{}
	for range jobs {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		got[a.job.ID] = a.outcome
	}
	for _, j := range jobs {
		want := reminder.Stale
		if j.Version%2 == 0 {
			want = reminder.Fire
		}
		if got[j.ID] != want {
			t.Errorf("job %s: %s, want %s", j.ID, got[j.ID], want)
		}
	}
	most, batches := g.stats()
	seen := map[string]int{}
	for _, batch := range batches {
		if len(batch) > 5 {
			t.Errorf("a batch of %d", len(batch))
		}
		for _, j := range batch {
			seen[j.ID]++
		}
	}
	if most > 2 || len(seen) != len(jobs) {
		t.Fatalf("%d batches at once; %d jobs fired, want %d", most, len(seen), len(jobs))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %s in %d batches", id, n)
		}
	}
	if len(pub.ns) != 12 {
		t.Fatalf("%d notifications pushed, want 12", len(pub.ns))
	}
}

// TestBatcherFailedBatch: every job of a failed batch gets its error (River retries
// them) and the other batches are not affected; nothing of the failed batch is pushed.
// TestBatcherFailedBatch: a batch that fails for one poisoned job is split until that job
// fails alone; every other job fires, and nothing of a failed transaction is pushed.
func TestBatcherFailedBatch(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	g := &gate{release: make(chan struct{}), fail: func(jobs []store.ReminderJob) error {
		for _, j := range jobs {
			if j.ID == "r00" {
				return boom
			}
		}
		return nil
	}}
	close(g.release)
	pub := &published{}
	b := newBatcher(g, pub, 4, 1)
	jobs := jobsN(12)
	answers := fireAll(context.Background(), b, jobs)
	for range jobs {
		a := <-answers
		switch {
		case a.job.ID == "r00" && !errors.Is(a.err, boom):
			t.Errorf("the poisoned job: %v, want its own error", a.err)
		case a.job.ID != "r00" && a.err != nil:
			t.Errorf("job %s failed with its poisoned batch-mate: %v", a.job.ID, a.err)
		}
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	for _, n := range pub.ns {
		if n.ID == "r00" {
			t.Error("pushed the notification of the failed job")
		}
	}
}

// A batch that fails because the database is unreachable is not split: every half would
// fail the same way.
func TestBatcherDoesNotSplitWhenTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	down := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	g := &gate{release: make(chan struct{}), fail: func([]store.ReminderJob) error { return down }}
	b := newBatcher(g, &published{}, 8, 1)
	jobs := jobsN(9)
	answers := fireAll(context.Background(), b, jobs)
	// One job's batch runs; the other 8 wait and go together in the next.
	waitFor(t, "one batch running and 8 jobs waiting", func() bool {
		most, _ := g.stats()
		b.mu.Lock()
		defer b.mu.Unlock()
		return most == 1 && len(b.waiting) == 8
	})
	close(g.release)
	for range jobs {
		if a := <-answers; !errors.Is(a.err, down) {
			t.Fatalf("job %s: %v, want the connection error", a.job.ID, a.err)
		}
	}
	if _, batches := g.stats(); len(batches) != 2 {
		t.Fatalf("%d transactions, want 2: a failure of the connection was split", len(batches))
	}
}

// TestBatcherGivesUp: a job whose context ends while it waits for a slot returns the
// context's error and is never fired.
func TestBatcherGivesUp(t *testing.T) {
	t.Parallel()
	g := &gate{release: make(chan struct{})}
	b := newBatcher(g, nil, 10, 1)
	first := fireAll(context.Background(), b, jobsN(1))
	waitFor(t, "the first batch to run", func() bool { most, _ := g.stats(); return most == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	late := fireAll(ctx, b, []store.ReminderJob{{ID: "late", Version: 2}})
	waitFor(t, "the late job to wait", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiting) == 1 })
	cancel()
	if a := <-late; !errors.Is(a.err, context.Canceled) {
		t.Fatalf("the late job: %+v", a)
	}
	close(g.release)
	if a := <-first; a.err != nil || a.outcome != reminder.Fire {
		t.Fatalf("the first job: %+v", a)
	}
	if _, batches := g.stats(); len(batches) != 1 {
		t.Fatalf("batches %v", batches)
	}
}

// panicker is a Firer that panics.
type panicker struct{}

func (panicker) FireReminders(context.Context, []store.ReminderJob) ([]reminder.Outcome, []task.Notification, error) {
	panic("store bug")
}

// TestBatcherPanic: a panic in the store answers every job of the batch with an error,
// so none waits forever, and goes on to River in the job that ran the batch.
func TestBatcherPanic(t *testing.T) {
	t.Parallel()
	b := newBatcher(panicker{}, nil, 10, 1)
	req := &fireRequest{job: store.ReminderJob{ID: "other"}, done: make(chan fireResult, 1)}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the runner")
			}
		}()
		b.run(context.Background(), []*fireRequest{req})
	}()
	if res := <-req.done; res.err == nil {
		t.Fatalf("answer %+v", res)
	}
}
