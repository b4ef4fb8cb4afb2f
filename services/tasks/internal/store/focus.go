package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/focus"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

const entityFocus task.EntityType = "focus_session"

// Activity actions of focus sessions.
const (
	actionFocusStarted = "started"
	actionFocusStopped = "stopped"
)

const focusCols = `id, user_id, task_id, started_at, ended_at, elapsed_seconds, coalesce(ended_by, '')`

func scanFocus(row pgx.Row) (focus.Session, error) {
	var s focus.Session
	err := row.Scan(&s.ID, &s.UserID, &s.TaskID, &s.StartedAt, &s.EndedAt, &s.ElapsedSeconds, &s.EndedBy)
	return s, err
}

func errFocusActive(s focus.Session) error {
	return apperr.New(apperr.FocusSessionActive, "a focus session is already running; stop it first",
		apperr.Field("task_id", "focus session "+s.ID+" is running on task "+s.TaskID))
}

// ActiveFocus is the user's open session; ok is false when there is none.
func (s *Store) ActiveFocus(ctx context.Context, userID string) (focus.Session, bool, error) {
	f, err := scanFocus(s.pool.QueryRow(ctx, `SELECT `+focusCols+` FROM focus_sessions WHERE user_id = $1 AND ended_at IS NULL`, userID))
	if pg.IsNoRows(err) {
		return focus.Session{}, false, nil
	}
	return f, err == nil, err
}

// StartFocus opens a session on one of the user's open tasks and schedules its automatic
// close. A second open session is 409 FOCUS_SESSION_ACTIVE, also when two starts race
// (the partial unique index decides).
func (s *Store) StartFocus(ctx context.Context, a Actor, taskID string) (focus.Session, error) {
	var out focus.Session
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t, err := lockTask(ctx, tx, a.UserID, taskID)
		if err != nil {
			return err
		}
		if t.Completed {
			return apperr.New(apperr.Conflict, "the task is completed", apperr.Field("task_id", "the task is completed"))
		}
		if t.Archived {
			return task.ErrArchived("an archived task cannot be focused on")
		}
		cur, err := scanFocus(tx.QueryRow(ctx, `SELECT `+focusCols+` FROM focus_sessions WHERE user_id = $1 AND ended_at IS NULL`, a.UserID))
		if err == nil {
			return errFocusActive(cur)
		}
		if !pg.IsNoRows(err) {
			return err
		}
		out = focus.Session{ID: newID(), UserID: a.UserID, TaskID: taskID, StartedAt: s.now()}
		if _, err := tx.Exec(ctx, `INSERT INTO focus_sessions (id, user_id, task_id, started_at) VALUES ($1, $2, $3, $4)`,
			out.ID, out.UserID, out.TaskID, out.StartedAt); err != nil {
			return err
		}
		if s.sched != nil {
			if err := s.sched.FocusClose(ctx, tx, out.ID, out.UserID, out.AutoCloseAt()); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, a, entityFocus, out.ID, actionFocusStarted, map[string]any{"task_id": taskID})
	})
	if pg.IsUniqueViolation(err, "focus_sessions_one_active") {
		if cur, ok, rerr := s.ActiveFocus(ctx, a.UserID); rerr == nil && ok {
			return focus.Session{}, errFocusActive(cur)
		}
		return focus.Session{}, apperr.New(apperr.FocusSessionActive, "a focus session is already running; stop it first")
	}
	return out, err
}

// StopFocus closes the user's open session and adds its time to the task. No open
// session: 404.
func (s *Store) StopFocus(ctx context.Context, a Actor) (focus.Session, task.Task, error) {
	var (
		out focus.Session
		t   task.Task
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var closed bool
		var err error
		out, t, closed, err = s.closeFocus(ctx, tx, a, "", focus.ByUser)
		if err == nil && !closed {
			return apperr.New(apperr.NotFound, "no focus session is running")
		}
		return err
	})
	return out, t, err
}

// CloseFocusSession is the auto-close job: the session, if still open, ends with at most
// focus.MaxDuration credited. An ended (or deleted) session is a no-op.
func (s *Store) CloseFocusSession(ctx context.Context, userID, sessionID string) (bool, error) {
	if !ValidID(userID) || !ValidID(sessionID) {
		return false, nil
	}
	var closed bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		_, _, closed, err = s.closeFocus(ctx, tx, Actor{UserID: userID, Source: task.SourceSystem}, sessionID, focus.ByAuto)
		return err
	})
	return closed, err
}

// closeFocus ends the user's open session (sessionID "" for whichever is open) and adds
// its seconds to the task, locking the task first (the order of every task writer).
func (s *Store) closeFocus(ctx context.Context, tx pgx.Tx, a Actor, sessionID string, by focus.EndedBy) (focus.Session, task.Task, bool, error) {
	cur, err := scanFocus(tx.QueryRow(ctx, `SELECT `+focusCols+` FROM focus_sessions WHERE user_id = $1 AND ended_at IS NULL
		AND ($2 = '' OR id::text = $2)`, a.UserID, sessionID))
	if pg.IsNoRows(err) {
		return focus.Session{}, task.Task{}, false, nil
	}
	if err != nil {
		return focus.Session{}, task.Task{}, false, err
	}
	t, err := lockTask(ctx, tx, a.UserID, cur.TaskID)
	if err != nil {
		return focus.Session{}, task.Task{}, false, err
	}
	// Re-read under the task lock: a concurrent stop may have closed it meanwhile.
	cur, err = scanFocus(tx.QueryRow(ctx, `SELECT `+focusCols+` FROM focus_sessions WHERE id = $1 FOR UPDATE`, cur.ID))
	if err != nil {
		return focus.Session{}, task.Task{}, false, err
	}
	if !cur.Open() {
		return focus.Session{}, task.Task{}, false, nil
	}
	now := s.now()
	done, secs := focus.Stop(cur, now, by)
	if _, err := tx.Exec(ctx, `UPDATE focus_sessions SET ended_at = $2, elapsed_seconds = $3, ended_by = $4 WHERE id = $1`,
		done.ID, done.EndedAt, secs, string(by)); err != nil {
		return focus.Session{}, task.Task{}, false, err
	}
	t.FocusTimeSeconds += secs
	t.Version++
	t.UpdatedAt = now
	if _, err := tx.Exec(ctx, `UPDATE tasks SET focus_time_seconds = $3, version = $4, updated_at = $5 WHERE id = $1 AND user_id = $2`,
		t.ID, t.UserID, t.FocusTimeSeconds, t.Version, t.UpdatedAt); err != nil {
		return focus.Session{}, task.Task{}, false, err
	}
	if err := s.record(ctx, tx, a, entityFocus, done.ID, actionFocusStopped,
		map[string]any{"task_id": t.ID, "elapsed_seconds": secs, "ended_by": string(by)}); err != nil {
		return focus.Session{}, task.Task{}, false, err
	}
	if err := s.emitTask(ctx, tx, tasksevents.TypeTaskUpdated, t, a.Source); err != nil {
		return focus.Session{}, task.Task{}, false, err
	}
	return done, t, true, nil
}
