package schedule_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/schedule"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// pastClock is a store clock an hour behind, so reminders it accepts as still to come
// are already due for River, whose jobs then run as soon as the client starts.
func pastClock() *clock.Fake { return clock.NewFake(time.Now().UTC().Add(-time.Hour)) }

func newActor() store.Actor {
	return store.Actor{UserID: uuid.NewString(), Tier: task.Pro, Source: task.SourceUser}
}

// addReminder adds an absolute reminder at at to a new task of a; its job is inserted
// with it.
func addReminder(t *testing.T, e *bundle, a store.Actor, at time.Time) (task.Task, reminder.Reminder) {
	t.Helper()
	ctx := context.Background()
	tk, err := e.store.CreateTask(ctx, a, task.NewTask{Title: "task"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.store.CreateReminder(ctx, a, tk.ID, reminder.Input{Type: reminder.Absolute, ScheduledAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	return tk, r
}

func (e *bundle) reminderNotifications(t *testing.T, taskID string) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications WHERE type = 'reminder' AND task_id = $1`,
		taskID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReminderJobsThroughRiver: jobs of every kind, due together, are worked through the
// real River client: each outcome is reported to the Observer once with its delay, the
// current ones fire once each and their notifications are pushed after commit.
func TestReminderJobsThroughRiver(t *testing.T) {
	t.Parallel()
	clk := pastClock()
	e := setup(t, clk, nil)
	ctx := context.Background()
	a := newActor()
	at := clk.Now().Add(30 * time.Minute)

	curTask, cur := addReminder(t, e, a, at)
	movedTask, moved := addReminder(t, e, a, at)
	later := at.Add(time.Minute)
	if _, err := e.store.UpdateReminder(ctx, a, moved.ID, store.ReminderPatch{ScheduledAt: &later}); err != nil {
		t.Fatal(err)
	}
	closedTask, _ := addReminder(t, e, a, at)
	done := true
	if _, _, err := e.store.UpdateTask(ctx, a, closedTask.ID, task.Patch{Completed: &done}); err != nil {
		t.Fatal(err)
	}
	_, gone := addReminder(t, e, a, at)
	if err := e.store.DeleteReminder(ctx, a, gone.ID); err != nil {
		t.Fatal(err)
	}
	// A second job of the current version (a duplicate after a crash, say).
	if _, err := e.client.Insert(ctx, schedule.ReminderArgs{ReminderID: cur.ID, Version: cur.Version}, &river.InsertOpts{ScheduledAt: at}); err != nil {
		t.Fatal(err)
	}
	const jobs = 6 // cur ×2, moved v1 and v2, closed, gone
	e.start(t)
	eventually(t, "every reminder job to complete", 30*time.Second, func() bool { return e.jobStates(t)["completed"] == jobs })
	want := map[reminder.Outcome]int{reminder.Fire: 2, reminder.AlreadyDone: 1, reminder.Stale: 2, reminder.TaskClosed: 1}
	eventually(t, "the observer to see each outcome", 10*time.Second, func() bool {
		e.observed.mu.Lock()
		defer e.observed.mu.Unlock()
		return len(e.observed.delays) == jobs
	})
	for out, n := range want {
		if got := e.observed.count(out); got != n {
			t.Errorf("%s observed %d times, want %d", out, got, n)
		}
	}
	e.observed.mu.Lock()
	defer e.observed.mu.Unlock()
	for _, d := range e.observed.delays {
		if d < 29*time.Minute {
			t.Errorf("delay %s, want the time since the job was due (29 min and more)", d)
		}
	}
	for _, tk := range []task.Task{curTask, movedTask} {
		if n := e.reminderNotifications(t, tk.ID); n != 1 {
			t.Errorf("task %s: %d reminder notifications", tk.ID, n)
		}
	}
	if n := e.reminderNotifications(t, closedTask.ID); n != 0 {
		t.Errorf("the completed task got %d", n)
	}
	if e.pushed.len() != 2 {
		t.Errorf("%d notifications pushed, want 2", e.pushed.len())
	}
	var evs int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = $1`, tasksevents.TypeReminderFired).Scan(&evs); err != nil || evs != 2 {
		t.Errorf("%d %s events in the outbox, want 2 (%v)", evs, tasksevents.TypeReminderFired, err)
	}
}

// failingOnce fails the first batch it is given, then fires through the store.
type failingOnce struct {
	*store.Store
	failed atomic.Bool
	inIt   atomic.Int64
}

var errBatch = errors.New("the database went away")

func (f *failingOnce) FireReminders(ctx context.Context, jobs []store.ReminderJob) ([]reminder.Outcome, []task.Notification, error) {
	if f.failed.CompareAndSwap(false, true) {
		f.inIt.Store(int64(len(jobs)))
		return nil, nil, errBatch
	}
	return f.Store.FireReminders(ctx, jobs)
}

// TestReminderBatchRetried: when a batch's transaction fails, each of its jobs fails and
// River retries it; the retries fire each reminder once.
func TestReminderBatchRetried(t *testing.T) {
	t.Parallel()
	clk := pastClock()
	f := &failingOnce{}
	e := setup(t, clk, func(s *store.Store) schedule.Firer { f.Store = s; return f })
	a := newActor()
	at := clk.Now().Add(30 * time.Minute)
	var tasks []task.Task
	for range 8 {
		tk, _ := addReminder(t, e, a, at)
		tasks = append(tasks, tk)
	}
	e.start(t)
	eventually(t, "every reminder job to complete", 30*time.Second, func() bool { return e.jobStates(t)["completed"] == len(tasks) })
	var retried int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1 AND attempt = 2
		AND errors[1]->>'error' LIKE '%' || $2 || '%'`, schedule.ReminderArgs{}.Kind(), errBatch.Error()).Scan(&retried); err != nil {
		t.Fatal(err)
	}
	if !f.failed.Load() || int64(retried) != f.inIt.Load() {
		t.Fatalf("%d jobs retried after the failed batch of %d", retried, f.inIt.Load())
	}
	for _, tk := range tasks {
		if n := e.reminderNotifications(t, tk.ID); n != 1 {
			t.Errorf("task %s: %d reminder notifications", tk.ID, n)
		}
	}
	if got := e.observed.count(reminder.Fire); got != len(tasks) {
		t.Errorf("%d firings observed, want %d", got, len(tasks))
	}
}
