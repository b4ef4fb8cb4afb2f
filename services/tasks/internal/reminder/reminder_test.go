package reminder_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
)

func ptr[T any](v T) *T { return &v }

var (
	now = time.Date(2026, 11, 30, 23, 50, 0, 0, time.UTC) // ten minutes before December
	due = time.Date(2026, 12, 1, 0, 20, 0, 0, time.UTC)
)

func fields(err error) []string {
	var e *apperr.Error
	if !errors.As(err, &e) {
		return nil
	}
	var out []string
	for _, d := range e.Details {
		out = append(out, d.Field)
	}
	return out
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     reminder.Input
		due    *time.Time
		at     *time.Time // want ScheduledAt
		offset *int
		method reminder.Method
		errs   []string // fields of the VALIDATION_ERROR
	}{
		{"before 30, across midnight", reminder.Input{Type: reminder.Before, OffsetMinutes: ptr(30)}, &due,
			ptr(time.Date(2026, 11, 30, 23, 50, 0, 0, time.UTC)), ptr(30), reminder.InApp, nil},
		{"before -30 means the same", reminder.Input{Type: reminder.Before, OffsetMinutes: ptr(-30), Method: reminder.Push}, &due,
			ptr(time.Date(2026, 11, 30, 23, 50, 0, 0, time.UTC)), ptr(30), reminder.Push, nil},
		{"after 0 is at the due time", reminder.Input{Type: reminder.After, OffsetMinutes: ptr(0)}, &due, &due, ptr(0), reminder.InApp, nil},
		{"after a day", reminder.Input{Type: reminder.After, OffsetMinutes: ptr(1440)}, &due,
			ptr(time.Date(2026, 12, 2, 0, 20, 0, 0, time.UTC)), ptr(1440), reminder.InApp, nil},
		{"a sent scheduled_at is ignored for before", reminder.Input{Type: reminder.Before, OffsetMinutes: ptr(10), ScheduledAt: ptr(now.Add(99 * time.Hour))}, &due,
			ptr(due.Add(-10 * time.Minute)), ptr(10), reminder.InApp, nil},
		{"absolute", reminder.Input{Type: reminder.Absolute, ScheduledAt: ptr(now.Add(time.Hour)), OffsetMinutes: ptr(5)}, nil,
			ptr(now.Add(time.Hour)), nil, reminder.InApp, nil},
		{"absolute within the grace", reminder.Input{Type: reminder.Absolute, ScheduledAt: ptr(now.Add(-30 * time.Second))}, nil,
			ptr(now.Add(-30 * time.Second)), nil, reminder.InApp, nil},
		{"absolute in the past", reminder.Input{Type: reminder.Absolute, ScheduledAt: ptr(now.Add(-2 * time.Minute))}, nil, nil, nil, "", []string{"scheduled_at"}},
		{"absolute without a time", reminder.Input{Type: reminder.Absolute}, nil, nil, nil, "", []string{"scheduled_at"}},
		{"before without a due date", reminder.Input{Type: reminder.Before, OffsetMinutes: ptr(5)}, nil, nil, nil, "", []string{"due_date"}},
		{"before without an offset", reminder.Input{Type: reminder.Before}, &due, nil, nil, "", []string{"offset_minutes"}},
		{"offset over 30 days", reminder.Input{Type: reminder.After, OffsetMinutes: ptr(-43201)}, &due, nil, nil, "", []string{"offset_minutes"}},
		{"everything wrong at once", reminder.Input{Type: "soon", Method: "sms"}, nil, nil, nil, "", []string{"type", "method"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := reminder.Normalize(tc.in, tc.due, now)
			if tc.errs != nil {
				if apperr.CodeOf(err) != apperr.Validation || !reflect.DeepEqual(fields(err), tc.errs) {
					t.Fatalf("err = %v (fields %v), want VALIDATION_ERROR on %v", err, fields(err), tc.errs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.ScheduledAt, tc.at) || !reflect.DeepEqual(r.OffsetMinutes, tc.offset) || r.Method != tc.method {
				t.Fatalf("got at %v offset %v method %s, want %v %v %s", r.ScheduledAt, r.OffsetMinutes, r.Method, tc.at, tc.offset, tc.method)
			}
		})
	}
}

func TestRescheduleOnDueChange(t *testing.T) {
	t.Parallel()
	before := reminder.Reminder{Type: reminder.Before, OffsetMinutes: ptr(60), ScheduledAt: ptr(due.Add(-time.Hour)), Method: reminder.InApp, Version: 3}
	absolute := reminder.Reminder{Type: reminder.Absolute, ScheduledAt: ptr(now.Add(time.Hour)), Method: reminder.InApp, Version: 1}
	fired := before
	fired.Fired, fired.FiredAt = true, ptr(now)
	later := due.Add(48 * time.Hour)
	tests := []struct {
		name    string
		r       reminder.Reminder
		due     *time.Time
		changed bool
		at      *time.Time
		version int
		fired   bool
	}{
		{"moves with the due date", before, &later, true, ptr(later.Add(-time.Hour)), 4, false},
		{"same due date, nothing to do", before, &due, false, ptr(due.Add(-time.Hour)), 3, false},
		{"due date removed: unscheduled", before, nil, true, nil, 4, false},
		{"absolute stays", absolute, &later, false, ptr(now.Add(time.Hour)), 1, false},
		{"a fired reminder moved to the future is re-armed", fired, &later, true, ptr(later.Add(-time.Hour)), 4, false},
		{"a fired reminder moved into the past stays fired", fired, ptr(now.Add(-48 * time.Hour)), true, ptr(now.Add(-49 * time.Hour)), 4, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, changed := reminder.Reschedule(tc.r, tc.due, now)
			if changed != tc.changed || !reflect.DeepEqual(got.ScheduledAt, tc.at) || got.Version != tc.version || got.Fired != tc.fired {
				t.Fatalf("Reschedule = %+v changed %v; want at %v version %d fired %v changed %v", got, changed, tc.at, tc.version, tc.fired, tc.changed)
			}
		})
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	cur := reminder.Reminder{Type: reminder.Absolute, ScheduledAt: ptr(now.Add(time.Hour)), Method: reminder.InApp, Version: 2}
	// Only the method changes: no new schedule, no version bump.
	next, resched, changed := reminder.Apply(cur, reminder.Reminder{Type: reminder.Absolute, ScheduledAt: ptr(now.Add(time.Hour)), Method: reminder.Push}, now)
	if resched || !changed || next.Version != 2 || next.Method != reminder.Push || !next.UpdatedAt.Equal(now) {
		t.Fatalf("method change: %+v resched %v changed %v", next, resched, changed)
	}
	// Nothing changes.
	if _, resched, changed := reminder.Apply(cur, cur, now); resched || changed {
		t.Fatal("an identical reminder counts as a change")
	}
	// Absolute to before: a new time, a new version.
	next, resched, changed = reminder.Apply(cur, reminder.Reminder{Type: reminder.Before, OffsetMinutes: ptr(5), ScheduledAt: ptr(due.Add(-5 * time.Minute)), Method: reminder.InApp}, now)
	if !resched || !changed || next.Version != 3 || next.Type != reminder.Before {
		t.Fatalf("type change: %+v resched %v changed %v", next, resched, changed)
	}
}

func TestShouldScheduleAndDecide(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) reminder.Reminder {
		return reminder.Reminder{ScheduledAt: ptr(now.Add(d)), Version: 2}
	}
	for _, tc := range []struct {
		name string
		r    reminder.Reminder
		want bool
	}{
		{"future", at(time.Hour), true},
		{"now", at(0), true},
		{"just past, within the grace", at(-59 * time.Second), true},
		{"past: a recovered task's old reminder", at(-2 * time.Minute), false},
		{"unscheduled", reminder.Reminder{}, false},
		{"fired", reminder.Reminder{ScheduledAt: ptr(now.Add(time.Hour)), Fired: true}, false},
	} {
		if got := reminder.ShouldSchedule(tc.r, now); got != tc.want {
			t.Errorf("ShouldSchedule %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		r    reminder.Reminder
		want bool
	}{
		{"future", at(time.Second), true},
		{"now: already passed for a recovered task", at(0), false},
		{"just past, even within the grace", at(-time.Second), false},
		{"fired", reminder.Reminder{ScheduledAt: ptr(now.Add(time.Hour)), Fired: true}, false},
		{"unscheduled", reminder.Reminder{}, false},
	} {
		if got := reminder.ShouldScheduleRecovered(tc.r, now); got != tc.want {
			t.Errorf("ShouldScheduleRecovered %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name      string
		r         reminder.Reminder
		version   int
		completed bool
		want      reminder.Outcome
	}{
		{"fires", at(0), 2, false, reminder.Fire},
		{"moved since: stale", at(0), 1, false, reminder.Stale},
		{"already fired", reminder.Reminder{ScheduledAt: ptr(now), Fired: true, Version: 2}, 2, false, reminder.AlreadyDone},
		{"task completed", at(0), 2, true, reminder.TaskClosed},
		{"due date removed", reminder.Reminder{Version: 2}, 2, false, reminder.Unscheduled},
	} {
		if got := reminder.Decide(tc.r, tc.version, tc.completed); got != tc.want {
			t.Errorf("Decide %s = %s, want %s", tc.name, got, tc.want)
		}
	}
}
