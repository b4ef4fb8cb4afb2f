// Package reminder owns the rules of task reminders (API.md §3 "Reminders"): the three
// types and how each computes its time from the task's due date, validation, the
// rescheduling a due-date change causes, and the decision whether a scheduled job may
// fire. Reminders are fired by jobs scheduled for their exact time; each change bumps
// the reminder's version and a job carrying an older version is stale and does nothing
// (DESIGN-NOTES "Reminders as scheduled jobs"). Pure: time is passed in.
package reminder

import (
	"fmt"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Type says how a reminder's time is computed.
type Type string

// Types.
const (
	Before   Type = "before"   // offset minutes before the task's due date
	After    Type = "after"    // offset minutes after the task's due date
	Absolute Type = "absolute" // at scheduled_at
)

// Valid reports whether t is a known type.
func (t Type) Valid() bool { return t == Before || t == After || t == Absolute }

// Relative reports whether t depends on the task's due date.
func (t Type) Relative() bool { return t == Before || t == After }

// Method is how the user is reminded.
type Method string

// Methods. Both create an in-app notification and an SSE push; push is also carried in
// tasks.reminder.fired for a push sender.
const (
	InApp Method = "in_app"
	Push  Method = "push"
)

// Valid reports whether m is a known method.
func (m Method) Valid() bool { return m == InApp || m == Push }

// Business numbers.
const (
	// MaxOffsetMinutes bounds before/after offsets: 30 days, the furthest a due date may be.
	MaxOffsetMinutes = 30 * 24 * 60
	// PastGrace is how far in the past a (re)scheduled time may be and still fire at
	// once: a "before 0" reminder computed a moment ago fires, one from yesterday does not.
	PastGrace = time.Minute
	// DefaultMethod when a client sends none.
	DefaultMethod = InApp
)

// Reminder is a reminder of a task.
type Reminder struct {
	ID            string
	TaskID        string
	UserID        string
	Type          Type
	OffsetMinutes *int       // before/after only
	ScheduledAt   *time.Time // nil while a relative reminder's task has no due date
	Method        Method
	Fired         bool
	FiredAt       *time.Time
	// Version starts at 1 and grows with every change of the schedule; a job carries
	// the version it was scheduled for.
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Input is what a client sends to create a reminder, or the merged result of a PATCH.
type Input struct {
	Type          Type
	OffsetMinutes *int       // before/after; the sign is ignored
	ScheduledAt   *time.Time // absolute; ignored (recomputed) for before/after
	Method        Method     // "" means DefaultMethod
}

// Normalize validates in against the task's due date at now and returns the reminder's
// type, offset, method and computed time. Every bad field is reported at once:
//   - type must be before, after or absolute; method in_app or push;
//   - before/after need offset_minutes (its absolute value, at most MaxOffsetMinutes)
//     and a task with a due date;
//   - absolute needs scheduled_at, not in the past.
func Normalize(in Input, due *time.Time, now time.Time) (Reminder, error) {
	var v apperr.Validator
	r := Reminder{Type: in.Type, Method: in.Method}
	if r.Method == "" {
		r.Method = DefaultMethod
	}
	v.Check(r.Type.Valid(), "type", "must be before, after or absolute")
	v.Check(r.Method.Valid(), "method", "must be in_app or push")
	switch {
	case r.Type.Relative():
		if in.OffsetMinutes == nil {
			v.Add("offset_minutes", "is required for a before or after reminder")
			break
		}
		off := *in.OffsetMinutes
		if off < 0 {
			off = -off // "before 30" and "before -30" both mean 30 minutes before
		}
		v.Check(off <= MaxOffsetMinutes, "offset_minutes", fmt.Sprintf("must be at most %d minutes (30 days)", MaxOffsetMinutes))
		r.OffsetMinutes = &off
		if due == nil {
			v.Add("due_date", "the task has no due date; a before or after reminder needs one")
			break
		}
		r.ScheduledAt = relativeTime(r.Type, off, *due)
	case r.Type == Absolute:
		if in.ScheduledAt == nil {
			v.Add("scheduled_at", "is required for an absolute reminder")
			break
		}
		at := in.ScheduledAt.UTC().Truncate(time.Microsecond)
		v.Check(!at.Before(now.Add(-PastGrace)), "scheduled_at", "must not be in the past")
		r.ScheduledAt = &at
	}
	if err := v.Err(); err != nil {
		return Reminder{}, err
	}
	return r, nil
}

func relativeTime(t Type, offset int, due time.Time) *time.Time {
	d := time.Duration(offset) * time.Minute
	at := due.UTC().Add(-d)
	if t == After {
		at = due.UTC().Add(d)
	}
	return &at
}

// Apply makes cur into next (from Normalize) at now: the schedule, method and type are
// replaced; a change of the time bumps the version (stale jobs do nothing) and re-arms
// a fired reminder whose new time is still to come. changed is false when nothing
// differs (no version bump, no job).
func Apply(cur, next Reminder, now time.Time) (r Reminder, rescheduled, changed bool) {
	r = cur
	r.Type, r.OffsetMinutes, r.Method = next.Type, next.OffsetMinutes, next.Method
	rescheduled = !sameTime(cur.ScheduledAt, next.ScheduledAt)
	changed = rescheduled || cur.Type != next.Type || cur.Method != next.Method || !sameInt(cur.OffsetMinutes, next.OffsetMinutes)
	if !changed {
		return cur, false, false
	}
	r.ScheduledAt = next.ScheduledAt
	if rescheduled {
		r.Version++
		if r.Fired && ShouldSchedule(Reminder{ScheduledAt: r.ScheduledAt}, now) {
			r.Fired, r.FiredAt = false, nil
		}
	}
	r.UpdatedAt = now
	return r, rescheduled, true
}

// Reschedule is r after its task's due date became due (nil: removed) at now: a before
// or after reminder moves with the due date, or is unscheduled (ScheduledAt nil) when the
// due date is removed; an absolute one stays. ok is false when nothing changed.
func Reschedule(r Reminder, due *time.Time, now time.Time) (Reminder, bool) {
	if !r.Type.Relative() || r.OffsetMinutes == nil {
		return r, false
	}
	var at *time.Time
	if due != nil {
		at = relativeTime(r.Type, *r.OffsetMinutes, *due)
	}
	next, rescheduled, _ := Apply(r, Reminder{Type: r.Type, OffsetMinutes: r.OffsetMinutes, Method: r.Method, ScheduledAt: at}, now)
	return next, rescheduled
}

// ShouldSchedule reports whether a job should be scheduled for r at now: it has a time,
// has not fired, and its time is not more than PastGrace ago. Past reminders (a
// recovered task's, or a relative one whose due date moved into the past) never fire.
func ShouldSchedule(r Reminder, now time.Time) bool {
	return r.ScheduledAt != nil && !r.Fired && !r.ScheduledAt.Before(now.Add(-PastGrace))
}

// ShouldScheduleRecovered reports whether a job should be scheduled for a reminder of a
// task recovered at now: only one still to come. No grace here: a reminder whose time
// passed while its task was deleted never fires (API.md §3).
func ShouldScheduleRecovered(r Reminder, now time.Time) bool {
	return r.ScheduledAt != nil && !r.Fired && r.ScheduledAt.After(now)
}

// Outcome is what a reminder job does.
type Outcome string

// Outcomes of a job (logged and counted).
const (
	Fire        Outcome = "fire"
	Stale       Outcome = "stale"         // the reminder changed after the job was scheduled
	AlreadyDone Outcome = "already_fired" // fired before (a retried or duplicated job)
	TaskClosed  Outcome = "task_closed"   // the task is completed (a deleted one has no reminder)
	Unscheduled Outcome = "unscheduled"   // the due date was removed
)

// Decide is what a job scheduled for version does with r (read under lock in the job's
// transaction), whose task is completed or not. Only Fire has an effect.
func Decide(r Reminder, version int, taskCompleted bool) Outcome {
	switch {
	case r.Version != version:
		return Stale
	case r.Fired:
		return AlreadyDone
	case r.ScheduledAt == nil:
		return Unscheduled
	case taskCompleted:
		return TaskClosed
	}
	return Fire
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func sameInt(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
