package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

const notificationCols = `id, seq, user_id, type, title, body, action_url, task_id, read, read_at, created_at, updated_at`

func scanNotification(row pgx.Row) (task.Notification, error) {
	var n task.Notification
	err := row.Scan(&n.ID, &n.Seq, &n.UserID, &n.Type, &n.Title, &n.Body, &n.ActionURL, &n.TaskID, &n.Read, &n.ReadAt, &n.CreatedAt, &n.UpdatedAt)
	return n, err
}

func collectNotifications(rows pgx.Rows, err error) ([]task.Notification, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (task.Notification, error) { return scanNotification(r) })
}

// CreateNotification inserts a notification in tx, once per eventID when one is given.
// It reports false when that event already made one. The caller pushes it to the SSE
// stream after commit.
func (s *Store) CreateNotification(ctx context.Context, tx pgx.Tx, n task.Notification, eventID string) (task.Notification, bool, error) {
	now := s.now()
	n.ID, n.CreatedAt, n.UpdatedAt = newID(), now, now
	var ev *string
	if eventID != "" {
		ev = &eventID
	}
	err := tx.QueryRow(ctx, `INSERT INTO notifications (id, user_id, type, title, body, action_url, task_id, event_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (event_id) DO NOTHING RETURNING seq`,
		n.ID, n.UserID, n.Type, n.Title, n.Body, n.ActionURL, n.TaskID, ev, now).Scan(&n.Seq)
	if pg.IsNoRows(err) {
		return n, false, nil
	}
	return n, err == nil, err
}

// ListNotifications is one page of the user's notifications, newest first.
func (s *Store) ListNotifications(ctx context.Context, userID string, read *bool, p Page) ([]task.Notification, int, error) {
	cond := `user_id = $1 AND ($2::boolean IS NULL OR read = $2)`
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE `+cond, userID, read).Scan(&total); err != nil {
		return nil, 0, err
	}
	out, err := collectNotifications(s.pool.Query(ctx, `SELECT `+notificationCols+` FROM notifications WHERE `+cond+`
		ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4`, userID, read, p.Limit, p.Offset))
	return out, total, err
}

// NotificationsAfter is what a reconnecting SSE client missed (seq > after), oldest first.
func (s *Store) NotificationsAfter(ctx context.Context, userID string, after int64, limit int) ([]task.Notification, error) {
	return collectNotifications(s.pool.Query(ctx, `SELECT `+notificationCols+` FROM notifications WHERE user_id = $1 AND seq > $2
		ORDER BY seq LIMIT $3`, userID, after, limit))
}

// MarkNotificationRead marks one notification read (idempotent).
func (s *Store) MarkNotificationRead(ctx context.Context, userID, id string) (task.Notification, error) {
	if !ValidID(id) {
		return task.Notification{}, notFound("notification")
	}
	now := s.now()
	n, err := scanNotification(s.pool.QueryRow(ctx, `UPDATE notifications SET
		read_at = CASE WHEN read THEN read_at ELSE $3 END,
		updated_at = CASE WHEN read THEN updated_at ELSE $3 END,
		read = true
		WHERE id = $1 AND user_id = $2 RETURNING `+notificationCols, id, userID, now))
	if pg.IsNoRows(err) {
		return n, notFound("notification")
	}
	return n, err
}

// MarkAllNotificationsRead marks every unread notification of the user read.
func (s *Store) MarkAllNotificationsRead(ctx context.Context, userID string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE notifications SET read = true, read_at = $2, updated_at = $2 WHERE user_id = $1 AND NOT read`, userID, s.now())
	return tag.RowsAffected(), err
}

// DeleteNotification removes one notification.
func (s *Store) DeleteNotification(ctx context.Context, userID, id string) error {
	if !ValidID(id) {
		return notFound("notification")
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM notifications WHERE id = $1 AND user_id = $2`, id, userID)
	if err == nil && tag.RowsAffected() == 0 {
		return notFound("notification")
	}
	return err
}

// Now is the store's clock (handlers that stamp times, e.g. SSE heartbeats in tests).
func (s *Store) Now() time.Time { return s.now() }
