package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchReminders is how many reminders fall due at one moment (issue 6).
const benchReminders = 10_000

// BenchmarkRemindersDue: 10,000 reminders (2,000 tasks of a Pro user, 5 each) fall due at
// the same moment; it reports how many fire per second and the delay from their due
// time to the notification (p50/p99). The reminders are created through the API with a
// far time, then moved to one moment a few seconds ahead in the database (reminder and
// job alike), so creating them is not part of the measurement.
func BenchmarkRemindersDue(b *testing.B) {
	e := setup(b)
	u := e.user(b, "pro")
	far := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	tasks := benchReminders / 5
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	for range benchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(tasks) {
				r, err := e.send1("POST", "/api/v1/tasks", u.Token, map[string]any{"title": "due"})
				if err != nil || r.Status != 201 {
					fail.Store(fmt.Sprintf("create task: %v %d %s", err, r.Status, r.Body))
					return
				}
				tid := id(r.json(b)["data"].(map[string]any))
				for range 5 {
					r, err := e.send1("POST", "/api/v1/tasks/"+tid+"/reminders", u.Token, map[string]any{"type": "absolute", "scheduled_at": far})
					if err != nil || r.Status != 201 {
						fail.Store(fmt.Sprintf("create reminder: %v %d %s", err, r.Status, r.Body))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if f := fail.Load(); f != nil {
		b.Fatal(f)
	}
	ctx := context.Background()
	due := time.Now().UTC().Add(3 * time.Second).Truncate(time.Second)
	b.ResetTimer()
	for range b.N {
		if _, err := e.Pool.Exec(ctx, `UPDATE reminders SET scheduled_at = $2, fired = false, fired_at = NULL WHERE user_id = $1`, u.ID, due); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Pool.Exec(ctx, `UPDATE river_job SET scheduled_at = $1 WHERE kind = 'tasks.reminder.fire'`, due); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var n int
			if err := e.Pool.QueryRow(ctx, `SELECT count(*) FROM reminders WHERE user_id = $1 AND fired`, u.ID).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n == benchReminders {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d reminders fired in 5 minutes", n, benchReminders)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	b.StopTimer()
	var delays []time.Duration
	rows, err := e.Pool.Query(ctx, `SELECT fired_at - scheduled_at FROM reminders WHERE user_id = $1`, u.ID)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var d time.Duration
		if err := rows.Scan(&d); err != nil {
			b.Fatal(err)
		}
		delays = append(delays, d)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	var first, last time.Time
	if err := e.Pool.QueryRow(ctx, `SELECT min(fired_at), max(fired_at) FROM reminders WHERE user_id = $1`, u.ID).Scan(&first, &last); err != nil {
		b.Fatal(err)
	}
	var notes int
	if err := e.Pool.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE user_id = $1 AND type = 'reminder'`, u.ID).Scan(&notes); err != nil || notes != benchReminders*b.N {
		b.Fatalf("%d reminder notifications for %d firings (%v)", notes, benchReminders*b.N, err)
	}
	slices.Sort(delays)
	q := func(p float64) float64 { return float64(delays[int(p*float64(len(delays)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-delay-ms")
	b.ReportMetric(q(0.99), "p99-delay-ms")
	if span := last.Sub(first).Seconds(); span > 0 {
		b.ReportMetric(float64(benchReminders)/span, "reminders/s")
	}
	b.ReportMetric(0, "ns/op")
}
