package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/bench/internal/report"
)

// eventSamples is how many events each latency row measures, sent one after another so
// the row shows the pipeline's delay, not a queue.
const eventSamples = 40

// latency is the delay from the producer's outbox row (its transaction's start) to the
// consumer's inbox row (its transaction's start) for events of typ since t, measured by
// the database's own clock on both sides.
func (b *bench) latency(ctx context.Context, name, producer, typ, consumer, durable string, users []string) (report.Latency, error) {
	want := len(users)
	l := report.Latency{Name: name}
	// Poll until every event arrived (or 30 s): the consumers run asynchronously.
	q := fmt.Sprintf(`
		SELECT count(*), count(i.event_id),
		       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.processed_at - o.created_at)), 0),
		       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM i.processed_at - o.created_at)), 0),
		       coalesce(max(extract(epoch FROM i.processed_at - o.created_at)), 0)
		FROM %[1]s.outbox o
		LEFT JOIN %[2]s.inbox i ON i.consumer = $1 AND i.event_id = o.id::text
		WHERE o.type = $2 AND o.payload->>'subject' = ANY($3::text[])`, producer, consumer)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var total, arrived int
		var p50, p99, mx float64
		if err := b.pool.QueryRow(ctx, q, durable, typ, users).Scan(&total, &arrived, &p50, &p99, &mx); err != nil {
			return l, err
		}
		if (total >= want && arrived == total) || time.Now().After(deadline) {
			l.Count = arrived
			l.P50, l.P99, l.Max = secs(p50), secs(p99), secs(mx)
			if arrived < total {
				l.Note = fmt.Sprintf("%d of %d events not applied within 30 s", total-arrived, total)
			}
			return l, nil
		}
		select {
		case <-ctx.Done():
			return l, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// eventPhases measures auth.user.created → billing (the kickstart grant) always, and task
// completion → achievement unlocked → billing when the tasks service has achievements.
func (b *bench) eventPhases(ctx context.Context) ([]report.Latency, []string) {
	var out []report.Latency
	var notes []string
	run := uuid.NewString()[:8]
	var signedUp []string
	for i := range eventSamples {
		u, err := b.devLogin(ctx, fmt.Sprintf("bench-event-%s-%d@example.test", run, i))
		if err != nil {
			notes = append(notes, "sign-up events: "+err.Error())
			break
		}
		signedUp = append(signedUp, u.ID)
	}
	l, err := b.latency(ctx, "sign-up: auth.user.created → billing kickstart grant", "auth", "auth.user.created", "billing", "billing-user-created", signedUp)
	if err != nil {
		notes = append(notes, "sign-up latency: "+err.Error())
	} else {
		l.Note = join(l.Note, fmt.Sprintf("%d sign-ups one after another, idle system", len(signedUp)))
		out = append(out, l)
	}

	// Achievements: GET /achievements exists once the tasks service has them (issue 6).
	u := b.users[0]
	if err := b.call(ctx, b.gateway, "GET", "/api/v1/achievements", u.Token, nil, http.StatusOK, nil); err != nil {
		out = append(out, report.Latency{Name: "task completion → achievement unlocked → billing", Note: "skipped: the tasks service has no achievements yet (GET /api/v1/achievements: " + short(err) + ")"})
		return out, notes
	}
	var achievers []string
	for i := range eventSamples / 4 {
		c, err := b.devLogin(ctx, fmt.Sprintf("bench-achieve-%s-%d@example.test", run, i))
		if err != nil {
			notes = append(notes, "achievement events: "+err.Error())
			break
		}
		// Five completions unlock tasks_5.
		for range 5 {
			var created struct{ Data struct{ ID string } }
			if err := b.call(ctx, b.gateway, "POST", "/api/v1/tasks", c.Token, map[string]any{"title": "Achieve"}, http.StatusCreated, &created); err != nil {
				notes = append(notes, "achievement events: "+err.Error())
				break
			}
			if err := b.call(ctx, b.gateway, "PATCH", "/api/v1/tasks/"+created.Data.ID, c.Token, map[string]any{"completed": true}, http.StatusOK, nil); err != nil {
				notes = append(notes, "achievement events: "+err.Error())
				break
			}
		}
		achievers = append(achievers, c.ID)
	}
	l, err = b.latency(ctx, "task completion → tasks.achievement.unlocked → billing", "tasks", "tasks.achievement.unlocked", "billing", "billing-achievement-unlocked", achievers)
	if err != nil {
		notes = append(notes, "achievement latency: "+err.Error())
	} else {
		l.Note = join(l.Note, fmt.Sprintf("%d users completing their 5th task (tasks_5), one after another", len(achievers)))
		out = append(out, l)
	}
	return out, notes
}

// remindersExist reports whether the tasks service schedules reminders, and if not why.
func (b *bench) remindersExist(ctx context.Context) (bool, string) {
	t := b.tasks[len(b.tasks)-1] // not one of the tasks the reminder row uses
	err := b.call(ctx, b.gateway, "POST", "/api/v1/tasks/"+t.ID+"/reminders", b.users[t.Owner].Token,
		map[string]any{"type": "absolute", "scheduled_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "method": "in_app"}, http.StatusCreated, nil)
	if err != nil {
		return false, "Reminders (10,000 due at once, fired/s, due-to-notification delay): not measured — the tasks service has no reminders yet (POST /api/v1/tasks/{id}/reminders: " + short(err) + ")."
	}
	return true, ""
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func short(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
