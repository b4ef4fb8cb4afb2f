package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/clock"

	"github.com/perpetua-flow/backend/services/tasks/internal/recurring"
	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// clocked is a store on a fresh database whose clock the test moves.
func clocked(t *testing.T, start time.Time) (*store.Store, *clock.Fake) {
	t.Helper()
	_, pool := setup(t)
	clk := clock.NewFake(start)
	return store.New(pool, clk, nil), clk
}

func completeNew(t *testing.T, s *store.Store, a store.Actor, title string) task.Completion {
	t.Helper()
	ctx := context.Background()
	tk, err := s.CreateTask(ctx, a, task.NewTask{Title: title})
	if err != nil {
		t.Fatal(err)
	}
	done := true
	_, comp, err := s.UpdateTask(ctx, a, tk.ID, task.Patch{Completed: &done})
	if err != nil {
		t.Fatal(err)
	}
	return comp
}

// TestStreakAcrossMidnightAndMonthEnd drives the streak through the completion path with
// the store's clock: the last second of January and the first of February are two days;
// a day without a completion reads as 0 and the next completion starts again at 1.
func TestStreakAcrossMidnightAndMonthEnd(t *testing.T) {
	t.Parallel()
	s, clk := clocked(t, time.Date(2027, 1, 31, 23, 59, 59, 0, time.UTC))
	a := actor(task.Free)
	ctx := context.Background()
	steps := []struct {
		at               time.Time
		current, longest int
	}{
		{time.Date(2027, 1, 31, 23, 59, 59, 0, time.UTC), 1, 1},
		{time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), 2, 2},
		{time.Date(2027, 2, 1, 12, 0, 0, 0, time.UTC), 2, 2}, // same day
		{time.Date(2027, 2, 2, 23, 0, 0, 0, time.UTC), 3, 3},
		{time.Date(2027, 2, 4, 0, 30, 0, 0, time.UTC), 1, 3}, // Feb 3 skipped
	}
	for i, st := range steps {
		clk.Set(st.at)
		comp := completeNew(t, s, a, "step")
		if comp.Streak.Current != st.current || comp.Streak.Longest != st.longest {
			t.Fatalf("step %d at %v: streak %+v, want %d/%d", i, st.at, comp.Streak, st.current, st.longest)
		}
	}
	clk.Set(time.Date(2027, 2, 5, 23, 59, 59, 0, time.UTC))
	if st, err := s.Achievements(ctx, a.UserID); err != nil || st.Stats.CurrentStreak != 1 || st.Stats.LifetimeCompleted != 5 {
		t.Fatalf("the day after: %+v %v", st.Stats, err)
	}
	clk.Set(time.Date(2027, 2, 6, 0, 0, 0, 0, time.UTC))
	if st, err := s.Achievements(ctx, a.UserID); err != nil || st.Stats.CurrentStreak != 0 || st.Stats.LongestStreak != 3 {
		t.Fatalf("after a whole day without one: %+v %v", st.Stats, err)
	}
}

// TestTemplateInstancesThroughMonthEnds: a "last day of the month" template makes its
// instances at January 31 and February 28, though the second is more than the 30 days
// ahead a client may set; COUNT exhaustion deactivates the template in the completion.
func TestTemplateInstancesThroughMonthEnds(t *testing.T) {
	t.Parallel()
	s, clk := clocked(t, time.Date(2027, 1, 15, 9, 0, 0, 0, time.UTC))
	a := actor(task.Free)
	ctx := context.Background()
	tpl, err := s.CreateTemplate(ctx, a, recurring.Input{Title: "Invoice", RRule: "FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=2", Subtasks: []string{"send"}})
	if err != nil {
		t.Fatal(err)
	}
	d, tpl, err := s.Instantiate(ctx, a, tpl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2027, 1, 31, 9, 0, 0, 0, time.UTC); !d.Task.DueDate.Equal(want) || len(d.Subtasks) != 1 {
		t.Fatalf("first instance %+v", d)
	}
	if want := time.Date(2027, 2, 28, 9, 0, 0, 0, time.UTC); tpl.NextDue == nil || !tpl.NextDue.Equal(want) || !tpl.Active {
		t.Fatalf("after instantiate %+v", tpl)
	}
	// Completing the first (still in January) makes the February one, 44 days ahead.
	done := true
	if _, _, err := s.UpdateTask(ctx, a, d.Task.ID, task.Patch{Completed: &done}); err != nil {
		t.Fatal(err)
	}
	open, _, err := s.ListTasks(ctx, a.UserID, store.TaskFilter{Completed: new(bool)}, store.Page{Limit: 10})
	if err != nil || len(open) != 1 || !open[0].DueDate.Equal(time.Date(2027, 2, 28, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("open instances %+v %v", open, err)
	}
	got, err := s.GetTemplate(ctx, a.UserID, tpl.ID)
	if err != nil || got.Active || got.NextDue != nil {
		t.Fatalf("a COUNT=2 template after its second instance: %+v %v", got, err)
	}
	// Completing the last instance of an exhausted template makes nothing.
	clk.Set(time.Date(2027, 2, 28, 10, 0, 0, 0, time.UTC))
	if _, _, err := s.UpdateTask(ctx, a, open[0].ID, task.Patch{Completed: &done}); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := s.ListTasks(ctx, a.UserID, store.TaskFilter{Completed: new(bool)}, store.Page{Limit: 10}); len(n) != 0 {
		t.Fatalf("an exhausted template made %d more", len(n))
	}
}

// scheduled records the jobs the store schedules.
type scheduled struct {
	mu        sync.Mutex
	reminders []string
}

func (sc *scheduled) Reminder(_ context.Context, _ pgx.Tx, id string, version int, _ time.Time) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.reminders = append(sc.reminders, id)
	_ = version
	return nil
}

func (sc *scheduled) FocusClose(context.Context, pgx.Tx, string, string, time.Time) error { return nil }

// TestFireReminderOnce: the job of the current version fires once; a second run of it,
// a stale version and a completed task's reminder do nothing; the achievement push of a
// store transaction happens after its commit.
func TestFireReminderOnce(t *testing.T) {
	t.Parallel()
	s, clk := clocked(t, time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC))
	sc := &scheduled{}
	s.SetScheduler(sc)
	var pushed []task.Notification
	s.SetPublisher(func(ns ...task.Notification) { pushed = append(pushed, ns...) })
	a := actor(task.Free)
	ctx := context.Background()
	due := time.Date(2027, 1, 1, 0, 30, 0, 0, time.UTC)
	tk, err := s.CreateTask(ctx, a, task.NewTask{Title: "New year", DueDate: &due})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.CreateReminder(ctx, a, tk.ID, reminder.Input{Type: reminder.Before, OffsetMinutes: ptr(60)})
	if err != nil || len(sc.reminders) != 1 {
		t.Fatalf("create: %v, scheduled %v", err, sc.reminders)
	}
	clk.Set(due.Add(-time.Hour))
	out, ns, err := s.FireReminder(ctx, r.ID, r.Version)
	if err != nil || out != reminder.Fire || len(ns) != 1 || ns[0].Type != task.NotificationReminder {
		t.Fatalf("fire: %s %v %v", out, ns, err)
	}
	if out, ns, _ := s.FireReminder(ctx, r.ID, r.Version); out != reminder.AlreadyDone || len(ns) != 0 {
		t.Fatalf("second run: %s %v", out, ns)
	}
	if out, _, _ := s.FireReminder(ctx, r.ID, r.Version-1); out != reminder.Stale {
		t.Fatalf("stale version: %s", out)
	}
	// Moving the due date re-arms it under a new version; completing the task silences it.
	later := due.Add(time.Hour)
	if _, _, err := s.UpdateTask(ctx, a, tk.ID, task.Patch{DueDate: task.SetTo(later)}); err != nil {
		t.Fatal(err)
	}
	d, _ := s.GetTask(ctx, a.UserID, tk.ID)
	moved := d.Reminders[0]
	if moved.Version != r.Version+1 || moved.Fired || len(sc.reminders) != 2 {
		t.Fatalf("after the due change %+v, scheduled %v", moved, sc.reminders)
	}
	done := true
	if _, _, err := s.UpdateTask(ctx, a, tk.ID, task.Patch{Completed: &done}); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := s.FireReminder(ctx, r.ID, moved.Version); out != reminder.TaskClosed {
		t.Fatalf("completed task: %s", out)
	}
	if len(pushed) != 0 {
		t.Fatalf("FireReminder pushes itself: %v", pushed)
	}
	// Five completions in one go: tasks_5 is pushed once, after the commit.
	for range 4 {
		completeNew(t, s, a, "more")
	}
	if len(pushed) != 1 || pushed[0].Type != task.NotificationAchievement {
		t.Fatalf("pushed %v", pushed)
	}
}

func ptr[T any](v T) *T { return &v }
