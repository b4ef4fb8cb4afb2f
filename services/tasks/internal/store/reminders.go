package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

const entityReminder task.EntityType = "reminder"

const reminderCols = `id, task_id, user_id, type, offset_minutes, scheduled_at, method, fired, fired_at, version, created_at, updated_at`

func scanReminder(row pgx.Row) (reminder.Reminder, error) {
	var r reminder.Reminder
	err := row.Scan(&r.ID, &r.TaskID, &r.UserID, &r.Type, &r.OffsetMinutes, &r.ScheduledAt, &r.Method, &r.Fired, &r.FiredAt,
		&r.Version, &r.CreatedAt, &r.UpdatedAt)
	return r, err
}

func insertReminder(ctx context.Context, tx pgx.Tx, r reminder.Reminder) error {
	_, err := tx.Exec(ctx, `INSERT INTO reminders (`+reminderCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		r.ID, r.TaskID, r.UserID, string(r.Type), r.OffsetMinutes, r.ScheduledAt, string(r.Method), r.Fired, r.FiredAt,
		r.Version, r.CreatedAt, r.UpdatedAt)
	return err
}

func saveReminder(ctx context.Context, tx pgx.Tx, r reminder.Reminder) error {
	_, err := tx.Exec(ctx, `UPDATE reminders SET type = $3, offset_minutes = $4, scheduled_at = $5, method = $6, fired = $7,
		fired_at = $8, version = $9, updated_at = $10 WHERE id = $1 AND user_id = $2`,
		r.ID, r.UserID, string(r.Type), r.OffsetMinutes, r.ScheduledAt, string(r.Method), r.Fired, r.FiredAt, r.Version, r.UpdatedAt)
	return err
}

// remindersOf is a task's reminders, oldest first.
func remindersOf(ctx context.Context, q pg.Querier, userID, taskID string) ([]reminder.Reminder, error) {
	rows, err := q.Query(ctx, `SELECT `+reminderCols+` FROM reminders WHERE task_id = $1 AND user_id = $2 ORDER BY created_at, id`, taskID, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (reminder.Reminder, error) { return scanReminder(r) })
}

// schedule inserts the job that fires r's current version, when r is to fire at all.
func (s *Store) schedule(ctx context.Context, tx pgx.Tx, r reminder.Reminder) error {
	if s.sched == nil || !reminder.ShouldSchedule(r, s.now()) {
		return nil
	}
	return s.sched.Reminder(ctx, tx, r.ID, r.Version, *r.ScheduledAt)
}

// ListReminders is the reminders of one of the user's tasks.
func (s *Store) ListReminders(ctx context.Context, userID, taskID string) ([]reminder.Reminder, error) {
	if !ValidID(taskID) {
		return nil, notFound("task")
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND user_id = $2)`, taskID, userID).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return nil, notFound("task")
	}
	return remindersOf(ctx, s.pool, userID, taskID)
}

// CreateReminder adds a reminder to the task (at most MaxRemindersPerTask) and schedules
// its job in the same transaction.
func (s *Store) CreateReminder(ctx context.Context, a Actor, taskID string, in reminder.Input) (reminder.Reminder, error) {
	var out reminder.Reminder
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t, err := lockTask(ctx, tx, a.UserID, taskID)
		if err != nil {
			return err
		}
		now := s.now()
		r, err := reminder.Normalize(in, t.DueDate, now)
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM reminders WHERE task_id = $1 AND user_id = $2`, taskID, a.UserID).Scan(&n); err != nil {
			return err
		}
		if n >= task.MaxRemindersPerTask {
			return apperr.New(apperr.LimitExceeded, fmt.Sprintf("a task has at most %d reminders", task.MaxRemindersPerTask),
				apperr.Field("limit", fmt.Sprint(task.MaxRemindersPerTask)), apperr.Field("count", fmt.Sprint(n)))
		}
		r.ID, r.TaskID, r.UserID, r.Version, r.CreatedAt, r.UpdatedAt = newID(), taskID, a.UserID, 1, now, now
		if err := insertReminder(ctx, tx, r); err != nil {
			return err
		}
		if err := s.schedule(ctx, tx, r); err != nil {
			return err
		}
		out = r
		return s.record(ctx, tx, a, entityReminder, r.ID, task.ActionCreated, map[string]any{"task_id": taskID, "type": string(r.Type)})
	})
	return out, err
}

// ReminderPatch is a PATCH of a reminder: nil fields stay.
type ReminderPatch struct {
	Type          *reminder.Type
	OffsetMinutes *int
	ScheduledAt   *time.Time
	Method        *reminder.Method
}

// lockReminder reads the user's reminder and locks its task, then the reminder (the
// order every writer of a task's rows follows).
func lockReminder(ctx context.Context, tx pgx.Tx, userID, id string) (task.Task, reminder.Reminder, error) {
	t, err := lockTaskOf(ctx, tx, "reminders", "reminder", userID, id)
	if err != nil {
		return task.Task{}, reminder.Reminder{}, err
	}
	r, err := scanReminder(tx.QueryRow(ctx, `SELECT `+reminderCols+` FROM reminders WHERE id = $1 AND user_id = $2 FOR UPDATE`, id, userID))
	if pg.IsNoRows(err) {
		return task.Task{}, reminder.Reminder{}, notFound("reminder")
	}
	return t, r, err
}

// UpdateReminder changes a reminder; a new time bumps its version and schedules a new
// job (the old one turns stale).
func (s *Store) UpdateReminder(ctx context.Context, a Actor, id string, p ReminderPatch) (reminder.Reminder, error) {
	var out reminder.Reminder
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t, cur, err := lockReminder(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		in := reminder.Input{Type: cur.Type, OffsetMinutes: cur.OffsetMinutes, ScheduledAt: cur.ScheduledAt, Method: cur.Method}
		if p.Type != nil {
			in.Type = *p.Type
		}
		if p.OffsetMinutes != nil {
			in.OffsetMinutes = p.OffsetMinutes
		}
		if p.ScheduledAt != nil {
			in.ScheduledAt = p.ScheduledAt
		}
		if p.Method != nil {
			in.Method = *p.Method
		}
		checkAt := s.now()
		if in.Type == reminder.Absolute && cur.Type == reminder.Absolute && p.ScheduledAt == nil && cur.ScheduledAt != nil {
			checkAt = *cur.ScheduledAt // an unchanged time is not this PATCH's error, even once it has passed
		}
		next, err := reminder.Normalize(in, t.DueDate, checkAt)
		if err != nil {
			return err
		}
		r, rescheduled, changed := reminder.Apply(cur, next, s.now())
		out = r
		if !changed {
			return nil
		}
		if err := saveReminder(ctx, tx, r); err != nil {
			return err
		}
		if rescheduled {
			if err := s.schedule(ctx, tx, r); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, a, entityReminder, r.ID, task.ActionUpdated, map[string]any{"task_id": r.TaskID, "version": r.Version})
	})
	return out, err
}

// DeleteReminder deletes a reminder; its job finds nothing and does nothing.
func (s *Store) DeleteReminder(ctx context.Context, a Actor, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		_, r, err := lockReminder(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM reminders WHERE id = $1 AND user_id = $2`, id, a.UserID); err != nil {
			return err
		}
		return s.record(ctx, tx, a, entityReminder, id, task.ActionDeleted, map[string]any{"task_id": r.TaskID})
	})
}

// rescheduleReminders moves the relative reminders of t (locked by the caller) after its
// due date changed, in the same transaction.
func (s *Store) rescheduleReminders(ctx context.Context, tx pgx.Tx, t task.Task) error {
	rs, err := remindersOf(ctx, tx, t.UserID, t.ID)
	if err != nil {
		return err
	}
	now := s.now()
	for _, r := range rs {
		next, changed := reminder.Reschedule(r, t.DueDate, now)
		if !changed {
			continue
		}
		if err := saveReminder(ctx, tx, next); err != nil {
			return err
		}
		if err := s.schedule(ctx, tx, next); err != nil {
			return err
		}
	}
	return nil
}

// restoreReminders re-inserts a recovered task's reminders as they were, with a new
// version so no job of the deleted task can fire them, scheduling only those still to
// come: past reminders of a recovered task never fire.
func (s *Store) restoreReminders(ctx context.Context, tx pgx.Tx, rs []reminder.Reminder) error {
	now := s.now()
	for _, r := range rs {
		r.Version++
		if err := insertReminder(ctx, tx, r); err != nil {
			return err
		}
		if s.sched != nil && reminder.ShouldScheduleRecovered(r, now) {
			if err := s.sched.Reminder(ctx, tx, r.ID, r.Version, *r.ScheduledAt); err != nil {
				return err
			}
		}
	}
	return nil
}

// FireReminder is the reminder job: in one transaction it locks the task and the
// reminder, decides (stale version, already fired, unscheduled, completed task → no-op;
// a deleted task took its reminders with it), and on fire writes the in-app
// notification, marks the reminder fired and puts tasks.reminder.fired in the outbox.
// The notification to push after commit is returned.
func (s *Store) FireReminder(ctx context.Context, id string, version int) (reminder.Outcome, []task.Notification, error) {
	outcome := reminder.Stale
	var pushed []task.Notification
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		pushed = nil
		// The task first, then the reminder: the lock order of every writer of a task.
		t, err := scanTask(tx.QueryRow(ctx, `SELECT `+taskCols+` FROM tasks
			WHERE id = (SELECT task_id FROM reminders WHERE id = $1) FOR UPDATE`, id))
		if pg.IsNoRows(err) {
			outcome = reminder.Stale // deleted, or its task was
			return nil
		}
		if err != nil {
			return err
		}
		userID := t.UserID
		r, err := scanReminder(tx.QueryRow(ctx, `SELECT `+reminderCols+` FROM reminders WHERE id = $1 AND user_id = $2 FOR UPDATE`, id, userID))
		if pg.IsNoRows(err) {
			outcome = reminder.Stale
			return nil
		}
		if err != nil {
			return err
		}
		if outcome = reminder.Decide(r, version, t.Completed); outcome != reminder.Fire {
			return nil
		}
		now := s.now()
		r.Fired, r.FiredAt, r.UpdatedAt = true, &now, now
		if err := saveReminder(ctx, tx, r); err != nil {
			return err
		}
		taskID := t.ID
		body := "Due " + t.Title
		if t.DueDate != nil {
			body = fmt.Sprintf("%s is due at %s", t.Title, t.DueDate.UTC().Format(time.RFC3339))
		}
		n, _, err := s.CreateNotification(ctx, tx, task.Notification{UserID: userID, Type: task.NotificationReminder,
			Title: "Reminder: " + t.Title, Body: body, ActionURL: "/tasks/" + t.ID, TaskID: &taskID}, "")
		if err != nil {
			return err
		}
		pushed = append(pushed, n)
		if err := s.emit(ctx, tx, tasksevents.TypeReminderFired, userID, tasksevents.ReminderFired{
			ReminderID: r.ID, TaskID: t.ID, UserID: userID, Method: string(r.Method), ScheduledAt: *r.ScheduledAt,
			FiredAt: now, NotificationID: n.ID,
		}); err != nil {
			return err
		}
		return s.record(ctx, tx, Actor{UserID: userID, Source: task.SourceSystem}, entityReminder, r.ID, "fired",
			map[string]any{"task_id": t.ID, "notification_id": n.ID})
	})
	if err != nil {
		return "", nil, err
	}
	return outcome, pushed, nil
}
