// Package recurring owns recurring templates (API.md §3 "Recurrence"): validation of a
// template, its next_due, instantiation, and what completing an instance does to it.
// The rule itself (parsing, next occurrence, text) is package recurrence; this package
// applies it to templates. Pure: time is passed in.
package recurring

import (
	"fmt"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"

	"github.com/perpetua-flow/backend/services/tasks/internal/recurrence"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// Template is a user's recurring template. DTStart is its creation time, the DTSTART of
// RRule (canonical form); NextDue is the due date of the next instance to be made, nil
// once the rule is exhausted (Active is then false).
type Template struct {
	ID                string
	UserID            string
	Title             string
	Description       string
	Priority          task.Priority
	EstimatedDuration *int
	RRule             string
	DTStart           time.Time
	Subtasks          []string
	NextDue           *time.Time
	Active            bool
	Version           int
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Rule is t's parsed rule. A stored template always parses; an error means the stored
// row was changed outside this code.
func (t Template) Rule() (recurrence.Rule, error) {
	return recurrence.Parse(t.RRule, t.DTStart)
}

// Text is the readable form of t's rule (rrule_text); "" if the stored rule is broken.
func (t Template) Text() string {
	r, err := t.Rule()
	if err != nil {
		return ""
	}
	return recurrence.Text(r)
}

// Input is what a client sends to create a template.
type Input struct {
	Title             string
	Description       string
	Priority          task.Priority
	EstimatedDuration *int
	RRule             string
	Subtasks          []string
}

// New validates in for a user of tier at now and returns the template (without ids):
// the task fields follow the task rules, the rule those of package recurrence with now
// as its DTSTART, and the default subtasks the subtask title rule and the tier's subtask
// limit (an instance gets them all). next_due is the first occurrence after now.
// Creating a template creates no task.
func New(in Input, tier task.Tier, now time.Time) (Template, error) {
	t, rule, err := validate(in, tier, now)
	if err != nil {
		return Template{}, err
	}
	if t.NextDue, t.Active = next(rule, now); !t.Active {
		// COUNT=1 on a rule whose only occurrence is its start, say: nothing would ever
		// be made.
		return Template{}, apperr.Invalid(apperr.Field(recurrence.Field, "the rule has no occurrence after now"))
	}
	t.CreatedAt, t.UpdatedAt = now, now
	return t, nil
}

// validate checks in with start as the rule's DTSTART and returns the template without
// next_due.
func validate(in Input, tier task.Tier, start time.Time) (Template, recurrence.Rule, error) {
	var v apperr.Validator
	fields, err := task.NewTask{Title: in.Title, Description: in.Description, Priority: in.Priority,
		EstimatedDuration: in.EstimatedDuration}.Validate(tier, start)
	collect(&v, err)
	subs, err := subtasks(in.Subtasks, tier)
	collect(&v, err)
	start = start.UTC().Truncate(time.Second)
	rule, err := recurrence.Parse(in.RRule, start)
	collect(&v, err)
	if err := v.Err(); err != nil {
		return Template{}, recurrence.Rule{}, err
	}
	return Template{
		Title: fields.Title, Description: fields.Description, Priority: fields.Priority,
		EstimatedDuration: fields.EstimatedDuration, RRule: rule.String(), DTStart: start,
		Subtasks: subs, Active: true, Version: 1, CreatedAt: start, UpdatedAt: start,
	}, rule, nil
}

// collect adds the details of a VALIDATION_ERROR to v (other errors cannot come from the
// pure validators used here; they are kept as one detail rather than lost).
func collect(v *apperr.Validator, err error) {
	if err == nil {
		return
	}
	e, ok := apperr.As(err)
	if !ok || e.Code != apperr.Validation {
		v.Add("", err.Error())
		return
	}
	for _, d := range e.Details {
		v.Add(d.Field, d.Message)
	}
}

func subtasks(titles []string, tier task.Tier) ([]string, error) {
	limit := task.MaxSubtasksFree
	if tier == task.Pro {
		limit = task.MaxSubtasksPro
	}
	var v apperr.Validator
	v.Check(len(titles) <= limit, "subtasks", fmt.Sprintf("at most %d subtasks on the %s tier", limit, tier))
	out := make([]string, 0, len(titles))
	for i, s := range titles {
		t, err := task.ValidateSubtaskTitle(s)
		if err != nil {
			v.Add(fmt.Sprintf("subtasks[%d]", i), "must be 1 to 200 characters, not blank")
			continue
		}
		out = append(out, t)
	}
	return out, v.Err()
}

// next is the first occurrence strictly after after, and whether there is one.
func next(rule recurrence.Rule, after time.Time) (*time.Time, bool) {
	n, ok := rule.Next(after)
	if !ok {
		return nil, false
	}
	return &n, true
}

// Patch of a template: nil fields stay.
type Patch struct {
	Title             *string
	Description       task.Change[string]
	Priority          *task.Priority
	EstimatedDuration task.Change[int]
	RRule             *string
	Subtasks          *[]string
	Active            *bool
	Version           *int // optimistic locking when given
}

// ErrExhausted is the answer to activating or instantiating a template whose rule has no
// occurrence left.
func ErrExhausted() error {
	return apperr.New(apperr.Conflict, "the template's rule has no occurrence left; change its rrule to use it again")
}

// ApplyPatch is cur after p at now. A new rrule restarts the rule at now (its DTSTART
// becomes now, next_due the first occurrence after now); re-activating a template moves
// next_due past now, so no instance is made for the time it was inactive. changed is
// false when p changes nothing (no version bump).
func ApplyPatch(cur Template, p Patch, tier task.Tier, now time.Time) (t Template, changed bool, err error) {
	if err := task.CheckVersion(p.Version, cur.Version); err != nil {
		return cur, false, err
	}
	t = cur
	in := Input{Title: cur.Title, Description: cur.Description, Priority: cur.Priority,
		EstimatedDuration: cur.EstimatedDuration, RRule: cur.RRule, Subtasks: cur.Subtasks}
	if p.Title != nil {
		in.Title = *p.Title
	}
	if p.Description.Set {
		in.Description = ""
		if p.Description.Value != nil {
			in.Description = *p.Description.Value
		}
	}
	if p.Priority != nil {
		in.Priority = *p.Priority
	}
	if p.EstimatedDuration.Set {
		in.EstimatedDuration = p.EstimatedDuration.Value
	}
	if p.Subtasks != nil {
		in.Subtasks = *p.Subtasks
	}
	ruleChanged := p.RRule != nil && *p.RRule != cur.RRule
	if ruleChanged {
		in.RRule = *p.RRule
	}
	// Validate everything as a new template would be, at the rule's own start.
	start := cur.DTStart
	if ruleChanged {
		start = now
	}
	n, rule, err := validate(in, tier, start)
	if err != nil {
		return cur, false, err
	}
	t.Title, t.Description, t.Priority, t.EstimatedDuration, t.Subtasks = n.Title, n.Description, n.Priority, n.EstimatedDuration, n.Subtasks
	if ruleChanged && n.RRule != cur.RRule {
		t.RRule, t.DTStart = n.RRule, n.DTStart
		if t.NextDue, t.Active = next(rule, now); !t.Active {
			return cur, false, apperr.Invalid(apperr.Field(recurrence.Field, "the rule has no occurrence after now"))
		}
	}
	if p.Active != nil && *p.Active != t.Active {
		if *p.Active {
			rule, err := t.Rule()
			if err != nil {
				return cur, false, err
			}
			if t.NextDue, t.Active = next(rule, now); !t.Active {
				return cur, false, ErrExhausted()
			}
		} else {
			t.Active = false
			// next_due stays: it says where the rule stood, and activation recomputes it.
		}
	}
	if sameTemplate(cur, t) {
		return cur, false, nil
	}
	t.Version++
	t.UpdatedAt = now
	return t, true, nil
}

func sameTemplate(a, b Template) bool {
	if a.Title != b.Title || a.Description != b.Description || a.Priority != b.Priority || a.RRule != b.RRule ||
		!a.DTStart.Equal(b.DTStart) || a.Active != b.Active || len(a.Subtasks) != len(b.Subtasks) {
		return false
	}
	if (a.EstimatedDuration == nil) != (b.EstimatedDuration == nil) || a.EstimatedDuration != nil && *a.EstimatedDuration != *b.EstimatedDuration {
		return false
	}
	if (a.NextDue == nil) != (b.NextDue == nil) || a.NextDue != nil && !a.NextDue.Equal(*b.NextDue) {
		return false
	}
	for i := range a.Subtasks {
		if a.Subtasks[i] != b.Subtasks[i] {
			return false
		}
	}
	return true
}

// Instance is the task to create from a template: its fields, due date and subtasks.
// The due date may be further ahead than a client may set (a monthly rule's next date
// can be 31 days away): the 30-day rule limits what clients send, not the rule.
type Instance struct {
	Task     task.NewTask
	Subtasks []string
}

func instance(t Template, due time.Time) Instance {
	d := due
	return Instance{
		Task: task.NewTask{Title: t.Title, Description: t.Description, Priority: t.Priority,
			DueDate: &d, EstimatedDuration: t.EstimatedDuration},
		Subtasks: append([]string(nil), t.Subtasks...),
	}
}

// Instantiate is POST /templates/{id}/instantiate at now: a task due at next_due, and
// the template with next_due moved to the following occurrence (deactivated when the
// rule is exhausted by it). An inactive template cannot be instantiated.
func Instantiate(t Template, now time.Time) (Instance, Template, error) {
	if !t.Active || t.NextDue == nil {
		return Instance{}, t, ErrExhausted()
	}
	rule, err := t.Rule()
	if err != nil {
		return Instance{}, t, err
	}
	due := *t.NextDue
	inst := instance(t, due)
	t.NextDue, t.Active = next(rule, due)
	t.Version++
	t.UpdatedAt = now
	return inst, t, nil
}

// Completed is what completing an instance whose due date was completedDue (nil: the
// user removed it; then now counts) does to its template at now, given the due dates of
// the template's open instances:
//   - an inactive template: nothing;
//   - the next instance is due at the first occurrence after completedDue, and is made
//     unless an open instance already has that date;
//   - next_due moves past that date (it is never moved back);
//   - no occurrence left: the template is deactivated and nothing is made.
//
// create is false when no instance is to be made; changed says whether t changed.
func Completed(t Template, completedDue *time.Time, openDues []time.Time, now time.Time) (inst Instance, create bool, out Template, changed bool, err error) {
	if !t.Active {
		return Instance{}, false, t, false, nil
	}
	rule, err := t.Rule()
	if err != nil {
		return Instance{}, false, t, false, err
	}
	base := now
	if completedDue != nil {
		base = *completedDue
	}
	out = t
	due, ok := rule.Next(base)
	if !ok {
		out.Active, out.NextDue = false, nil
		out.Version++
		out.UpdatedAt = now
		return Instance{}, false, out, true, nil
	}
	create = true
	for _, d := range openDues {
		if d.Equal(due) {
			create = false
			break
		}
	}
	if out.NextDue == nil || !out.NextDue.After(due) {
		out.NextDue, out.Active = next(rule, due)
		out.Version++
		out.UpdatedAt = now
		changed = true
	}
	if create {
		inst = instance(t, due)
	}
	return inst, create, out, changed, nil
}
