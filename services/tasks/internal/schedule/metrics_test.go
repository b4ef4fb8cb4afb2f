package schedule

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
)

func TestMetricsCountOutcomesAndTimeFiredOnes(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	observe, err := Metrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "tasks_reminder_jobs_total"); n != 5 {
		t.Fatalf("%d outcome series before any job, want all 5 at 0", n)
	}
	observe(reminder.Fire, 300*time.Millisecond)
	observe(reminder.Fire, 2*time.Second)
	observe(reminder.Stale, time.Hour)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var fired, stale float64
	var delays uint64
	var sum float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "tasks_reminder_jobs_total":
				switch m.GetLabel()[0].GetValue() {
				case string(reminder.Fire):
					fired = m.GetCounter().GetValue()
				case string(reminder.Stale):
					stale = m.GetCounter().GetValue()
				}
			case "tasks_reminder_delay_seconds":
				delays, sum = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
		}
	}
	if fired != 2 || stale != 1 || delays != 2 || sum != 2.3 {
		t.Fatalf("fired %v, stale %v, delays %d summing %v; want 2, 1, 2 and 2.3 (a stale job's wait is not a delay)", fired, stale, delays, sum)
	}
	if _, err := Metrics(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
}
