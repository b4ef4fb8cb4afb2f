package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

const subtaskCols = `id, task_id, user_id, title, completed, completed_at, order_index, source, created_at, updated_at`

func scanSubtask(row pgx.Row) (task.Subtask, error) { return newSubtaskScanner()(row) }

// newSubtaskScanner is scanSubtask for many rows, reusing its destinations (see
// newTaskScanner).
func newSubtaskScanner() func(pgx.Row) (task.Subtask, error) {
	var st task.Subtask
	var src enumText
	dest := []any{&st.ID, repeatedID{&st.TaskID}, repeatedID{&st.UserID}, &st.Title, &st.Completed, &st.CompletedAt, &st.OrderIndex, &src, &st.CreatedAt, &st.UpdatedAt}
	return func(row pgx.Row) (task.Subtask, error) {
		err := row.Scan(dest...)
		st.Source = task.Source(src)
		return st, err
	}
}

// subtasksOfSQL is the task's ($1) subtasks of the user ($2) by order_index.
const subtasksOfSQL = `SELECT ` + subtaskCols + ` FROM subtasks WHERE task_id = $1 AND user_id = $2 ORDER BY order_index`

func (s *Store) subtasksOf(ctx context.Context, q pg.Querier, userID, taskID string) ([]task.Subtask, error) {
	rows, err := q.Query(ctx, subtasksOfSQL, taskID, userID)
	if err != nil {
		return nil, err
	}
	return collect(rows, 0, newSubtaskScanner())
}

// ListSubtasks is the task's subtasks by order_index (404 when the task is not the user's).
func (s *Store) ListSubtasks(ctx context.Context, userID, taskID string) ([]task.Subtask, error) {
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
	return s.subtasksOf(ctx, s.pool, userID, taskID)
}

// CreateSubtasks appends subtasks to the task (order_index continues without gaps),
// within the per-task limit of the tier. source is user or ai.
func (s *Store) CreateSubtasks(ctx context.Context, a Actor, taskID string, titles []string, source task.Source) ([]task.Subtask, error) {
	var out []task.Subtask
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = s.CreateSubtasksTx(ctx, tx, a, taskID, titles, source)
		return err
	})
	return out, err
}

// CreateSubtasksTx is CreateSubtasks inside the caller's transaction.
func (s *Store) CreateSubtasksTx(ctx context.Context, tx pgx.Tx, a Actor, taskID string, titles []string, source task.Source) ([]task.Subtask, error) {
	clean := make([]string, len(titles))
	var v apperr.Validator
	for i, t := range titles {
		c, err := task.ValidateSubtaskTitle(t)
		if e, ok := apperr.As(err); ok && len(e.Details) > 0 {
			field := "title"
			if len(titles) > 1 {
				field = fmt.Sprintf("titles[%d]", i)
			}
			v.Add(field, e.Details[0].Message)
		}
		clean[i] = c
	}
	if len(titles) == 0 {
		v.Add("titles", "at least one subtask is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	cur, err := lockTask(ctx, tx, a.UserID, taskID)
	if err != nil {
		return nil, err
	}
	unlocked, err := s.unlockedAchievements(ctx, tx, a.UserID)
	if err != nil {
		return nil, err
	}
	limit := task.EffectiveLimits(a.Tier, unlocked).MaxSubtasks
	if cur.SubtaskCount+len(clean) > limit {
		return nil, task.ErrLimit(task.ResourceSubtasks, limit, cur.SubtaskCount, unlocked)
	}
	now := s.now()
	out := make([]task.Subtask, 0, len(clean))
	for i, title := range clean {
		st := task.Subtask{ID: newID(), TaskID: taskID, UserID: a.UserID, Title: title, OrderIndex: cur.SubtaskCount + i,
			Source: source, CreatedAt: now, UpdatedAt: now}
		if _, err := tx.Exec(ctx, `INSERT INTO subtasks (`+subtaskCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
			st.ID, st.TaskID, st.UserID, st.Title, st.Completed, st.CompletedAt, st.OrderIndex, string(st.Source), st.CreatedAt, st.UpdatedAt); err != nil {
			return nil, err
		}
		if err := s.record(ctx, tx, a, task.EntitySubtask, st.ID, task.ActionCreated, map[string]any{"task_id": taskID, "title": title}); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if _, err := tx.Exec(ctx, `UPDATE tasks SET subtask_count = subtask_count + $3 WHERE id = $1 AND user_id = $2`, taskID, a.UserID, len(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// SubtaskPatch is a PATCH of a subtask.
type SubtaskPatch struct {
	Title     *string
	Completed *bool
}

// SubtaskChange is a subtask after a change, with its task (whose counts moved and which
// the last open subtask auto-completes) and that completion's outcome.
type SubtaskChange struct {
	Subtask    task.Subtask
	Task       task.Task
	Completion task.Completion
}

// lockSubtask finds the user's subtask and locks its task, then the subtask (always the
// task first, like every subtask change, so two changes never deadlock).
func lockSubtask(ctx context.Context, tx pgx.Tx, userID, id string) (task.Task, task.Subtask, error) {
	t, err := lockTaskOf(ctx, tx, "subtasks", "subtask", userID, id)
	if err != nil {
		return task.Task{}, task.Subtask{}, err
	}
	st, err := scanSubtask(tx.QueryRow(ctx, `SELECT `+subtaskCols+` FROM subtasks WHERE id = $1 AND user_id = $2 FOR UPDATE`, id, userID))
	if pg.IsNoRows(err) {
		return task.Task{}, task.Subtask{}, notFound("subtask")
	}
	return t, st, err
}

// UpdateSubtask changes a subtask's title or completion. Completing the last open subtask
// auto-completes the task; un-completing a subtask never un-completes the task.
func (s *Store) UpdateSubtask(ctx context.Context, a Actor, id string, p SubtaskPatch) (SubtaskChange, error) {
	var ch SubtaskChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		ch, err = s.updateSubtaskTx(ctx, tx, a, id, p)
		return err
	})
	return ch, err
}

func (s *Store) updateSubtaskTx(ctx context.Context, tx pgx.Tx, a Actor, id string, p SubtaskPatch) (SubtaskChange, error) {
	ch := SubtaskChange{Completion: task.Completion{Unlocked: []task.Achievement{}}}
	t, st, err := lockSubtask(ctx, tx, a.UserID, id)
	if err != nil {
		return ch, err
	}
	now := s.now()
	next := st
	if p.Title != nil {
		title, err := task.ValidateSubtaskTitle(*p.Title)
		if err != nil {
			return ch, err
		}
		next.Title = title
	}
	delta := 0
	if p.Completed != nil && *p.Completed != st.Completed {
		next.Completed = *p.Completed
		next.CompletedAt = nil
		delta = -1
		if next.Completed {
			next.CompletedAt = &now
			delta = 1
		}
	}
	ch.Subtask, ch.Task = st, t
	if next.Title == st.Title && next.Completed == st.Completed {
		return ch, nil
	}
	next.UpdatedAt = now
	if _, err := tx.Exec(ctx, `UPDATE subtasks SET title = $3, completed = $4, completed_at = $5, updated_at = $6 WHERE id = $1 AND user_id = $2`,
		id, a.UserID, next.Title, next.Completed, next.CompletedAt, next.UpdatedAt); err != nil {
		return ch, err
	}
	action := task.ActionUpdated
	if delta > 0 {
		action = task.ActionCompleted
	}
	if err := s.record(ctx, tx, a, task.EntitySubtask, id, action, map[string]any{"task_id": t.ID}); err != nil {
		return ch, err
	}
	ch.Subtask = next
	if delta == 0 {
		return ch, nil
	}
	t.SubtaskCompletedCount += delta
	if delta > 0 && t.SubtaskCompletedCount == t.SubtaskCount && !t.Completed && !t.Archived {
		done := false
		t, done, err = task.Complete(t, task.ByAuto, now)
		if err != nil {
			return ch, err
		}
		if err := saveTask(ctx, tx, t); err != nil {
			return ch, err
		}
		if done {
			if err := s.emitTask(ctx, tx, tasksevents.TypeTaskUpdated, t, a.Source); err != nil {
				return ch, err
			}
			if ch.Completion, err = s.completed(ctx, tx, a, t); err != nil {
				return ch, err
			}
		}
	} else if _, err := tx.Exec(ctx, `UPDATE tasks SET subtask_completed_count = $3 WHERE id = $1 AND user_id = $2`, t.ID, a.UserID, t.SubtaskCompletedCount); err != nil {
		return ch, err
	}
	ch.Task = t
	return ch, nil
}

// DeleteSubtask removes a subtask and closes the gap in order_index.
func (s *Store) DeleteSubtask(ctx context.Context, a Actor, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		t, st, err := lockSubtask(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM subtasks WHERE id = $1 AND user_id = $2`, id, a.UserID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE subtasks SET order_index = order_index - 1 WHERE task_id = $1 AND user_id = $2 AND order_index > $3`,
			t.ID, a.UserID, st.OrderIndex); err != nil {
			return err
		}
		done := 0
		if st.Completed {
			done = 1
		}
		if _, err := tx.Exec(ctx, `UPDATE tasks SET subtask_count = subtask_count - 1, subtask_completed_count = subtask_completed_count - $3
			WHERE id = $1 AND user_id = $2`, t.ID, a.UserID, done); err != nil {
			return err
		}
		return s.record(ctx, tx, a, task.EntitySubtask, id, task.ActionDeleted, map[string]any{"task_id": t.ID})
	})
}

// ReorderSubtasks sets order 0..n-1 in the order of ids, which must name every subtask
// of the task exactly once.
func (s *Store) ReorderSubtasks(ctx context.Context, a Actor, taskID string, ids []string) ([]task.Subtask, error) {
	var out []task.Subtask
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := lockTask(ctx, tx, a.UserID, taskID); err != nil {
			return err
		}
		cur, err := s.subtasksOf(ctx, tx, a.UserID, taskID)
		if err != nil {
			return err
		}
		curIDs := make([]string, len(cur))
		for i, st := range cur {
			curIDs[i] = st.ID
		}
		order, err := task.Reorder(curIDs, ids)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE subtasks SET order_index = x.ord - 1, updated_at = $4
			FROM unnest($3::uuid[]) WITH ORDINALITY AS x(id, ord)
			WHERE subtasks.id = x.id AND subtasks.task_id = $1 AND subtasks.user_id = $2 AND subtasks.order_index <> x.ord - 1`,
			taskID, a.UserID, order, s.now()); err != nil {
			return err
		}
		if err := s.record(ctx, tx, a, task.EntityTask, taskID, task.ActionReordered, map[string]any{"subtask_ids": order}); err != nil {
			return err
		}
		out, err = s.subtasksOf(ctx, tx, a.UserID, taskID)
		return err
	})
	return out, err
}
