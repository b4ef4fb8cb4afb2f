package schedule_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/clock"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/schedule"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// benchReminders fall due at one moment (issue 9: at least 5,000 fired per second).
const benchReminders = 10_000

// BenchmarkFireReminders: 10,000 reminders (2,000 tasks of a Pro user, 5 each) fall due
// at the same moment and are fired by the real River client and reminder worker; it
// reports reminders fired per second (from the first fired_at to the last, as the bench
// harness does) and the delay from the due time to fired_at (p50/p99).
//
// Each iteration gives every reminder a new version due a few seconds ahead and inserts
// its job, as a reschedule would. Two ways for the jobs to reach the worker:
//   - available: River's scheduler already made them available (it moves jobs due within
//     its 5 s interval ahead of time), the path of a reminder set more than 5 s ahead;
//     the delay is the queue's fetching and firing.
//   - scheduled: the jobs are still scheduled when they fall due, as in the bench harness
//     (bench/cmd/bench/reminders.go moves them 3 s ahead); the delay also holds the wait
//     for River's next scheduler pass (every 5 s, not configurable in River v0.51).
func BenchmarkFireReminders(b *testing.B) {
	e := setup(b, clock.System{}, nil)
	e.start(b)
	ctx := context.Background()
	a := store.Actor{UserID: uuid.NewString(), Tier: task.Pro, Source: task.SourceUser}
	far := time.Now().UTC().Add(time.Hour)
	tasks := benchReminders / task.MaxRemindersPerTask
	var (
		wg   sync.WaitGroup
		next = make(chan int)
		errs = make(chan error, 8)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				tk, err := e.store.CreateTask(ctx, a, task.NewTask{Title: "due"})
				if err != nil {
					errs <- err
					return
				}
				for range task.MaxRemindersPerTask {
					if _, err := e.store.CreateReminder(ctx, a, tk.ID, reminder.Input{Type: reminder.Absolute, ScheduledAt: &far, Method: reminder.InApp}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for i := 0; i < tasks && len(errs) == 0; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	// Statistics of the tables just filled, as autovacuum would have them by the time the
	// reminders fall due; without them the first burst after the setup fired slower.
	if _, err := e.pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	for _, available := range []bool{true, false} {
		name := "scheduled"
		if available {
			name = "available"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				fireAllDue(b, e, a.UserID, available)
			}
		})
	}
}

// fireAllDue moves the user's reminders to a new version due a few seconds ahead with a
// job each, waits until all have fired and reports the rate and the delays.
func fireAllDue(b *testing.B, e *bundle, userID string, available bool) {
	b.Helper()
	ctx := context.Background()
	firedBefore := e.observed.count(reminder.Fire)
	due := time.Now().UTC().Add(3 * time.Second).Truncate(time.Millisecond)
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE reminders SET version = version + 1, fired = false, fired_at = NULL, scheduled_at = $2
			WHERE user_id = $1 RETURNING id, version`, userID, due)
		if err != nil {
			return err
		}
		var params []river.InsertManyParams
		var id string
		var version int
		if _, err := pgx.ForEachRow(rows, []any{&id, &version}, func() error {
			params = append(params, river.InsertManyParams{Args: schedule.ReminderArgs{ReminderID: id, Version: version},
				InsertOpts: &river.InsertOpts{ScheduledAt: due}})
			return nil
		}); err != nil {
			return err
		}
		if _, err := e.client.InsertManyFastTx(ctx, tx, params); err != nil {
			return err
		}
		if available {
			_, err = tx.Exec(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'scheduled' AND kind = $1 AND scheduled_at = $2`, schedule.ReminderArgs{}.Kind(), due)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if lead := time.Until(due); lead < time.Second {
		b.Logf("the jobs were inserted only %s before they were due", lead)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var n int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM reminders WHERE user_id = $1 AND fired`, userID).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == benchReminders {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d reminders fired within 5 minutes", n, benchReminders)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()
	defer b.StartTimer()
	var delays []time.Duration
	rows, err := e.pool.Query(ctx, `SELECT fired_at - scheduled_at FROM reminders WHERE user_id = $1`, userID)
	if err != nil {
		b.Fatal(err)
	}
	var d time.Duration
	if _, err := pgx.ForEachRow(rows, []any{&d}, func() error { delays = append(delays, d); return nil }); err != nil {
		b.Fatal(err)
	}
	var span time.Duration
	if err := e.pool.QueryRow(ctx, `SELECT max(fired_at) - min(fired_at) FROM reminders WHERE user_id = $1`, userID).Scan(&span); err != nil {
		b.Fatal(err)
	}
	// Every firing is observed once, after its commit.
	eventually(b, "the observer to see every firing", 10*time.Second, func() bool {
		return e.observed.count(reminder.Fire)-firedBefore == benchReminders
	})
	slices.Sort(delays)
	q := func(p float64) float64 { return float64(delays[int(p*float64(len(delays)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-delay-ms")
	b.ReportMetric(q(0.99), "p99-delay-ms")
	if span > 0 {
		b.ReportMetric(float64(benchReminders)/span.Seconds(), "fired/s")
	}
	b.Logf("%d fired in %s; delay min %s p50 %.0f ms p99 %.0f ms max %s", benchReminders, span.Round(time.Millisecond),
		delays[0].Round(time.Millisecond), q(0.5), q(0.99), delays[len(delays)-1].Round(time.Millisecond))
}
