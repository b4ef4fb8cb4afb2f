package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/recurring"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// Calendar feed numbers.
const (
	// calendarTokenBytes of randomness: 256 bits, base64url in the feed URL.
	calendarTokenBytes = 32
	// CalendarMaxTasks and CalendarMaxTemplates bound one feed; the nearest due dates win.
	CalendarMaxTasks     = 1000
	CalendarMaxTemplates = 200
	// calendarPast is how far back completed tasks stay in the feed.
	calendarPast = 30 * 24 * time.Hour
)

// IssueCalendarToken makes a new feed secret for the user, replacing (revoking) any
// earlier one. Only its SHA-256 is stored; the token is shown once.
func (s *Store) IssueCalendarToken(ctx context.Context, userID string) (string, time.Time, error) {
	raw := make([]byte, calendarTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	now := s.now()
	_, err := s.pool.Exec(ctx, `INSERT INTO calendar_tokens (user_id, token_sha256, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET token_sha256 = excluded.token_sha256, created_at = excluded.created_at`,
		userID, sum[:], now)
	return token, now, err
}

// RevokeCalendarToken removes the user's feed secret; the feed URL stops working.
func (s *Store) RevokeCalendarToken(ctx context.Context, userID string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM calendar_tokens WHERE user_id = $1`, userID)
	return err
}

// CalendarUser is the user whose feed token is token; an unknown or revoked token is
// 404 NOT_FOUND, as for any resource the caller has no right to.
func (s *Store) CalendarUser(ctx context.Context, token string) (string, error) {
	if token == "" || len(token) > 128 {
		return "", notFound("calendar")
	}
	sum := sha256.Sum256([]byte(token))
	var userID string
	err := s.pool.QueryRow(ctx, `SELECT user_id FROM calendar_tokens WHERE token_sha256 = $1`, sum[:]).Scan(&userID)
	if pg.IsNoRows(err) {
		return "", notFound("calendar")
	}
	return userID, err
}

// CalendarData is what a feed shows: the user's tasks with a due date (open ones, and
// completed ones of the last 30 days), nearest first, and the active templates.
func (s *Store) CalendarData(ctx context.Context, userID string) ([]task.Task, []recurring.Template, error) {
	var (
		ts   []task.Task
		tpls []recurring.Template
	)
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+taskCols+` FROM tasks WHERE user_id = $1 AND due_date IS NOT NULL AND NOT archived
			AND (NOT completed OR completed_at > $2) ORDER BY due_date, id LIMIT $3`, userID, s.now().Add(-calendarPast), CalendarMaxTasks)
		if err != nil {
			return err
		}
		if ts, err = collect(rows, 0, newTaskScanner()); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+templateCols+` FROM templates WHERE user_id = $1 AND active
			ORDER BY created_at DESC, id DESC LIMIT $2`, userID, CalendarMaxTemplates)
		if err != nil {
			return err
		}
		tpls, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (recurring.Template, error) { return scanTemplate(r) })
		return err
	})
	return ts, tpls, err
}
