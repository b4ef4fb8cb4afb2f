package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// firing is a store whose Emitter writes each event to a table of the test database, in
// the writing transaction, as the outbox does; fail, when set, makes the Emitter fail.
type firing struct {
	s    *store.Store
	pool *pgxpool.Pool
	clk  *clock.Fake
	fail atomic.Value // func(ctx, tx) error
}

var start = time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)

func setupFiring(t *testing.T) *firing {
	t.Helper()
	_, pool := setup(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE test_events (type text NOT NULL, user_id uuid NOT NULL, reminder_id uuid NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	f := &firing{pool: pool, clk: clock.NewFake(start)}
	f.fail.Store(func(context.Context, pgx.Tx) error { return nil })
	f.s = store.New(pool, f.clk, func(ctx context.Context, tx pgx.Tx, typ, userID string, data any) error {
		if err := f.fail.Load().(func(context.Context, pgx.Tx) error)(ctx, tx); err != nil {
			return err
		}
		ev, ok := data.(tasksevents.ReminderFired)
		if !ok {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO test_events (type, user_id, reminder_id) VALUES ($1, $2, $3)`, typ, userID, ev.ReminderID)
		return err
	})
	return f
}

// reminderAt adds an absolute reminder at to a new task of a.
func (f *firing) reminderAt(t *testing.T, a store.Actor, at time.Time) (task.Task, reminder.Reminder) {
	t.Helper()
	ctx := context.Background()
	tk, err := f.s.CreateTask(ctx, a, task.NewTask{Title: "task"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.s.CreateReminder(ctx, a, tk.ID, reminder.Input{Type: reminder.Absolute, ScheduledAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	return tk, r
}

// effects counts what firing r left behind: reminder notifications of its task, activity
// rows and events of r, and whether it is marked fired.
func (f *firing) effects(t *testing.T, taskID, reminderID string) (notes, activity, events int, fired bool) {
	t.Helper()
	err := f.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM notifications WHERE type = 'reminder' AND task_id = $1),
		(SELECT count(*) FROM activity WHERE entity_type = 'reminder' AND entity_id = $2::text AND action = 'fired'),
		(SELECT count(*) FROM test_events WHERE type = $3 AND reminder_id = $2::uuid),
		coalesce((SELECT fired FROM reminders WHERE id = $2::uuid), false)`, taskID, reminderID, tasksevents.TypeReminderFired).
		Scan(&notes, &activity, &events, &fired)
	if err != nil {
		t.Fatal(err)
	}
	return notes, activity, events, fired
}

// TestFireRemindersBatch: one batch holding a job of each kind gives each its outcome,
// and exactly the current ones fire: one notification (returned to push, with its seq),
// one activity row and one tasks.reminder.fired event each.
func TestFireRemindersBatch(t *testing.T) {
	t.Parallel()
	f := setupFiring(t)
	ctx := context.Background()
	a, b := actor(task.Pro), actor(task.Free)
	at := start.Add(time.Hour)

	curTask, cur := f.reminderAt(t, a, at)
	otherTask, other := f.reminderAt(t, b, at) // another user's, in the same batch
	movedTask, moved := f.reminderAt(t, a, at)
	later := at.Add(time.Minute)
	if _, err := f.s.UpdateReminder(ctx, a, moved.ID, store.ReminderPatch{ScheduledAt: &later}); err != nil {
		t.Fatal(err)
	}
	closedTask, closed := f.reminderAt(t, a, at)
	done := true
	if _, _, err := f.s.UpdateTask(ctx, a, closedTask.ID, task.Patch{Completed: &done}); err != nil {
		t.Fatal(err)
	}
	gone1Task, gone1 := f.reminderAt(t, a, at)
	if err := f.s.DeleteReminder(ctx, a, gone1.ID); err != nil {
		t.Fatal(err)
	}
	gone2Task, gone2 := f.reminderAt(t, a, at)
	if _, err := f.s.DeleteTask(ctx, a, gone2Task.ID); err != nil {
		t.Fatal(err)
	}
	firedTask, fired := f.reminderAt(t, a, at)
	due := start.Add(2 * time.Hour)
	relTask, err := f.s.CreateTask(ctx, a, task.NewTask{Title: "relative", DueDate: &due})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := f.s.CreateReminder(ctx, a, relTask.ID, reminder.Input{Type: reminder.Before, OffsetMinutes: ptr(60)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.s.UpdateTask(ctx, a, relTask.ID, task.Patch{DueDate: task.Clear[time.Time]()}); err != nil {
		t.Fatal(err)
	}

	f.clk.Set(at)
	if out, ns, err := f.s.FireReminder(ctx, fired.ID, fired.Version); err != nil || out != reminder.Fire || len(ns) != 1 {
		t.Fatalf("first firing: %s %v %v", out, ns, err)
	}
	relNow, err := f.s.GetTask(ctx, a.UserID, relTask.ID)
	if err != nil {
		t.Fatal(err)
	}
	jobs := []store.ReminderJob{
		{ID: cur.ID, Version: cur.Version},
		{ID: moved.ID, Version: moved.Version},
		{ID: closed.ID, Version: closed.Version},
		{ID: gone1.ID, Version: gone1.Version},
		{ID: gone2.ID, Version: gone2.Version},
		{ID: fired.ID, Version: fired.Version},
		{ID: rel.ID, Version: relNow.Reminders[0].Version},
		{ID: other.ID, Version: other.Version},
		{ID: cur.ID, Version: cur.Version}, // the same job twice in one batch
		{ID: "not-a-uuid", Version: 1},
	}
	want := []reminder.Outcome{reminder.Fire, reminder.Stale, reminder.TaskClosed, reminder.Stale, reminder.Stale,
		reminder.AlreadyDone, reminder.Unscheduled, reminder.Fire, reminder.AlreadyDone, reminder.Stale}
	outcomes, pushed, err := f.s.FireReminders(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	if len(pushed) != 2 {
		t.Fatalf("%d notifications to push, want 2: %+v", len(pushed), pushed)
	}
	for i, tk := range []task.Task{curTask, otherTask} {
		n := pushed[i]
		if n.UserID != tk.UserID || n.TaskID == nil || *n.TaskID != tk.ID || n.Seq == 0 || n.Type != task.NotificationReminder {
			t.Fatalf("notification %d: %+v", i, n)
		}
	}
	cases := []struct {
		name            string
		task            task.Task
		r               reminder.Reminder
		notes, act, evs int
		firedNow        bool
	}{
		{"current", curTask, cur, 1, 1, 1, true},
		{"other user", otherTask, other, 1, 1, 1, true},
		{"moved", movedTask, moved, 0, 0, 0, false},
		{"completed task", closedTask, closed, 0, 0, 0, false},
		{"deleted reminder", gone1Task, gone1, 0, 0, 0, false},
		{"deleted task", gone2Task, gone2, 0, 0, 0, false},
		{"fired before", firedTask, fired, 1, 1, 1, true},
		{"unscheduled", relTask, rel, 0, 0, 0, false},
	}
	for _, c := range cases {
		notes, act, evs, firedNow := f.effects(t, c.task.ID, c.r.ID)
		if notes != c.notes || act != c.act || evs != c.evs || firedNow != c.firedNow {
			t.Errorf("%s: %d notifications, %d activity rows, %d events, fired %v; want %d, %d, %d, %v",
				c.name, notes, act, evs, firedNow, c.notes, c.act, c.evs, c.firedNow)
		}
	}
	// The job of the moved reminder's new version fires it.
	movedNow, err := f.s.GetTask(ctx, a.UserID, movedTask.ID)
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := f.s.FireReminder(ctx, moved.ID, movedNow.Reminders[0].Version); err != nil || out != reminder.Fire {
		t.Fatalf("the moved reminder's current job: %s %v", out, err)
	}
}

// TestFireRemindersFailedBatch: a batch whose transaction fails (its Emitter returns an
// error, or a statement it queued fails in Postgres) fires none of its reminders, and
// its retry fires each once.
func TestFireRemindersFailedBatch(t *testing.T) {
	t.Parallel()
	boom := errors.New("outbox down")
	failures := []struct {
		name string
		fail func(ctx context.Context, tx pgx.Tx) error
		want func(error) bool
	}{
		{"emitter error", func(context.Context, pgx.Tx) error { return boom }, func(err error) bool { return errors.Is(err, boom) }},
		{"failing statement", func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO no_such_table VALUES (1)`)
			return err
		}, func(err error) bool { return err != nil }},
	}
	for _, fc := range failures {
		t.Run(fc.name, func(t *testing.T) {
			t.Parallel()
			f := setupFiring(t)
			ctx := context.Background()
			a := actor(task.Pro)
			at := start.Add(time.Hour)
			var jobs []store.ReminderJob
			var tasks []task.Task
			for range 3 {
				tk, r := f.reminderAt(t, a, at)
				jobs, tasks = append(jobs, store.ReminderJob{ID: r.ID, Version: r.Version}), append(tasks, tk)
			}
			f.clk.Set(at)
			f.fail.Store(fc.fail)
			if outcomes, pushed, err := f.s.FireReminders(ctx, jobs); !fc.want(err) || outcomes != nil || pushed != nil {
				t.Fatalf("failed batch: %v %v %v", outcomes, pushed, err)
			}
			for i, j := range jobs {
				if notes, act, evs, fired := f.effects(t, tasks[i].ID, j.ID); notes+act+evs != 0 || fired {
					t.Fatalf("after the failed batch: %d %d %d %v", notes, act, evs, fired)
				}
			}
			f.fail.Store(func(context.Context, pgx.Tx) error { return nil })
			for range 2 { // the retry, and a duplicate of it
				if _, _, err := f.s.FireReminders(ctx, jobs); err != nil {
					t.Fatal(err)
				}
			}
			for i, j := range jobs {
				if notes, act, evs, fired := f.effects(t, tasks[i].ID, j.ID); notes != 1 || act != 1 || evs != 1 || !fired {
					t.Fatalf("after the retry: %d %d %d %v", notes, act, evs, fired)
				}
			}
		})
	}
}

// TestFireRemindersConcurrentBatches: batches running at once that share reminders, in
// opposite orders and across the reminders of one task, fire each reminder once and
// never deadlock.
func TestFireRemindersConcurrentBatches(t *testing.T) {
	t.Parallel()
	f := setupFiring(t)
	ctx := context.Background()
	a := actor(task.Pro)
	at := start.Add(time.Hour)
	var jobs []store.ReminderJob
	tasks := map[string]string{}
	for range 4 {
		tk, err := f.s.CreateTask(ctx, a, task.NewTask{Title: "shared"})
		if err != nil {
			t.Fatal(err)
		}
		for range task.MaxRemindersPerTask {
			r, err := f.s.CreateReminder(ctx, a, tk.ID, reminder.Input{Type: reminder.Absolute, ScheduledAt: &at})
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, store.ReminderJob{ID: r.ID, Version: r.Version})
			tasks[r.ID] = tk.ID
		}
	}
	f.clk.Set(at)
	reversed := slices.Clone(jobs)
	slices.Reverse(reversed)
	batches := [][]store.ReminderJob{jobs, reversed, jobs[:len(jobs)/2], reversed[:len(jobs)/2], jobs[len(jobs)/3:]}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fires = map[string]int{}
		errs  []error
	)
	for _, batch := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes, _, err := f.s.FireReminders(ctx, batch)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for i, out := range outcomes {
				switch out {
				case reminder.Fire:
					fires[batch[i].ID]++
				case reminder.AlreadyDone:
				default:
					errs = append(errs, errors.New("unexpected outcome "+string(out)))
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, j := range jobs {
		if fires[j.ID] != 1 {
			t.Errorf("reminder %s fired %d times", j.ID, fires[j.ID])
		}
		if notes, act, evs, fired := f.effects(t, tasks[j.ID], j.ID); act != 1 || evs != 1 || !fired || notes != task.MaxRemindersPerTask {
			t.Errorf("reminder %s: %d notifications of its task, %d activity rows, %d events, fired %v", j.ID, notes, act, evs, fired)
		}
	}
}
