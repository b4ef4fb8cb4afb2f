// Package store is the ai schema: the request log, the per (session, task) request
// counters, the record of refunded charges and of finished voice-note transcriptions, and
// the outbox rows of the events ai emits. It is the only package that speaks SQL.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/aievents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
	"github.com/perpetua-flow/backend/services/ai/migrations"
)

// Store reads and writes the ai schema through pool.
type Store struct{ pool *pgxpool.Pool }

// New is a Store on pool (whose search_path is the ai schema).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// CountTaskRequest counts one request on (session, task) in a single statement, so
// concurrent requests can never pass the limit together. A window that has expired starts
// again at 1. No row back means TaskRequestLimit requests were already counted.
func (s *Store) CountTaskRequest(ctx context.Context, userID, sessionID, taskID string, now time.Time) (int, error) {
	const q = `
INSERT INTO task_request_counters AS c (session_id, task_id, user_id, count, expires_at)
VALUES ($2, $3, $1, 1, $5)
ON CONFLICT (session_id, task_id) DO UPDATE SET
    count      = CASE WHEN c.expires_at <= $4 THEN 1 ELSE c.count + 1 END,
    expires_at = CASE WHEN c.expires_at <= $4 THEN EXCLUDED.expires_at ELSE c.expires_at END
WHERE c.user_id = $1 AND (c.expires_at <= $4 OR c.count < $6)
RETURNING count`
	var n int
	err := s.pool.QueryRow(ctx, q, userID, sessionID, taskID, now, now.Add(assistant.TaskCounterTTL), assistant.TaskRequestLimit).Scan(&n)
	if pg.IsNoRows(err) {
		return 0, apperr.New(apperr.AITaskLimitReached,
			fmt.Sprintf("at most %d AI requests per task in one session; start a new session or wait 24 hours", assistant.TaskRequestLimit))
	}
	if err != nil {
		return 0, fmt.Errorf("store: count task request: %w", err)
	}
	return n, nil
}

// UncountTaskRequest gives back one request counted on (session, task) that got no answer
// (no credits, the provider failed): the limit counts answered requests, as the credits
// do. A window that has ended meanwhile is left alone.
func (s *Store) UncountTaskRequest(ctx context.Context, userID, sessionID, taskID string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `
		UPDATE task_request_counters SET count = count - 1
		WHERE session_id = $2 AND task_id = $3 AND user_id = $1 AND count > 0 AND expires_at > $4`,
		userID, sessionID, taskID, now); err != nil {
		return fmt.Errorf("store: uncount task request: %w", err)
	}
	return nil
}

// LogRequest writes one request log row.
func (s *Store) LogRequest(ctx context.Context, l assistant.RequestLog) error {
	return insertLog(ctx, s.pool, l)
}

func insertLog(ctx context.Context, q pg.Querier, l assistant.RequestLog) error {
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `
INSERT INTO request_log (id, user_id, kind, model, prompt_tokens, completion_tokens, credits, latency_ms, outcome, operation_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		id, l.UserID, string(l.Kind), l.Model, l.Usage.PromptTokens, l.Usage.CompletionTokens, l.Credits,
		l.Latency.Milliseconds(), l.Outcome, l.OperationID, l.At)
	if err != nil {
		return fmt.Errorf("store: insert request log: %w", err)
	}
	return nil
}

// LogNoteConverted writes the log row and the ai.note.converted event in one transaction.
func (s *Store) LogNoteConverted(ctx context.Context, l assistant.RequestLog, noteID string) error {
	ev, err := events.New(aievents.Source, aievents.TypeNoteConverted, l.UserID, aievents.NoteConverted{
		NoteID: noteID, UserID: l.UserID, OccurredAt: l.At.UTC(),
	})
	if err != nil {
		return err
	}
	return pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := insertLog(ctx, tx, l); err != nil {
			return err
		}
		return events.Enqueue(ctx, tx, ev)
	})
}

// VoiceNoteFinished reports whether the note's transcription already ended.
func (s *Store) VoiceNoteFinished(ctx context.Context, userID, noteID string) (bool, error) {
	var done bool
	err := s.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM voice_transcriptions WHERE user_id = $1 AND note_id = $2)`,
		userID, noteID).Scan(&done)
	if err != nil {
		return false, fmt.Errorf("store: voice note finished: %w", err)
	}
	return done, nil
}

// FinishVoiceNote records the end of a transcription and, only when this is the first
// record for the note, writes the log row and the completed/failed event with it.
func (s *Store) FinishVoiceNote(ctx context.Context, l assistant.RequestLog, r assistant.VoiceNoteResult) error {
	status, typ := "failed", aievents.TypeTranscriptionFailed
	if r.OK {
		status, typ = "completed", aievents.TypeTranscriptionCompleted
	}
	at := l.At.UTC()
	ev, err := events.New(aievents.Source, typ, r.UserID, aievents.Transcription{
		NoteID: r.NoteID, UserID: r.UserID, Text: r.Text, Language: r.Language,
		Confidence: r.Confidence, Reason: r.Reason, OccurredAt: at,
	})
	if err != nil {
		return err
	}
	return pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
INSERT INTO voice_transcriptions (note_id, user_id, status, reason, finished_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (note_id) DO NOTHING`, r.NoteID, r.UserID, status, r.Reason, at)
		if err != nil {
			return fmt.Errorf("store: finish voice note: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		if err := insertLog(ctx, tx, l); err != nil {
			return err
		}
		return events.Enqueue(ctx, tx, ev)
	})
}

// Refunds is how many charges of (user, base operation) were given back.
func (s *Store) Refunds(ctx context.Context, userID, baseOperationID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx,
		`SELECT count(*) FROM credit_refunds WHERE user_id = $1 AND base_operation_id = $2`,
		userID, baseOperationID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: refunds: %w", err)
	}
	return n, nil
}

// RecordRefund notes that operationID is being given back (once).
func (s *Store) RecordRefund(ctx context.Context, userID, baseOperationID, operationID string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO credit_refunds (operation_id, base_operation_id, user_id, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (operation_id) DO NOTHING`, operationID, baseOperationID, userID, at)
	if err != nil {
		return fmt.Errorf("store: record refund: %w", err)
	}
	return nil
}

// PurgeExpired deletes request counters whose window ended before now.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM task_request_counters WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("store: purge counters: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteUser erases everything the ai schema holds about a user (auth.user.deleted).
func DeleteUser(ctx context.Context, q pg.Querier, userID string) error {
	for _, table := range []string{"request_log", "task_request_counters", "credit_refunds", "voice_transcriptions"} {
		if _, err := q.Exec(ctx, "DELETE FROM "+table+" WHERE user_id = $1", userID); err != nil {
			return fmt.Errorf("store: delete user from %s: %w", table, err)
		}
	}
	return nil
}

// Schema is the ai service's Postgres schema.
const Schema = "ai"

// MigrateOwn applies the ai schema's own migrations (the shared libraries' tables are
// added by the service's Migrate).
func MigrateOwn(ctx context.Context, pool *pgxpool.Pool) error {
	return pg.MigratePool(ctx, pool, Schema, migrations.FS, nil)
}
