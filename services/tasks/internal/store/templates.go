package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/recurring"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

const entityTemplate task.EntityType = "template"

// Activity actions of templates and recurrence.
const (
	actionInstantiated      = "instantiated"
	actionRecurrenceSkipped = "recurrence_skipped"
	actionDeactivated       = "deactivated"
)

const templateCols = `id, user_id, title, description, priority, estimated_duration, rrule, dtstart, subtasks, next_due,
	active, version, created_at, updated_at`

func scanTemplate(row pgx.Row) (recurring.Template, error) {
	var t recurring.Template
	err := row.Scan(&t.ID, &t.UserID, &t.Title, &t.Description, &t.Priority, &t.EstimatedDuration, &t.RRule, &t.DTStart,
		&t.Subtasks, &t.NextDue, &t.Active, &t.Version, &t.CreatedAt, &t.UpdatedAt)
	t.DTStart = t.DTStart.UTC()
	return t, err
}

func saveTemplate(ctx context.Context, tx pgx.Tx, t recurring.Template) error {
	_, err := tx.Exec(ctx, `UPDATE templates SET title = $3, description = $4, priority = $5, estimated_duration = $6,
		rrule = $7, dtstart = $8, subtasks = $9, next_due = $10, active = $11, version = $12, updated_at = $13
		WHERE id = $1 AND user_id = $2`,
		t.ID, t.UserID, t.Title, t.Description, string(t.Priority), t.EstimatedDuration, t.RRule, t.DTStart, t.Subtasks,
		t.NextDue, t.Active, t.Version, t.UpdatedAt)
	return err
}

func lockTemplate(ctx context.Context, tx pgx.Tx, userID, id string) (recurring.Template, error) {
	if !ValidID(id) {
		return recurring.Template{}, notFound("template")
	}
	t, err := scanTemplate(tx.QueryRow(ctx, `SELECT `+templateCols+` FROM templates WHERE id = $1 AND user_id = $2 FOR UPDATE`, id, userID))
	if pg.IsNoRows(err) {
		return recurring.Template{}, notFound("template")
	}
	return t, err
}

// ListTemplates is one page of the user's templates, newest first.
func (s *Store) ListTemplates(ctx context.Context, userID string, p Page) ([]recurring.Template, int, error) {
	return listPage(ctx, s.pool, scanTemplate, p,
		`SELECT count(*) FROM templates WHERE user_id = $1`, []any{userID},
		`SELECT `+templateCols+` FROM templates WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`,
		[]any{userID, p.Limit, p.Offset})
}

// GetTemplate is one of the user's templates.
func (s *Store) GetTemplate(ctx context.Context, userID, id string) (recurring.Template, error) {
	if !ValidID(id) {
		return recurring.Template{}, notFound("template")
	}
	t, err := scanTemplate(s.pool.QueryRow(ctx, `SELECT `+templateCols+` FROM templates WHERE id = $1 AND user_id = $2`, id, userID))
	if pg.IsNoRows(err) {
		return recurring.Template{}, notFound("template")
	}
	return t, err
}

// CreateTemplate validates in and stores the template. It creates no task and does not
// count toward the task limit.
func (s *Store) CreateTemplate(ctx context.Context, a Actor, in recurring.Input) (recurring.Template, error) {
	t, err := recurring.New(in, a.Tier, s.now())
	if err != nil {
		return recurring.Template{}, err
	}
	t.ID, t.UserID = newID(), a.UserID
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO templates (`+templateCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)`,
			t.ID, t.UserID, t.Title, t.Description, string(t.Priority), t.EstimatedDuration, t.RRule, t.DTStart, t.Subtasks,
			t.NextDue, t.Active, t.Version, t.CreatedAt, t.UpdatedAt); err != nil {
			return err
		}
		return s.record(ctx, tx, a, entityTemplate, t.ID, task.ActionCreated, map[string]any{"title": t.Title, "rrule": t.RRule})
	})
	return t, err
}

// UpdateTemplate applies a PATCH (optimistic locking when p.Version is given).
func (s *Store) UpdateTemplate(ctx context.Context, a Actor, id string, p recurring.Patch) (recurring.Template, error) {
	var out recurring.Template
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := lockTemplate(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		next, changed, err := recurring.ApplyPatch(cur, p, a.Tier, s.now())
		if err != nil || !changed {
			out = cur
			return err
		}
		if err := saveTemplate(ctx, tx, next); err != nil {
			return err
		}
		out = next
		return s.record(ctx, tx, a, entityTemplate, id, task.ActionUpdated, map[string]any{"version": next.Version})
	})
	return out, err
}

// DeleteTemplate deletes the template; its instances stay, with template_id cleared.
func (s *Store) DeleteTemplate(ctx context.Context, a Actor, id string) error {
	if !ValidID(id) {
		return notFound("template")
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// The instances first, then the template: a completion locks its task and then
		// the template, so the other order could deadlock with it.
		if _, err := tx.Exec(ctx, `SELECT id FROM tasks WHERE template_id = $1 AND user_id = $2 ORDER BY id FOR UPDATE`, id, a.UserID); err != nil {
			return err
		}
		if _, err := lockTemplate(ctx, tx, a.UserID, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tasks SET template_id = NULL WHERE template_id = $1 AND user_id = $2`, id, a.UserID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM templates WHERE id = $1 AND user_id = $2`, id, a.UserID); err != nil {
			return err
		}
		return s.record(ctx, tx, a, entityTemplate, id, task.ActionDeleted, nil)
	})
}

// Instantiate is POST /templates/{id}/instantiate: a task due at next_due with the
// template's subtasks, counted toward the limit; next_due moves on.
func (s *Store) Instantiate(ctx context.Context, a Actor, id string) (TaskDetail, recurring.Template, error) {
	var (
		d   TaskDetail
		out recurring.Template
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := lockTemplate(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		inst, next, err := recurring.Instantiate(cur, s.now())
		if err != nil {
			return err
		}
		t, err := s.createInstance(ctx, tx, a, cur.ID, inst)
		if err != nil {
			return err
		}
		if err := saveTemplate(ctx, tx, next); err != nil {
			return err
		}
		out = next
		if err := s.record(ctx, tx, a, entityTemplate, id, actionInstantiated, map[string]any{"task_id": t.ID, "due_date": inst.Task.DueDate}); err != nil {
			return err
		}
		d, err = s.taskDetail(ctx, tx, a.UserID, t.ID)
		return err
	})
	return d, out, err
}

// createInstance inserts the task of a template instance with its subtasks, counted
// toward the task limit like any create. Unlike a client's task, its due date may lie
// more than 30 days ahead (the rule decides), and the default subtasks are cut to the
// tier's current subtask limit (the user may have downgraded since).
func (s *Store) createInstance(ctx context.Context, tx pgx.Tx, a Actor, templateID string, inst recurring.Instance) (task.Task, error) {
	now := s.now()
	due := inst.Task.DueDate
	n := inst.Task
	n.DueDate = nil
	n, err := n.Validate(a.Tier, now)
	if err != nil {
		return task.Task{}, err
	}
	if due != nil {
		d := due.UTC().Truncate(time.Microsecond)
		due = &d
	}
	tid := templateID
	t := task.Task{
		ID: newID(), UserID: a.UserID, Title: n.Title, Description: n.Description, Priority: n.Priority,
		DueDate: due, EstimatedDuration: n.EstimatedDuration, TemplateID: &tid, Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.reserve(ctx, tx, a, task.ResourceTasks); err != nil {
		return task.Task{}, err
	}
	if err := insertTask(ctx, tx, t); err != nil {
		return task.Task{}, err
	}
	if err := s.record(ctx, tx, a, task.EntityTask, t.ID, task.ActionCreated, map[string]any{"title": t.Title, "template_id": templateID}); err != nil {
		return task.Task{}, err
	}
	if err := s.emitTask(ctx, tx, tasksevents.TypeTaskCreated, t, a.Source); err != nil {
		return task.Task{}, err
	}
	subs := inst.Subtasks
	if limit := task.EffectiveLimits(a.Tier, nil).MaxSubtasks; len(subs) > limit {
		subs = subs[:limit]
	}
	if len(subs) > 0 {
		if _, err := s.CreateSubtasksTx(ctx, tx, a, t.ID, subs, task.SourceUser); err != nil {
			return task.Task{}, err
		}
		t.SubtaskCount = len(subs)
	}
	return t, nil
}

// nextInstance runs inside the completion of t, an instance of a template: if the
// template is active, the next instance is made (due at the first occurrence after t's
// due date, unless an open instance already has it) and next_due moves past it; an
// exhausted rule deactivates the template. A full task limit skips the instance (the
// completion still succeeds; next_due stays, so instantiate can make it later).
func (s *Store) nextInstance(ctx context.Context, tx pgx.Tx, a Actor, t task.Task) error {
	tpl, err := lockTemplate(ctx, tx, t.UserID, *t.TemplateID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil // deleted meanwhile (a recovered instance may still name it)
	}
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT due_date FROM tasks WHERE template_id = $1 AND user_id = $2 AND NOT completed AND due_date IS NOT NULL`,
		tpl.ID, t.UserID)
	if err != nil {
		return err
	}
	open, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return err
	}
	now := s.now()
	inst, create, next, changed, err := recurring.Completed(tpl, t.DueDate, open, now)
	if err != nil {
		return err
	}
	sys := Actor{UserID: t.UserID, Tier: a.Tier, Source: task.SourceSystem}
	if create {
		nt, err := s.createInstance(ctx, tx, sys, tpl.ID, inst)
		switch {
		case apperr.CodeOf(err) == apperr.LimitExceeded:
			return s.record(ctx, tx, sys, entityTemplate, tpl.ID, actionRecurrenceSkipped,
				map[string]any{"reason": "task limit reached", "due_date": inst.Task.DueDate})
		case err != nil:
			return err
		}
		if err := s.record(ctx, tx, sys, entityTemplate, tpl.ID, actionInstantiated, map[string]any{"task_id": nt.ID, "due_date": inst.Task.DueDate}); err != nil {
			return err
		}
	}
	if !changed {
		return nil
	}
	if err := saveTemplate(ctx, tx, next); err != nil {
		return err
	}
	if !next.Active {
		return s.record(ctx, tx, sys, entityTemplate, tpl.ID, actionDeactivated, map[string]any{"reason": "rule exhausted"})
	}
	return nil
}
