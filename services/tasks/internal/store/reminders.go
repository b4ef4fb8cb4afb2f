package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

const entityReminder task.EntityType = "reminder"

const reminderCols = `id, task_id, user_id, type, offset_minutes, scheduled_at, method, fired, fired_at, version, created_at, updated_at`

func scanReminder(row pgx.Row) (reminder.Reminder, error) { return newReminderScanner()(row) }

// newReminderScanner is scanReminder for many rows, reusing its destinations (see
// newTaskScanner).
func newReminderScanner() func(pgx.Row) (reminder.Reminder, error) {
	var r reminder.Reminder
	var typ, method enumText
	dest := []any{&r.ID, repeatedID{&r.TaskID}, repeatedID{&r.UserID}, &typ, &r.OffsetMinutes, &r.ScheduledAt, &method, &r.Fired, &r.FiredAt,
		&r.Version, &r.CreatedAt, &r.UpdatedAt}
	return func(row pgx.Row) (reminder.Reminder, error) {
		err := row.Scan(dest...)
		r.Type, r.Method = reminder.Type(typ), reminder.Method(method)
		return r, err
	}
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
	return collect(rows, 0, newReminderScanner())
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

// ReminderJob is what a reminder job asks for: fire this version of this reminder.
type ReminderJob struct {
	ID      string
	Version int
}

// FireReminder is FireReminders of one job.
func (s *Store) FireReminder(ctx context.Context, id string, version int) (reminder.Outcome, []task.Notification, error) {
	outcomes, pushed, err := s.FireReminders(ctx, []ReminderJob{{ID: id, Version: version}})
	if err != nil {
		return "", nil, err
	}
	return outcomes[0], pushed, nil
}

// firing is a reminder of a batch, read under lock with its task.
type firing struct {
	r reminder.Reminder
	t task.Task
}

// FireReminders is the work of a batch of reminder jobs, in one transaction: it locks
// the tasks of the reminders, then the reminders (the lock order of every writer of a
// task, each in id order), decides each job (stale version, already fired, unscheduled,
// completed task → no-op; a deleted reminder or task is stale: a deleted task took its
// reminders with it), and for those that fire writes the in-app notifications, marks the
// reminders fired, records the activity and puts tasks.reminder.fired in the outbox, in
// a fixed number of round trips whatever the batch size. outcomes[i] is the outcome of
// jobs[i]; the notifications to push after commit are returned. A failed transaction
// fires nothing, so every job of the batch can be retried.
func (s *Store) FireReminders(ctx context.Context, jobs []ReminderJob) (outcomes []reminder.Outcome, pushed []task.Notification, err error) {
	ids := make([]string, 0, len(jobs))
	for _, j := range jobs {
		if ValidID(j.ID) {
			ids = append(ids, j.ID)
		}
	}
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		outcomes, pushed = make([]reminder.Outcome, len(jobs)), nil
		locked, err := lockFirings(ctx, tx, ids)
		if err != nil {
			return err
		}
		now := s.now()
		var fired []*firing
		for i, j := range jobs {
			f, ok := locked[j.ID]
			if !ok {
				outcomes[i] = reminder.Stale // deleted, or its task was
				continue
			}
			if outcomes[i] = reminder.Decide(f.r, j.Version, f.t.Completed); outcomes[i] != reminder.Fire {
				continue
			}
			// A second job of the same reminder in this batch finds it fired.
			f.r.Fired, f.r.FiredAt, f.r.UpdatedAt = true, &now, now
			fired = append(fired, f)
		}
		if len(fired) == 0 {
			return nil
		}
		pushed, err = s.fireAll(ctx, tx, fired, now)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return outcomes, pushed, nil
}

// lockFirings locks the tasks of the reminders ids, then the reminders, and returns the
// reminders (with their tasks) by id. The tasks are locked FOR SHARE: that holds off
// every change of a task (its writers lock it FOR UPDATE) until the batch commits, yet
// lets batches holding other reminders of the same task fire at once; with FOR UPDATE,
// batches sharing tasks took turns, and a burst of 10,000 fired at a third of the rate.
// The reminders are locked FOR UPDATE, so two batches holding one reminder fire it once
// (the second finds it fired). Both go in id order, so batches never deadlock. A reminder
// whose task was not locked (it came back with a recovered task meanwhile) is left out,
// as gone.
func lockFirings(ctx context.Context, tx pgx.Tx, ids []string) (map[string]*firing, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT `+taskCols+` FROM tasks
		WHERE id IN (SELECT task_id FROM reminders WHERE id = ANY($1::uuid[])) ORDER BY id FOR SHARE`, ids)
	if err != nil {
		return nil, err
	}
	tasks := map[string]task.Task{}
	scan := newTaskScanner()
	if _, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (struct{}, error) {
		t, err := scan(row)
		tasks[t.ID] = t
		return struct{}{}, err
	}); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, `SELECT `+reminderCols+` FROM reminders WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, err
	}
	rs, err := collect(rows, 0, newReminderScanner())
	if err != nil {
		return nil, err
	}
	out := make(map[string]*firing, len(rs))
	for _, r := range rs {
		if t, ok := tasks[r.TaskID]; ok && t.UserID == r.UserID {
			out[r.ID] = &firing{r: r, t: t}
		}
	}
	return out, nil
}

// fireAll writes what the firing of fired does, in tx: the notifications (one
// statement, whose seq numbers it reads), then in one round trip the reminders marked
// fired, the activity rows and the tasks.reminder.fired events. It returns the
// notifications, in the order of fired.
func (s *Store) fireAll(ctx context.Context, tx pgx.Tx, fired []*firing, now time.Time) ([]task.Notification, error) {
	n := len(fired)
	ns := make([]task.Notification, n)
	reminderIDs, userIDs, taskIDs := make([]string, n), make([]string, n), make([]string, n)
	noteIDs, titles, bodies, urls := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	activityIDs, details := make([]string, n), make([]string, n)
	for i, f := range fired {
		taskID := f.t.ID
		body := "Due " + f.t.Title
		if f.t.DueDate != nil {
			body = fmt.Sprintf("%s is due at %s", f.t.Title, f.t.DueDate.UTC().Format(time.RFC3339))
		}
		ns[i] = task.Notification{ID: newID(), UserID: f.t.UserID, Type: task.NotificationReminder, Title: "Reminder: " + f.t.Title,
			Body: body, ActionURL: "/tasks/" + taskID, TaskID: &taskID, CreatedAt: now, UpdatedAt: now}
		reminderIDs[i], userIDs[i], taskIDs[i] = f.r.ID, f.t.UserID, taskID
		noteIDs[i], titles[i], bodies[i], urls[i] = ns[i].ID, ns[i].Title, ns[i].Body, ns[i].ActionURL
		b, err := json.Marshal(map[string]any{"task_id": taskID, "notification_id": ns[i].ID})
		if err != nil {
			return nil, err
		}
		activityIDs[i], details[i] = newID(), string(b)
	}
	rows, err := tx.Query(ctx, `INSERT INTO notifications (id, user_id, type, title, body, action_url, task_id, created_at, updated_at)
		SELECT n.id, n.user_id, $7, n.title, n.body, n.action_url, n.task_id, $8, $8
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[]) AS n(id, user_id, title, body, action_url, task_id)
		RETURNING id, seq`, noteIDs, userIDs, titles, bodies, urls, taskIDs, task.NotificationReminder, now)
	if err != nil {
		return nil, err
	}
	seqs := make(map[string]int64, n)
	var id string
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &seq}, func() error { seqs[id] = seq; return nil }); err != nil {
		return nil, err
	}
	for i := range ns {
		ns[i].Seq = seqs[ns[i].ID]
	}
	q := &queuedTx{Tx: tx}
	if _, err := q.Exec(ctx, `UPDATE reminders SET fired = true, fired_at = $2, updated_at = $2 WHERE id = ANY($1::uuid[])`,
		reminderIDs, now); err != nil {
		return nil, err
	}
	// What record writes, a row for each firing, by the system.
	if _, err := q.Exec(ctx, `INSERT INTO activity (id, user_id, entity_type, entity_id, action, source, details, created_at)
		SELECT a.id, a.user_id, $4, a.entity_id, 'fired', $5, a.details::jsonb, $6
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $7::text[]) AS a(id, user_id, entity_id, details)`,
		activityIDs, userIDs, reminderIDs, string(entityReminder), string(task.SourceSystem), now, details); err != nil {
		return nil, err
	}
	for i, f := range fired {
		if err := s.emit(ctx, q, tasksevents.TypeReminderFired, f.t.UserID, tasksevents.ReminderFired{
			ReminderID: f.r.ID, TaskID: f.t.ID, UserID: f.t.UserID, Method: string(f.r.Method), ScheduledAt: *f.r.ScheduledAt,
			FiredAt: now, NotificationID: ns[i].ID,
		}); err != nil {
			return nil, err
		}
	}
	if err := q.send(ctx); err != nil {
		return nil, err
	}
	return ns, nil
}

// queuedTx is tx for writes whose answer nobody reads: the batch's own and those of the
// store's Emitter, which writes one event a call (libs/events Enqueue: an outbox insert,
// one round trip an event, so 250 for a batch of 250). Exec queues the statement and
// answers an empty command tag; send runs the queue in one round trip, its first failure
// failing the transaction. Anything that reads sends the queue first, so the statements
// keep their order. Unwrap hands out tx, so Enqueue finds pg.InTx's commit hooks
// (pg.HooksOf) and wakes the relay after the commit instead of sending pg_notify in it.
type queuedTx struct {
	pgx.Tx
	batch pgx.Batch
}

// Unwrap is the transaction underneath (pg.TxWrapper).
func (q *queuedTx) Unwrap() pgx.Tx { return q.Tx }

func (q *queuedTx) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	q.batch.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

// send runs the queued statements.
func (q *queuedTx) send(ctx context.Context) error {
	if q.batch.Len() == 0 {
		return nil
	}
	b := q.batch
	q.batch = pgx.Batch{}
	return q.Tx.SendBatch(ctx, &b).Close()
}

func (q *queuedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := q.send(ctx); err != nil {
		return nil, err
	}
	return q.Tx.Query(ctx, sql, args...)
}

func (q *queuedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := q.send(ctx); err != nil {
		return errRow{err}
	}
	return q.Tx.QueryRow(ctx, sql, args...)
}

func (q *queuedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	// A failed send aborted the transaction, so b fails too.
	_ = q.send(ctx)
	return q.Tx.SendBatch(ctx, b)
}

func (q *queuedTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := q.send(ctx); err != nil {
		return 0, err
	}
	return q.Tx.CopyFrom(ctx, table, cols, src)
}

func (q *queuedTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := q.send(ctx); err != nil {
		return nil, err
	}
	return q.Tx.Begin(ctx)
}

func (q *queuedTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := q.send(ctx); err != nil {
		return nil, err
	}
	return q.Tx.Prepare(ctx, name, sql)
}

// errRow answers a read whose queued writes failed.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
