package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// snapshotVersion marks the layout of snapshot; a change of layout gets a new number and
// recovery keeps reading the old ones for the 7 days they live.
const snapshotVersion = 1

// snapshot is what a tombstone keeps: a task with its subtasks (and, from issue 6, its
// reminders), or a note. Domain types are encoded with their Go field names.
type snapshot struct {
	V         int               `json:"v"`
	Task      *task.Task        `json:"task,omitempty"`
	Subtasks  []task.Subtask    `json:"subtasks,omitempty"`
	Reminders []json.RawMessage `json:"reminders,omitempty"`
	Note      *task.Note        `json:"note,omitempty"`
}

// bury writes a tombstone and evicts the user's oldest beyond MaxTombstonesPerUser. The
// caller holds the user's lock (lockUser), which serialises deletes of one user.
func (s *Store) bury(ctx context.Context, tx pgx.Tx, userID string, et task.EntityType, entityID, title string, snap snapshot) (task.Tombstone, error) {
	snap.V = snapshotVersion
	b, err := json.Marshal(snap)
	if err != nil {
		return task.Tombstone{}, err
	}
	now := s.now()
	t := task.Tombstone{ID: newID(), UserID: userID, EntityType: et, EntityID: entityID, Title: title,
		DeletedAt: now, ExpiresAt: now.Add(task.TombstoneTTL)}
	if _, err := tx.Exec(ctx, `INSERT INTO tombstones (id, user_id, entity_type, entity_id, title, snapshot, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, t.ID, userID, string(et), entityID, title, b, t.DeletedAt, t.ExpiresAt); err != nil {
		return task.Tombstone{}, err
	}
	_, err = tx.Exec(ctx, `DELETE FROM tombstones WHERE user_id = $1 AND id NOT IN (
		SELECT id FROM tombstones WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)`, userID, task.MaxTombstonesPerUser)
	return t, err
}

// ListTombstones is the user's recoverable deletions, newest first.
func (s *Store) ListTombstones(ctx context.Context, userID string, p Page) ([]task.Tombstone, int, error) {
	now := s.now()
	return listPage(ctx, s.pool, func(r pgx.Row) (task.Tombstone, error) {
		var t task.Tombstone
		var et string
		err := r.Scan(&t.ID, &t.UserID, &et, &t.EntityID, &t.Title, &t.DeletedAt, &t.ExpiresAt)
		t.EntityType = task.EntityType(et)
		return t, err
	}, p,
		`SELECT count(*) FROM tombstones WHERE user_id = $1 AND expires_at > $2`, []any{userID, now},
		`SELECT id, user_id, entity_type, entity_id, title, created_at, expires_at FROM tombstones
		WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4`,
		[]any{userID, now, p.Limit, p.Offset})
}

// Recovered is what a recovery restored: a task with subtasks, or a note.
type Recovered struct {
	EntityType task.EntityType
	Task       *TaskDetail
	Note       *task.Note
}

// Recover restores a tombstone's task or note with its original ids and version 1,
// counting it against the limit like a create. Expired or unknown: 404.
func (s *Store) Recover(ctx context.Context, a Actor, id string) (Recovered, error) {
	var out Recovered
	if !ValidID(id) {
		return out, notFound("tombstone")
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The user's lock before the tombstone's row, the order of a delete (lockUser,
		// then bury evicting tombstones), so a recovery and a delete never deadlock.
		if err := lockUser(ctx, tx, a.UserID); err != nil {
			return err
		}
		now := s.now()
		var (
			et  string
			raw []byte
		)
		err := tx.QueryRow(ctx, `SELECT entity_type, snapshot FROM tombstones WHERE id = $1 AND user_id = $2 AND expires_at > $3 FOR UPDATE`,
			id, a.UserID, now).Scan(&et, &raw)
		if pg.IsNoRows(err) {
			return notFound("tombstone")
		}
		if err != nil {
			return err
		}
		var snap snapshot
		if err := json.Unmarshal(raw, &snap); err != nil {
			return fmt.Errorf("tombstone %s: %w", id, err)
		}
		out.EntityType = task.EntityType(et)
		switch {
		case snap.Task != nil:
			d, err := s.restoreTask(ctx, tx, a, snap, now)
			if err != nil {
				return err
			}
			out.Task = &d
		case snap.Note != nil:
			n := *snap.Note
			n.Version, n.UpdatedAt = 1, now
			if err := s.reserve(ctx, tx, a, task.ResourceNotes); err != nil {
				return err
			}
			if err := insertNote(ctx, tx, n); err != nil {
				return err
			}
			if err := s.record(ctx, tx, a, task.EntityNote, n.ID, task.ActionRecovered, nil); err != nil {
				return err
			}
			out.Note = &n
		default:
			return fmt.Errorf("tombstone %s: empty snapshot", id)
		}
		_, err = tx.Exec(ctx, `DELETE FROM tombstones WHERE id = $1 AND user_id = $2`, id, a.UserID)
		return err
	})
	return out, err
}

// restoreTask inserts a buried task and its subtasks as they were, at version 1. It is
// not a completion: streaks and achievements do not move.
func (s *Store) restoreTask(ctx context.Context, tx pgx.Tx, a Actor, snap snapshot, now time.Time) (TaskDetail, error) {
	t := *snap.Task
	t.Version, t.UpdatedAt = 1, now
	t.SubtaskCount, t.SubtaskCompletedCount = len(snap.Subtasks), 0
	for _, st := range snap.Subtasks {
		if st.Completed {
			t.SubtaskCompletedCount++
		}
	}
	if err := s.reserve(ctx, tx, a, task.ResourceTasks); err != nil {
		return TaskDetail{}, err
	}
	if err := insertTask(ctx, tx, t); err != nil {
		return TaskDetail{}, err
	}
	for i, st := range snap.Subtasks {
		st.OrderIndex = i
		if _, err := tx.Exec(ctx, `INSERT INTO subtasks (`+subtaskCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
			st.ID, st.TaskID, st.UserID, st.Title, st.Completed, st.CompletedAt, st.OrderIndex, string(st.Source), st.CreatedAt, st.UpdatedAt); err != nil {
			return TaskDetail{}, err
		}
	}
	// A recovered completed task was counted toward the achievements when it was
	// completed; completing it again after an un-complete must not count it twice.
	if t.Completed {
		if _, err := tx.Exec(ctx, `UPDATE tasks SET achievement_counted = true WHERE id = $1 AND user_id = $2`, t.ID, t.UserID); err != nil {
			return TaskDetail{}, err
		}
	}
	rems, err := restoredReminders(snap.Reminders)
	if err != nil {
		return TaskDetail{}, err
	}
	if err := s.restoreReminders(ctx, tx, rems); err != nil {
		return TaskDetail{}, err
	}
	if err := s.record(ctx, tx, a, task.EntityTask, t.ID, task.ActionRecovered, nil); err != nil {
		return TaskDetail{}, err
	}
	if err := s.emitTask(ctx, tx, tasksevents.TypeTaskRecovered, t, a.Source); err != nil {
		return TaskDetail{}, err
	}
	return s.taskDetail(ctx, tx, a.UserID, t.ID)
}

// snapshotReminders encodes a task's reminders for its tombstone (domain types with their
// Go field names, like the task and subtasks).
func snapshotReminders(rs []reminder.Reminder) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(rs))
	for _, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func restoredReminders(raw []json.RawMessage) ([]reminder.Reminder, error) {
	out := make([]reminder.Reminder, 0, len(raw))
	for _, b := range raw {
		var r reminder.Reminder
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("tombstone reminder: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// PurgeTombstones deletes expired tombstones (the purge job).
func (s *Store) PurgeTombstones(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM tombstones WHERE expires_at <= $1`, s.now())
	return tag.RowsAffected(), err
}
