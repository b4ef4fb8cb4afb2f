package recurring_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"

	"github.com/perpetua-flow/backend/services/tasks/internal/recurring"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

func ptr[T any](v T) *T { return &v }

func utc(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

// created is a Thursday afternoon, with sub-second precision like a real clock.
var created = time.Date(2026, 11, 26, 13, 18, 13, 123_456_000, time.UTC)

func at(y int, m time.Month, d int) time.Time { return utc(y, m, d, 13, 18, 13) }

func newTemplate(t *testing.T, rrule string) recurring.Template {
	t.Helper()
	tpl, err := recurring.New(recurring.Input{Title: "  Team sync  ", RRule: rrule, Subtasks: []string{"agenda", " notes "}}, task.Free, created)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

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

func TestNew(t *testing.T) {
	t.Parallel()
	tpl := newTemplate(t, "freq=weekly;byday=mo,we,fr")
	if tpl.Title != "Team sync" || tpl.Priority != task.Medium || tpl.RRule != "FREQ=WEEKLY;BYDAY=MO,WE,FR" ||
		!reflect.DeepEqual(tpl.Subtasks, []string{"agenda", "notes"}) || !tpl.Active || tpl.Version != 1 {
		t.Fatalf("template %+v", tpl)
	}
	if !tpl.DTStart.Equal(utc(2026, 11, 26, 13, 18, 13)) || !tpl.CreatedAt.Equal(created) {
		t.Fatalf("dtstart %v created %v", tpl.DTStart, tpl.CreatedAt)
	}
	// Scenario 7: next_due is the first occurrence after creation (Friday).
	if tpl.NextDue == nil || !tpl.NextDue.Equal(at(2026, 11, 27)) {
		t.Fatalf("next_due %v", tpl.NextDue)
	}
	if got := tpl.Text(); got != "weekly on Monday, Wednesday and Friday" {
		t.Fatalf("text %q", got)
	}

	tests := []struct {
		name string
		in   recurring.Input
		tier task.Tier
		want []string
	}{
		{"everything wrong at once", recurring.Input{Title: " ", Priority: "urgent", RRule: "FREQ=HOURLY", EstimatedDuration: ptr(0),
			Subtasks: []string{"ok", ""}}, task.Free, []string{"title", "priority", "estimated_duration", "subtasks[1]", "rrule"}},
		{"11 subtasks on free", recurring.Input{Title: "x", RRule: "FREQ=DAILY", Subtasks: make11()}, task.Free, []string{"subtasks"}},
		{"no occurrence after now", recurring.Input{Title: "x", RRule: "FREQ=DAILY;COUNT=1"}, task.Free, []string{"rrule"}},
	}
	for _, tc := range tests {
		_, err := recurring.New(tc.in, tc.tier, created)
		if apperr.CodeOf(err) != apperr.Validation || !reflect.DeepEqual(fields(err), tc.want) {
			t.Errorf("%s: %v (fields %v), want VALIDATION_ERROR on %v", tc.name, err, fields(err), tc.want)
		}
	}
	in := recurring.Input{Title: "x", RRule: "FREQ=DAILY", Subtasks: make11()}
	if _, err := recurring.New(in, task.Pro, created); err != nil {
		t.Errorf("11 subtasks on pro: %v", err)
	}
}

func make11() []string {
	s := make([]string, 11)
	for i := range s {
		s[i] = "step"
	}
	return s
}

// TestScenario7 drives API.md §10 scenario 7 on the domain: instantiate → due Friday,
// next_due Monday; completing Friday's instance makes Monday's (across the month end)
// and moves next_due to Wednesday; completing Monday's makes Wednesday's.
func TestScenario7(t *testing.T) {
	t.Parallel()
	tpl := newTemplate(t, "FREQ=WEEKLY;BYDAY=MO,WE,FR")
	inst, tpl, err := recurring.Instantiate(tpl, created.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !inst.Task.DueDate.Equal(at(2026, 11, 27)) || inst.Task.Title != "Team sync" || len(inst.Subtasks) != 2 {
		t.Fatalf("instance %+v", inst)
	}
	if !tpl.NextDue.Equal(at(2026, 11, 30)) || tpl.Version != 2 {
		t.Fatalf("after instantiate: next_due %v version %d", tpl.NextDue, tpl.Version)
	}
	now := at(2026, 11, 27).Add(time.Hour)
	inst, create, tpl, changed, err := recurring.Completed(tpl, ptr(at(2026, 11, 27)), nil, now)
	if err != nil || !create || !changed || !inst.Task.DueDate.Equal(at(2026, 11, 30)) || !tpl.NextDue.Equal(at(2026, 12, 2)) {
		t.Fatalf("complete Friday: create %v due %v next_due %v changed %v err %v", create, inst.Task.DueDate, tpl.NextDue, changed, err)
	}
	inst, create, tpl, _, _ = recurring.Completed(tpl, ptr(at(2026, 11, 30)), nil, now)
	if !create || !inst.Task.DueDate.Equal(at(2026, 12, 2)) || !tpl.NextDue.Equal(at(2026, 12, 4)) {
		t.Fatalf("complete Monday: create %v due %v next_due %v", create, inst.Task.DueDate, tpl.NextDue)
	}
}

func TestCompleted(t *testing.T) {
	t.Parallel()
	weekly := newTemplate(t, "FREQ=WEEKLY;BYDAY=MO,WE,FR") // next_due Fri Nov 27
	counted := newTemplate(t, "FREQ=DAILY;COUNT=3")        // occurrences Nov 26 (start), 27, 28
	inactive := weekly
	inactive.Active = false
	ahead := weekly // instantiated ahead up to Friday Dec 4
	ahead.NextDue = ptr(at(2026, 12, 4))
	now := utc(2026, 12, 10, 8, 0, 0)
	tests := []struct {
		name     string
		tpl      recurring.Template
		due      *time.Time
		open     []time.Time
		create   bool
		instDue  time.Time
		nextDue  *time.Time
		active   bool
		changed  bool
		versionΔ int
	}{
		{"next after the completed due date", weekly, ptr(at(2026, 11, 27)), nil, true, at(2026, 11, 30), ptr(at(2026, 12, 2)), true, true, 1},
		{"an open instance already has that date", weekly, ptr(at(2026, 11, 27)), []time.Time{at(2026, 11, 30)}, false, time.Time{}, ptr(at(2026, 12, 2)), true, true, 1},
		{"instance without a due date: after now", weekly, nil, nil, true, at(2026, 12, 11), ptr(at(2026, 12, 14)), true, true, 1},
		{"next_due is never moved back", ahead, ptr(at(2026, 11, 27)), nil, true, at(2026, 11, 30), ptr(at(2026, 12, 4)), true, false, 0},
		{"the last occurrence is made, then the rule is exhausted", counted, ptr(at(2026, 11, 27)), nil, true, at(2026, 11, 28), nil, false, true, 1},
		{"exhausted: deactivated, nothing made", counted, ptr(at(2026, 11, 28)), nil, false, time.Time{}, nil, false, true, 1},
		{"inactive template: nothing", inactive, ptr(at(2026, 11, 27)), nil, false, time.Time{}, ptr(at(2026, 11, 27)), false, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst, create, out, changed, err := recurring.Completed(tc.tpl, tc.due, tc.open, now)
			if err != nil {
				t.Fatal(err)
			}
			if create != tc.create || create && !inst.Task.DueDate.Equal(tc.instDue) {
				t.Fatalf("create %v due %v, want %v %v", create, inst.Task.DueDate, tc.create, tc.instDue)
			}
			if !reflect.DeepEqual(out.NextDue, tc.nextDue) || out.Active != tc.active || changed != tc.changed || out.Version-tc.tpl.Version != tc.versionΔ {
				t.Fatalf("template next_due %v active %v changed %v version %d→%d", out.NextDue, out.Active, changed, tc.tpl.Version, out.Version)
			}
		})
	}
}

func TestInstantiateExhausts(t *testing.T) {
	t.Parallel()
	// Monthly on the 31st, twice: December 31 and January 31 (far more than 30 days ahead
	// is fine for an instance).
	tpl := newTemplate(t, "FREQ=MONTHLY;BYMONTHDAY=31;COUNT=2")
	var dues []time.Time
	for range 2 {
		inst, next, err := recurring.Instantiate(tpl, created)
		if err != nil {
			t.Fatal(err)
		}
		dues = append(dues, *inst.Task.DueDate)
		tpl = next
	}
	if !reflect.DeepEqual(dues, []time.Time{at(2026, 12, 31), at(2027, 1, 31)}) || tpl.Active || tpl.NextDue != nil {
		t.Fatalf("dues %v active %v next %v", dues, tpl.Active, tpl.NextDue)
	}
	if _, _, err := recurring.Instantiate(tpl, created); apperr.CodeOf(err) != apperr.Conflict {
		t.Fatalf("instantiate an exhausted template: %v", err)
	}
}

func TestApplyPatch(t *testing.T) {
	t.Parallel()
	tpl := newTemplate(t, "FREQ=WEEKLY;BYDAY=MO,WE,FR")
	later := utc(2026, 12, 9, 10, 0, 0) // a Wednesday

	// A new rule restarts at now.
	got, changed, err := recurring.ApplyPatch(tpl, recurring.Patch{RRule: ptr("FREQ=DAILY;INTERVAL=2"), Version: ptr(1)}, task.Free, later)
	if err != nil || !changed || got.RRule != "FREQ=DAILY;INTERVAL=2" || !got.DTStart.Equal(later) || !got.NextDue.Equal(utc(2026, 12, 11, 10, 0, 0)) || got.Version != 2 {
		t.Fatalf("rrule change: %+v changed %v err %v", got, changed, err)
	}
	// The same rule written differently is no change.
	if _, changed, err := recurring.ApplyPatch(tpl, recurring.Patch{RRule: ptr("freq=weekly;byday=MO,WE,FR")}, task.Free, later); err != nil || changed {
		t.Fatalf("equivalent rule: changed %v err %v", changed, err)
	}
	// Deactivate, then activate: next_due moves past now.
	off, changed, err := recurring.ApplyPatch(tpl, recurring.Patch{Active: ptr(false)}, task.Free, later)
	if err != nil || !changed || off.Active {
		t.Fatalf("deactivate: %+v %v %v", off, changed, err)
	}
	on, _, err := recurring.ApplyPatch(off, recurring.Patch{Active: ptr(true)}, task.Free, later)
	if err != nil || !on.Active || !on.NextDue.Equal(at(2026, 12, 9)) { // Wednesday, after 10:00
		t.Fatalf("activate: next_due %v err %v", on.NextDue, err)
	}
	// Clearing the description and the estimate, and new subtasks.
	withEst := tpl
	withEst.Description, withEst.EstimatedDuration = "old", ptr(30)
	got, _, err = recurring.ApplyPatch(withEst, recurring.Patch{Description: task.Clear[string](), EstimatedDuration: task.Clear[int](),
		Subtasks: ptr([]string{"one"})}, task.Free, later)
	if err != nil || got.Description != "" || got.EstimatedDuration != nil || !reflect.DeepEqual(got.Subtasks, []string{"one"}) {
		t.Fatalf("clears: %+v %v", got, err)
	}
	// Errors: stale version, bad rule, bad title; nothing changes.
	if _, _, err := recurring.ApplyPatch(tpl, recurring.Patch{Title: ptr("x"), Version: ptr(7)}, task.Free, later); apperr.CodeOf(err) != apperr.Conflict {
		t.Fatalf("stale version: %v", err)
	}
	if _, _, err := recurring.ApplyPatch(tpl, recurring.Patch{RRule: ptr("FREQ=SECONDLY"), Title: ptr("")}, task.Free, later); !reflect.DeepEqual(fields(err), []string{"title", "rrule"}) {
		t.Fatalf("bad patch: %v", err)
	}
	if _, changed, err := recurring.ApplyPatch(tpl, recurring.Patch{}, task.Free, later); err != nil || changed {
		t.Fatalf("empty patch: changed %v err %v", changed, err)
	}
}
