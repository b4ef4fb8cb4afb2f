package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

const taskCols = `id, user_id, title, description, priority, due_date, estimated_duration,
	focus_time_seconds, completed, completed_at, completed_by, hidden, archived, template_id,
	subtask_count, subtask_completed_count, version, created_at, updated_at`

func scanTask(row pgx.Row) (task.Task, error) { return newTaskScanner()(row) }

// newTaskScanner is scanTask for many rows: it reuses one set of destinations, since
// Scan's arguments escape to the heap and fresh ones cost a task and a 19-element
// argument slice per row. Each call returns a copy; the nullable fields are newly
// allocated by pgx for every non-NULL value, so no two rows share them.
func newTaskScanner() func(pgx.Row) (task.Task, error) {
	var t task.Task
	var prio, by enumText
	dest := []any{&t.ID, repeatedID{&t.UserID}, &t.Title, &t.Description, &prio, &t.DueDate, &t.EstimatedDuration,
		&t.FocusTimeSeconds, &t.Completed, &t.CompletedAt, &by, &t.Hidden, &t.Archived, &t.TemplateID,
		&t.SubtaskCount, &t.SubtaskCompletedCount, &t.Version, &t.CreatedAt, &t.UpdatedAt}
	return func(row pgx.Row) (task.Task, error) {
		err := row.Scan(dest...)
		t.Priority, t.CompletedBy = task.Priority(prio), task.CompletedBy(by)
		return t, err
	}
}

// repeatedID scans a uuid column whose value repeats from row to row (user_id in a
// user's rows, task_id in a task's subtasks) into *s, the reused destination: when the
// row holds the previous row's value the string already there is kept, so only the
// first row allocates one. Other values are spelled as pgx spells a uuid into a string.
type repeatedID struct{ s *string }

// ScanUUID implements pgtype.UUIDScanner.
func (r repeatedID) ScanUUID(v pgtype.UUID) error {
	if !v.Valid {
		return errors.New("cannot scan NULL into an id")
	}
	var buf [36]byte
	hex.Encode(buf[0:8], v.Bytes[:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], v.Bytes[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], v.Bytes[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], v.Bytes[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], v.Bytes[10:])
	if string(buf[:]) != *r.s { // compared without a conversion
		*r.s = string(buf[:])
	}
	return nil
}

// enumText scans a text column of few values (a CHECK-constrained enum: priority,
// completed_by, source, a reminder's type and method) without allocating a string per
// row for the known ones.
type enumText string

// ScanBytes implements pgtype.BytesScanner.
func (e *enumText) ScanBytes(v []byte) error {
	if v == nil {
		return errors.New("cannot scan NULL into an enum")
	}
	switch string(v) { // compared without a conversion
	case "":
		*e = ""
	case string(task.Low):
		*e = enumText(task.Low)
	case string(task.Medium):
		*e = enumText(task.Medium)
	case string(task.High):
		*e = enumText(task.High)
	case string(task.ByManual):
		*e = enumText(task.ByManual)
	case string(task.ByAuto):
		*e = enumText(task.ByAuto)
	case string(task.ByForce):
		*e = enumText(task.ByForce)
	case string(task.SourceUser):
		*e = enumText(task.SourceUser)
	case string(task.SourceAI):
		*e = enumText(task.SourceAI)
	case string(task.SourceSystem):
		*e = enumText(task.SourceSystem)
	case string(reminder.Before):
		*e = enumText(reminder.Before)
	case string(reminder.After):
		*e = enumText(reminder.After)
	case string(reminder.Absolute):
		*e = enumText(reminder.Absolute)
	case string(reminder.InApp):
		*e = enumText(reminder.InApp)
	case string(reminder.Push):
		*e = enumText(reminder.Push)
	default:
		*e = enumText(v)
	}
	return nil
}

// TaskDetail is a task with its subtasks (by order_index) and reminders.
type TaskDetail struct {
	Task      task.Task
	Subtasks  []task.Subtask
	Reminders []reminder.Reminder
}

// TaskFilter is the query of GET /tasks.
type TaskFilter struct {
	Completed     *bool
	Priority      *task.Priority
	DueBefore     *time.Time
	DueAfter      *time.Time
	IncludeHidden bool
	Query         string // title contains, case-insensitive
}

// Page is offset/limit.
type Page struct{ Offset, Limit int }

// escapeLike makes s a literal inside an ILIKE pattern.
func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// ListTasks is one page of the user's tasks, newest first (created_at, id descending: a
// stable order backed by tasks_user_created). The title search is ILIKE on the user's
// rows only, which that index bounds; no trigram extension is needed in the schema.
func (s *Store) ListTasks(ctx context.Context, userID string, f TaskFilter, p Page) ([]task.Task, int, error) {
	if f == (TaskFilter{}) {
		return listPage(ctx, s.pool, newTaskScanner(), p,
			unfilteredTaskCount, []any{userID}, unfilteredTaskPage, []any{userID, p.Limit, p.Offset})
	}
	where := []string{"user_id = $1"}
	args := []any{userID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Completed != nil {
		add("completed = $%d", *f.Completed)
	}
	if f.Priority != nil {
		add("priority = $%d", string(*f.Priority))
	}
	if f.DueBefore != nil {
		add("due_date < $%d", *f.DueBefore)
	}
	if f.DueAfter != nil {
		add("due_date > $%d", *f.DueAfter)
	}
	if !f.IncludeHidden {
		where = append(where, "NOT hidden")
	}
	if f.Query != "" {
		add(`title ILIKE '%%' || $%d || '%%' ESCAPE '\'`, escapeLike(f.Query))
	}
	countSQL, pageSQL := taskListSQL(strings.Join(where, " AND "), len(args))
	pageArgs := append(args[:len(args):len(args)], p.Limit, p.Offset)
	return listPage(ctx, s.pool, newTaskScanner(), p, countSQL, args, pageSQL, pageArgs)
}

// unfilteredTaskCount and unfilteredTaskPage are ListTasks' statements for the usual
// request, without filters: built once rather than per request.
var unfilteredTaskCount, unfilteredTaskPage = taskListSQL("user_id = $1 AND NOT hidden", 1)

// taskListSQL is ListTasks' count and page statements for cond, which uses the first
// nArgs parameters; the page's limit and offset follow them.
func taskListSQL(cond string, nArgs int) (countSQL, pageSQL string) {
	return `SELECT count(*) FROM tasks WHERE ` + cond,
		fmt.Sprintf(`SELECT %s FROM tasks WHERE %s ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`,
			taskCols, cond, nArgs+1, nArgs+2)
}

// listPage is a list endpoint's total and page in one round trip: the count and the page
// query in one batch. (count(*) OVER () in the page query would need no batch, but a page
// beyond the end has no row to carry the total, and it counts by reading every row of
// the page query rather than stopping at LIMIT.)
func listPage[T any](ctx context.Context, q batcher, scan func(pgx.Row) (T, error), p Page, countSQL string, countArgs []any, pageSQL string, pageArgs []any) ([]T, int, error) {
	b := &pgx.Batch{}
	b.Queue(countSQL, countArgs...)
	b.Queue(pageSQL, pageArgs...)
	br := q.SendBatch(ctx, b)
	defer br.Close()
	var total int
	if err := br.QueryRow().Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, 0, err
	}
	// The page holds at most limit rows: one allocation for them.
	out, err := collect(rows, max(min(p.Limit, total-p.Offset), 0), scan)
	if err != nil {
		return nil, 0, err
	}
	return out, total, br.Close()
}

// collect is pgx.CollectRows for the scan functions here, which reuse their destinations
// (newTaskScanner), into a slice made for n rows, the number expected.
func collect[T any](rows pgx.Rows, n int, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	out := make([]T, 0, n)
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// GetTask is one of the user's tasks with its subtasks.
func (s *Store) GetTask(ctx context.Context, userID, id string) (TaskDetail, error) {
	if !ValidID(id) {
		return TaskDetail{}, notFound("task")
	}
	return s.taskDetail(ctx, s.pool, userID, id)
}

// batcher is what both the pool and a transaction offer to send a pgx.Batch.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// taskDetail reads the user's task, its subtasks and its reminders in one round trip
// (a batch of three queries, each scoped by user_id); no task row is NOT_FOUND.
func (s *Store) taskDetail(ctx context.Context, q batcher, userID, id string) (TaskDetail, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT `+taskCols+` FROM tasks WHERE id = $1 AND user_id = $2`, id, userID)
	b.Queue(subtasksOfSQL, id, userID)
	// remindersOf's query and order.
	b.Queue(`SELECT `+reminderCols+` FROM reminders WHERE task_id = $1 AND user_id = $2 ORDER BY created_at, id`, id, userID)
	br := q.SendBatch(ctx, b)
	defer br.Close()
	t, err := scanTask(br.QueryRow())
	if pg.IsNoRows(err) {
		return TaskDetail{}, notFound("task")
	}
	if err != nil {
		return TaskDetail{}, err
	}
	rows, err := br.Query()
	if err != nil {
		return TaskDetail{}, err
	}
	// The task row counts its subtasks (the count may be stale by now; it only sizes).
	subs, err := collect(rows, t.SubtaskCount, newSubtaskScanner())
	if err != nil {
		return TaskDetail{}, err
	}
	rows, err = br.Query()
	if err != nil {
		return TaskDetail{}, err
	}
	rems, err := collect(rows, 0, newReminderScanner())
	if err != nil {
		return TaskDetail{}, err
	}
	return TaskDetail{Task: t, Subtasks: subs, Reminders: rems}, br.Close()
}

// lockTask reads the user's task FOR UPDATE; every change of a task or its subtasks
// starts here, so changes of one task serialise and ownership is checked once.
func lockTask(ctx context.Context, tx pgx.Tx, userID, id string) (task.Task, error) {
	if !ValidID(id) {
		return task.Task{}, notFound("task")
	}
	t, err := scanTask(tx.QueryRow(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = $1 AND user_id = $2 FOR UPDATE`, id, userID))
	if pg.IsNoRows(err) {
		return task.Task{}, notFound("task")
	}
	return t, err
}

// lockTaskOf finds the task that owns the user's row id in child (subtasks, reminders) and
// locks that task: every writer of a task's rows locks the task first, so two changes
// never deadlock. A missing row, or a task gone meanwhile, is NOT_FOUND for what.
func lockTaskOf(ctx context.Context, tx pgx.Tx, child, what, userID, id string) (task.Task, error) {
	if !ValidID(id) {
		return task.Task{}, notFound(what)
	}
	var taskID string
	err := tx.QueryRow(ctx, `SELECT task_id FROM `+child+` WHERE id = $1 AND user_id = $2`, id, userID).Scan(&taskID)
	if pg.IsNoRows(err) {
		return task.Task{}, notFound(what)
	}
	if err != nil {
		return task.Task{}, err
	}
	t, err := lockTask(ctx, tx, userID, taskID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return task.Task{}, notFound(what)
	}
	return t, err
}

func insertTask(ctx context.Context, tx pgx.Tx, t task.Task) error {
	_, err := tx.Exec(ctx, insertTaskSQL, taskArgs(t)...)
	return err
}

const insertTaskSQL = `INSERT INTO tasks (` + taskCols + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`

// taskArgs are the arguments of insertTaskSQL.
func taskArgs(t task.Task) []any {
	return []any{t.ID, t.UserID, t.Title, t.Description, string(t.Priority), t.DueDate, t.EstimatedDuration,
		t.FocusTimeSeconds, t.Completed, t.CompletedAt, string(t.CompletedBy), t.Hidden, t.Archived, t.TemplateID,
		t.SubtaskCount, t.SubtaskCompletedCount, t.Version, t.CreatedAt, t.UpdatedAt}
}

// saveTask writes the mutable fields of t (the row is locked by the caller).
func saveTask(ctx context.Context, tx pgx.Tx, t task.Task) error {
	_, err := tx.Exec(ctx, `UPDATE tasks SET title = $3, description = $4, priority = $5, due_date = $6,
		estimated_duration = $7, completed = $8, completed_at = $9, completed_by = $10, hidden = $11,
		archived = $12, subtask_count = $13, subtask_completed_count = $14, version = $15, updated_at = $16
		WHERE id = $1 AND user_id = $2`,
		t.ID, t.UserID, t.Title, t.Description, string(t.Priority), t.DueDate, t.EstimatedDuration,
		t.Completed, t.CompletedAt, string(t.CompletedBy), t.Hidden, t.Archived,
		t.SubtaskCount, t.SubtaskCompletedCount, t.Version, t.UpdatedAt)
	return err
}

// CreateTask validates n, counts it against the user's limit and stores it (version 1).
func (s *Store) CreateTask(ctx context.Context, a Actor, n task.NewTask) (task.Task, error) {
	var t task.Task
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		t, err = s.CreateTaskTx(ctx, tx, a, n)
		return err
	})
	return t, err
}

// CreateTaskTx is CreateTask inside the caller's transaction (templates, issue 6).
func (s *Store) CreateTaskTx(ctx context.Context, tx pgx.Tx, a Actor, n task.NewTask) (task.Task, error) {
	now := s.now()
	n, err := n.Validate(a.Tier, now)
	if err != nil {
		return task.Task{}, err
	}
	t := task.Task{
		ID: newID(), UserID: a.UserID, Title: n.Title, Description: n.Description, Priority: n.Priority,
		DueDate: n.DueDate, EstimatedDuration: n.EstimatedDuration, Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if t.DueDate != nil {
		d := t.DueDate.Truncate(time.Microsecond)
		t.DueDate = &d
	}
	if err := s.reserve(ctx, tx, a, task.ResourceTasks); err != nil {
		return task.Task{}, err
	}
	act, err := s.activityArgs(a, task.EntityTask, t.ID, task.ActionCreated, map[string]any{"title": t.Title})
	if err != nil {
		return task.Task{}, err
	}
	// The task and its activity row in one round trip.
	b := &pgx.Batch{}
	b.Queue(insertTaskSQL, taskArgs(t)...)
	b.Queue(insertActivitySQL, act...)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return task.Task{}, err
	}
	return t, s.emitTask(ctx, tx, tasksevents.TypeTaskCreated, t, a.Source)
}

// UpdateTask applies a PATCH (API.md §3) and, when it completes the task, the completion.
func (s *Store) UpdateTask(ctx context.Context, a Actor, id string, p task.Patch) (task.Task, task.Completion, error) {
	var (
		t    task.Task
		comp task.Completion
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		t, comp, err = s.UpdateTaskTx(ctx, tx, a, id, p)
		return err
	})
	return t, comp, err
}

// UpdateTaskTx is UpdateTask inside the caller's transaction (AI actions).
func (s *Store) UpdateTaskTx(ctx context.Context, tx pgx.Tx, a Actor, id string, p task.Patch) (task.Task, task.Completion, error) {
	comp := task.Completion{Unlocked: []task.Achievement{}}
	cur, err := lockTask(ctx, tx, a.UserID, id)
	if err != nil {
		return task.Task{}, comp, err
	}
	res, err := task.ApplyPatch(cur, p, a.Tier, s.now())
	if err != nil || !res.Changed {
		return cur, comp, err
	}
	next := res.Task
	if next.DueDate != nil {
		d := next.DueDate.Truncate(time.Microsecond)
		next.DueDate = &d
	}
	if err := saveTask(ctx, tx, next); err != nil {
		return task.Task{}, comp, err
	}
	if !sameDue(cur.DueDate, next.DueDate) {
		if err := s.rescheduleReminders(ctx, tx, next); err != nil {
			return task.Task{}, comp, err
		}
	}
	if err := s.record(ctx, tx, a, task.EntityTask, next.ID, task.ActionUpdated, changedFields(cur, next)); err != nil {
		return task.Task{}, comp, err
	}
	if err := s.emitTask(ctx, tx, tasksevents.TypeTaskUpdated, next, a.Source); err != nil {
		return task.Task{}, comp, err
	}
	if res.Completed {
		if comp, err = s.completed(ctx, tx, a, next); err != nil {
			return task.Task{}, comp, err
		}
	}
	return next, comp, nil
}

func sameDue(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

func changedFields(a, b task.Task) map[string]any {
	var fields []string
	add := func(ok bool, name string) {
		if !ok {
			fields = append(fields, name)
		}
	}
	add(a.Title == b.Title, "title")
	add(a.Description == b.Description, "description")
	add(a.Priority == b.Priority, "priority")
	add((a.DueDate == nil) == (b.DueDate == nil) && (a.DueDate == nil || a.DueDate.Equal(*b.DueDate)), "due_date")
	add((a.EstimatedDuration == nil) == (b.EstimatedDuration == nil) && (a.EstimatedDuration == nil || *a.EstimatedDuration == *b.EstimatedDuration), "estimated_duration")
	add(a.Completed == b.Completed, "completed")
	add(a.Hidden == b.Hidden, "hidden")
	add(a.Archived == b.Archived, "archived")
	return map[string]any{"fields": fields, "version": b.Version}
}

// ForceComplete completes the task and every open subtask in one transaction. version is
// required (optimistic locking).
func (s *Store) ForceComplete(ctx context.Context, a Actor, id string, version int) (TaskDetail, task.Completion, error) {
	var (
		d    TaskDetail
		comp task.Completion
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		d, comp, err = s.ForceCompleteTx(ctx, tx, a, id, &version)
		return err
	})
	return d, comp, err
}

// ForceCompleteTx is ForceComplete inside the caller's transaction; a nil version skips
// the locking check (an AI complete_task without a version).
func (s *Store) ForceCompleteTx(ctx context.Context, tx pgx.Tx, a Actor, id string, version *int) (TaskDetail, task.Completion, error) {
	comp := task.Completion{Unlocked: []task.Achievement{}}
	cur, err := lockTask(ctx, tx, a.UserID, id)
	if err != nil {
		return TaskDetail{}, comp, err
	}
	if err := task.CheckVersion(version, cur.Version); err != nil {
		return TaskDetail{}, comp, err
	}
	now := s.now()
	next, done, err := task.Complete(cur, task.ByForce, now)
	if err != nil {
		return TaskDetail{}, comp, err
	}
	tag, err := tx.Exec(ctx, `UPDATE subtasks SET completed = true, completed_at = $3, updated_at = $3
		WHERE task_id = $1 AND user_id = $2 AND NOT completed`, id, a.UserID, now)
	if err != nil {
		return TaskDetail{}, comp, err
	}
	closed := int(tag.RowsAffected())
	next.SubtaskCompletedCount = next.SubtaskCount
	if done || closed > 0 {
		if !done { // already completed: only the subtask counts change
			next.UpdatedAt = now
		}
		if err := saveTask(ctx, tx, next); err != nil {
			return TaskDetail{}, comp, err
		}
	}
	if done {
		if err := s.emitTask(ctx, tx, tasksevents.TypeTaskUpdated, next, a.Source); err != nil {
			return TaskDetail{}, comp, err
		}
		if comp, err = s.completed(ctx, tx, a, next); err != nil {
			return TaskDetail{}, comp, err
		}
	}
	d, err := s.taskDetail(ctx, tx, a.UserID, id)
	return d, comp, err
}

// DeleteTask removes the task with its subtasks (and reminders), keeping a tombstone.
func (s *Store) DeleteTask(ctx context.Context, a Actor, id string) (task.Tombstone, error) {
	var tomb task.Tombstone
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := lockTask(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		subs, err := s.subtasksOf(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		rems, err := remindersOf(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		remSnap, err := snapshotReminders(rems)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tasks WHERE id = $1 AND user_id = $2`, id, a.UserID); err != nil {
			return err
		}
		// A delete frees its slot by the row being gone; the user's lock is for the
		// tombstone eviction of bury.
		if err := lockUser(ctx, tx, a.UserID); err != nil {
			return err
		}
		tomb, err = s.bury(ctx, tx, a.UserID, task.EntityTask, cur.ID, cur.Title, snapshot{Task: &cur, Subtasks: subs, Reminders: remSnap})
		if err != nil {
			return err
		}
		if err := s.record(ctx, tx, a, task.EntityTask, id, task.ActionDeleted, map[string]any{"tombstone_id": tomb.ID}); err != nil {
			return err
		}
		return s.emitTask(ctx, tx, tasksevents.TypeTaskDeleted, cur, a.Source)
	})
	return tomb, err
}

// OpenTasks is the user's open (not completed, not archived) tasks, newest first, for the
// AI context.
func (s *Store) OpenTasks(ctx context.Context, userID string, limit int) ([]TaskDetail, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+taskCols+` FROM tasks WHERE user_id = $1 AND NOT completed AND NOT archived
		ORDER BY created_at DESC, id DESC LIMIT $2`, userID, limit)
	if err != nil {
		return nil, err
	}
	ts, err := collect(rows, 0, newTaskScanner())
	if err != nil {
		return nil, err
	}
	out := make([]TaskDetail, 0, len(ts))
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	byTask := map[string][]task.Subtask{}
	if len(ids) > 0 {
		rows, err := s.pool.Query(ctx, `SELECT `+subtaskCols+` FROM subtasks WHERE user_id = $1 AND task_id = ANY($2::uuid[]) ORDER BY task_id, order_index`, userID, ids)
		if err != nil {
			return nil, err
		}
		subs, err := collect(rows, 0, newSubtaskScanner())
		if err != nil {
			return nil, err
		}
		for _, st := range subs {
			byTask[st.TaskID] = append(byTask[st.TaskID], st)
		}
	}
	for _, t := range ts {
		out = append(out, TaskDetail{Task: t, Subtasks: byTask[t.ID]})
	}
	return out, nil
}
