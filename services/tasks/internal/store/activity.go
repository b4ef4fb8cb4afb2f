package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// ActivityFilter is the query of GET /activity.
type ActivityFilter struct {
	EntityType string
	EntityID   string
	Action     string
	Source     string
	From, To   *time.Time
}

// ListActivity is one page of the user's audit trail, newest first.
func (s *Store) ListActivity(ctx context.Context, userID string, f ActivityFilter, p Page) ([]task.Activity, int, error) {
	where := []string{"user_id = $1"}
	args := []any{userID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.EntityType != "" {
		add("entity_type = $%d", f.EntityType)
	}
	if f.EntityID != "" {
		add("entity_id = $%d", f.EntityID)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.Source != "" {
		add("source = $%d", f.Source)
	}
	if f.From != nil {
		add("created_at >= $%d", *f.From)
	}
	if f.To != nil {
		add("created_at < $%d", *f.To)
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM activity WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	args = append(args, p.Limit, p.Offset)
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT id, user_id, entity_type, entity_id, action, source, details, created_at
		FROM activity WHERE %s ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`, cond, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (task.Activity, error) {
		var a task.Activity
		var et, src string
		var details []byte
		if err := r.Scan(&a.ID, &a.UserID, &et, &a.EntityID, &a.Action, &src, &details, &a.CreatedAt); err != nil {
			return a, err
		}
		a.EntityType, a.Source = task.EntityType(et), task.Source(src)
		a.Details = map[string]any{}
		return a, json.Unmarshal(details, &a.Details)
	})
	return out, total, err
}

// RecordExternal writes an activity row for an event another service emitted (credits,
// subscription), once per event id. It reports whether the row is new.
func (s *Store) RecordExternal(ctx context.Context, tx pgx.Tx, eventID, userID string, et task.EntityType, action string, details map[string]any, at time.Time) (bool, error) {
	if !ValidID(userID) {
		return false, nil
	}
	b, err := json.Marshal(details)
	if err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO activity (id, user_id, entity_type, entity_id, action, source, details, event_id, created_at)
		VALUES ($1, $2, $3, '', $4, 'system', $5, $6, $7) ON CONFLICT (event_id) DO NOTHING`,
		newID(), userID, string(et), action, b, eventID, at.UTC())
	return tag.RowsAffected() == 1, err
}

// PurgeActivity deletes rows older than the retention (the retention job).
func (s *Store) PurgeActivity(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM activity WHERE created_at < $1`, s.now().Add(-task.ActivityRetention))
	return tag.RowsAffected(), err
}

// InTx runs fn in one transaction on the store's pool (consumers that combine several
// store calls).
func (s *Store) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error { return s.inTx(ctx, fn) }

// EraseUser deletes every row of the user in this schema (auth.user.deleted).
func (s *Store) EraseUser(ctx context.Context, tx pgx.Tx, userID string) error {
	if !ValidID(userID) {
		return nil
	}
	for _, table := range []string{"subtasks", "tasks", "notes", "tombstones", "activity", "notifications", "applied_operations", "user_counts", "idempotency_keys",
		"reminders", "focus_sessions", "templates", "user_stats", "user_achievements", "calendar_tokens"} {
		// table is one of the constants above.
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE user_id = $1`, userID); err != nil {
			return fmt.Errorf("erase %s: %w", table, err)
		}
	}
	return nil
}
