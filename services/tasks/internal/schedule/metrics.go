package schedule

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
)

// Metrics registers the reminder metrics on reg and returns the Observer that feeds them:
// tasks_reminder_jobs_total by outcome, and tasks_reminder_delay_seconds, the time from a
// fired reminder's due moment to its notification's commit.
func Metrics(reg prometheus.Registerer) (Observer, error) {
	jobs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tasks_reminder_jobs_total",
		Help: "Reminder jobs run, by outcome (fire, stale, already_fired, task_closed, unscheduled).",
	}, []string{"outcome"})
	delay := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tasks_reminder_delay_seconds",
		Help:    "From a fired reminder's due moment to its notification's commit.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
	})
	for _, c := range []prometheus.Collector{jobs, delay} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("schedule: metrics: %w", err)
		}
	}
	// Every outcome is exported from the start, at 0, so a rate() over it works before
	// the first reminder.
	for _, o := range []reminder.Outcome{reminder.Fire, reminder.Stale, reminder.AlreadyDone, reminder.TaskClosed, reminder.Unscheduled} {
		jobs.WithLabelValues(string(o))
	}
	return func(outcome reminder.Outcome, d time.Duration) {
		jobs.WithLabelValues(string(outcome)).Inc()
		if outcome == reminder.Fire {
			delay.Observe(d.Seconds())
		}
	}, nil
}
