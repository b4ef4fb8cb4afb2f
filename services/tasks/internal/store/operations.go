package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// ApplyOnce runs fn (an AI action on the user's task) at most once per operation id: the
// operation row is inserted first, so a concurrent retry waits for the first to commit
// and then finds it, and a later retry is a no-op. It returns the achievement ids the
// first run unlocked and whether this call was a replay.
func (s *Store) ApplyOnce(ctx context.Context, a Actor, opID, actionType, taskID string, fn func(tx pgx.Tx) ([]string, error)) ([]string, bool, error) {
	if !ValidID(taskID) {
		return nil, false, notFound("task")
	}
	var (
		unlocked []string
		replayed bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		unlocked, replayed = nil, false
		tag, err := tx.Exec(ctx, `INSERT INTO applied_operations (operation_id, user_id, action_type, task_id, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, operation_id) DO NOTHING`, opID, a.UserID, actionType, taskID, s.now())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			replayed = true
			var raw []byte
			if err := tx.QueryRow(ctx, `SELECT unlocked FROM applied_operations WHERE operation_id = $1 AND user_id = $2`, opID, a.UserID).Scan(&raw); err != nil {
				return err
			}
			return json.Unmarshal(raw, &unlocked)
		}
		if unlocked, err = fn(tx); err != nil {
			return err
		}
		if unlocked == nil {
			unlocked = []string{}
		}
		b, err := json.Marshal(unlocked)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE applied_operations SET unlocked = $3 WHERE operation_id = $1 AND user_id = $2`, opID, a.UserID, b)
		return err
	})
	return unlocked, replayed, err
}

// OperationRetention is how long an AI operation id is remembered; the ai service passes
// the client's Idempotency-Key (kept 24 h), so a week covers every retry.
const OperationRetention = 7 * 24 * time.Hour

// PurgeOperations forgets operation ids past the retention (the purge job).
func (s *Store) PurgeOperations(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM applied_operations WHERE created_at < $1`, s.now().Add(-OperationRetention))
	return tag.RowsAffected(), err
}
