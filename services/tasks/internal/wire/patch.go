package wire

import (
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// TaskPatch is the body of PATCH /tasks/{id} (and of the AI's update_task).
type TaskPatch struct {
	Title             httpx.Optional[string] `json:"title"`
	Description       httpx.Optional[string] `json:"description"`
	Priority          httpx.Optional[string] `json:"priority"`
	DueDate           httpx.Optional[string] `json:"due_date"`
	EstimatedDuration httpx.Optional[int]    `json:"estimated_duration"`
	Completed         httpx.Optional[bool]   `json:"completed"`
	Hidden            httpx.Optional[bool]   `json:"hidden"`
	Archived          httpx.Optional[bool]   `json:"archived"`
	Version           httpx.Optional[int]    `json:"version"`
}

// Patch turns the request into the domain's PATCH: absent stays, null clears
// (description, due_date, estimated_duration), null elsewhere is a 400.
func (req TaskPatch) Patch() (task.Patch, error) {
	var v apperr.Validator
	p := task.Patch{
		Title:     NotNull(&v, "title", req.Title),
		Completed: NotNull(&v, "completed", req.Completed),
		Hidden:    NotNull(&v, "hidden", req.Hidden),
		Archived:  NotNull(&v, "archived", req.Archived),
	}
	if req.Version.Has() {
		p.Version = &req.Version.Value
	}
	if s := NotNull(&v, "priority", req.Priority); s != nil {
		prio := task.Priority(*s)
		v.Check(prio.Valid(), "priority", "must be low, medium or high")
		p.Priority = &prio
	}
	if req.Description.Set {
		p.Description = task.Clear[string]()
		if !req.Description.Null {
			p.Description = task.SetTo(req.Description.Value)
		}
	}
	if req.DueDate.Set {
		p.DueDate = task.Clear[time.Time]()
		if !req.DueDate.Null {
			if t := ParseTime(&v, "due_date", req.DueDate.Value); t != nil {
				p.DueDate = task.SetTo(*t)
			}
		}
	}
	if req.EstimatedDuration.Set {
		p.EstimatedDuration = task.Clear[int]()
		if !req.EstimatedDuration.Null {
			p.EstimatedDuration = task.SetTo(req.EstimatedDuration.Value)
		}
	}
	return p, v.Err()
}

// ParseTime reads a JSON time field (RFC 3339), recording a bad one in v.
func ParseTime(v *apperr.Validator, field, s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		v.Add(field, "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
		return nil
	}
	t = t.UTC()
	return &t
}

// NotNull is an optional field that may be absent but not null.
func NotNull[T any](v *apperr.Validator, field string, o httpx.Optional[T]) *T {
	if !o.Set {
		return nil
	}
	if o.Null {
		v.Add(field, "must not be null")
		return nil
	}
	val := o.Value
	return &val
}
