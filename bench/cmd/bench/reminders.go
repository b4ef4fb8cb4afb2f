package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/perpetua-flow/backend/bench/internal/report"
)

// reminderKind is the River job kind of a due reminder in the tasks schema.
const reminderKind = "tasks.reminder.fire"

// dueAhead is how far ahead the reminders are moved. River's scheduler makes jobs due
// within its next interval (5 s) available ahead of time, on a pass every 5 s; reminders
// are set minutes ahead in real use, so this is longer than one interval: a shorter lead
// would measure the wait for the scheduler's next pass, which real reminders never see.
const dueAhead = 8 * time.Second

// remindersDue creates n reminders through the API (two per seeded task, due in an hour),
// then moves all of them — reminder rows and their River jobs alike — to one moment
// dueAhead ahead, and measures how fast they fire and how late each one is. Creating them
// is measured as a phase of its own.
func (b *bench) remindersDue(ctx context.Context, n int) (report.Phase, *report.Reminders, error) {
	if n/2 > len(b.tasks) {
		n = 2 * len(b.tasks)
	}
	far := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	var next atomic.Int64
	tr := func(t *vegeta.Target) error {
		if t == nil {
			return vegeta.ErrNilTarget
		}
		i := int(next.Add(1) - 1)
		if i >= n {
			return vegeta.ErrNoTargets
		}
		tk := b.tasks[i/2]
		t.Method, t.URL, t.Header = "POST", b.gateway+"/api/v1/tasks/"+tk.ID+"/reminders", jsonHeader(b.users[tk.Owner].Token)
		t.Body = fmt.Appendf(nil, `{"type":"absolute","scheduled_at":%q,"method":"in_app"}`, far)
		return nil
	}
	// As many requests as there are reminders, however long it takes (the phase length
	// does not cut it short).
	saved := b.o.phase
	b.o.phase = 0
	created := b.attack(ctx, "gateway/create-reminder/max", "POST /api/v1/tasks/{id}/reminders", "gateway", 0, tr, nil)
	b.o.phase = saved

	ids := make([]string, 0, n/2)
	for _, t := range b.tasks[:n/2] {
		ids = append(ids, t.ID)
	}
	due := time.Now().UTC().Add(dueAhead).Truncate(time.Second)
	if _, err := b.pool.Exec(ctx, `UPDATE tasks.reminders SET scheduled_at = $2 WHERE task_id = ANY($1::uuid[]) AND NOT fired`, ids, due); err != nil {
		return created, nil, fmt.Errorf("move reminders: %w", err)
	}
	// Only the jobs of these reminders: on a running stack (-url) others' stay put.
	if _, err := b.pool.Exec(ctx, `
		UPDATE tasks.river_job j SET scheduled_at = $1
		FROM tasks.reminders r
		WHERE j.kind = $2 AND j.state IN ('scheduled', 'available')
		  AND j.args->>'reminder_id' = r.id::text AND r.task_id = ANY($3::uuid[])`, due, reminderKind, ids); err != nil {
		return created, nil, fmt.Errorf("move reminder jobs: %w", err)
	}
	var total int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM tasks.reminders WHERE task_id = ANY($1::uuid[])`, ids).Scan(&total); err != nil {
		return created, nil, err
	}
	r := &report.Reminders{Count: total}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var fired int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM tasks.reminders WHERE task_id = ANY($1::uuid[]) AND fired`, ids).Scan(&fired); err != nil {
			return created, nil, err
		}
		if fired == total || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return created, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	var p50, p99, mx, span float64
	if err := b.pool.QueryRow(ctx, `
		SELECT count(*),
		       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - scheduled_at)), 0),
		       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - scheduled_at)), 0),
		       coalesce(max(extract(epoch FROM fired_at - scheduled_at)), 0),
		       coalesce(extract(epoch FROM max(fired_at) - min(fired_at)), 0)
		FROM tasks.reminders WHERE task_id = ANY($1::uuid[]) AND fired`, ids).Scan(&r.Fired, &p50, &p99, &mx, &span); err != nil {
		return created, nil, err
	}
	r.P50, r.P99, r.Max = secs(p50), secs(p99), secs(mx)
	if span > 0 {
		r.PerSecond = float64(r.Fired) / span
	}
	if r.Fired < total {
		r.Note = fmt.Sprintf("%d of %d had not fired 2 minutes after they were due", total-r.Fired, total)
	}
	b.log.Info("reminders", "due", total, "fired", r.Fired, "fired/s", int(r.PerSecond), "p50", r.P50.Round(time.Millisecond), "p99", r.P99.Round(time.Millisecond))
	return created, r, nil
}
