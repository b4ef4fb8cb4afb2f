package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

const noteCols = `id, user_id, content, archived, voice_url, voice_duration_seconds, transcription_status, version, created_at, updated_at`

func scanNote(row pgx.Row) (task.Note, error) {
	var n task.Note
	var ts string
	err := row.Scan(&n.ID, &n.UserID, &n.Content, &n.Archived, &n.VoiceURL, &n.VoiceDurationSeconds, &ts, &n.Version, &n.CreatedAt, &n.UpdatedAt)
	n.TranscriptionStatus = task.TranscriptionStatus(ts)
	return n, err
}

func insertNote(ctx context.Context, tx pgx.Tx, n task.Note) error {
	_, err := tx.Exec(ctx, `INSERT INTO notes (`+noteCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
		n.ID, n.UserID, n.Content, n.Archived, n.VoiceURL, n.VoiceDurationSeconds, string(n.TranscriptionStatus), n.Version, n.CreatedAt, n.UpdatedAt)
	return err
}

// ListNotes is one page of the user's notes, newest first; archived nil means all.
func (s *Store) ListNotes(ctx context.Context, userID string, archived *bool, p Page) ([]task.Note, int, error) {
	cond := `user_id = $1 AND ($2::boolean IS NULL OR archived = $2)`
	return listPage(ctx, s.pool, scanNote, p,
		`SELECT count(*) FROM notes WHERE `+cond, []any{userID, archived},
		`SELECT `+noteCols+` FROM notes WHERE `+cond+` ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4`,
		[]any{userID, archived, p.Limit, p.Offset})
}

// GetNote is one of the user's notes.
func (s *Store) GetNote(ctx context.Context, userID, id string) (task.Note, error) {
	if !ValidID(id) {
		return task.Note{}, notFound("note")
	}
	n, err := scanNote(s.pool.QueryRow(ctx, `SELECT `+noteCols+` FROM notes WHERE id = $1 AND user_id = $2`, id, userID))
	if pg.IsNoRows(err) {
		return task.Note{}, notFound("note")
	}
	return n, err
}

func lockNote(ctx context.Context, tx pgx.Tx, userID, id string) (task.Note, error) {
	if !ValidID(id) {
		return task.Note{}, notFound("note")
	}
	n, err := scanNote(tx.QueryRow(ctx, `SELECT `+noteCols+` FROM notes WHERE id = $1 AND user_id = $2 FOR UPDATE`, id, userID))
	if pg.IsNoRows(err) {
		return task.Note{}, notFound("note")
	}
	return n, err
}

// CreateNote stores a note within the notes limit. A voice note starts with transcription
// pending and emits tasks.note.voice_created for the ai service.
func (s *Store) CreateNote(ctx context.Context, a Actor, nn task.NewNote) (task.Note, error) {
	nn, err := nn.Validate(a.Tier)
	if err != nil {
		return task.Note{}, err
	}
	now := s.now()
	n := task.Note{ID: newID(), UserID: a.UserID, Content: nn.Content, VoiceURL: nn.VoiceURL,
		VoiceDurationSeconds: nn.VoiceDurationSeconds, Version: 1, CreatedAt: now, UpdatedAt: now}
	if n.IsVoice() {
		n.TranscriptionStatus = task.TranscriptionPending
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.reserve(ctx, tx, a, task.ResourceNotes); err != nil {
			return err
		}
		if err := insertNote(ctx, tx, n); err != nil {
			return err
		}
		if err := s.record(ctx, tx, a, task.EntityNote, n.ID, task.ActionCreated, nil); err != nil {
			return err
		}
		if !n.IsVoice() {
			return nil
		}
		return s.emit(ctx, tx, tasksevents.TypeNoteVoiceCreated, n.UserID, tasksevents.NoteVoiceCreated{
			NoteID: n.ID, UserID: n.UserID, VoiceURL: n.VoiceURL, DurationSeconds: *n.VoiceDurationSeconds, CreatedAt: n.CreatedAt,
		})
	})
	return n, err
}

func saveNote(ctx context.Context, tx pgx.Tx, n task.Note) error {
	_, err := tx.Exec(ctx, `UPDATE notes SET content = $3, archived = $4, transcription_status = $5, version = $6, updated_at = $7
		WHERE id = $1 AND user_id = $2`, n.ID, n.UserID, n.Content, n.Archived, string(n.TranscriptionStatus), n.Version, n.UpdatedAt)
	return err
}

// UpdateNote applies a PATCH of a note.
func (s *Store) UpdateNote(ctx context.Context, a Actor, id string, p task.NotePatch) (task.Note, error) {
	var n task.Note
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := lockNote(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		next, changed, err := task.ApplyNotePatch(cur, p, s.now())
		n = next
		if err != nil || !changed {
			return err
		}
		if err := saveNote(ctx, tx, next); err != nil {
			return err
		}
		return s.record(ctx, tx, a, task.EntityNote, id, task.ActionUpdated, map[string]any{"version": next.Version})
	})
	return n, err
}

// DeleteNote removes a note, keeping a tombstone.
func (s *Store) DeleteNote(ctx context.Context, a Actor, id string) (task.Tombstone, error) {
	var tomb task.Tombstone
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := lockNote(ctx, tx, a.UserID, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM notes WHERE id = $1 AND user_id = $2`, id, a.UserID); err != nil {
			return err
		}
		// A delete frees its slot by the row being gone; the user's lock is for the
		// tombstone eviction of bury.
		if err := lockUser(ctx, tx, a.UserID); err != nil {
			return err
		}
		tomb, err = s.bury(ctx, tx, a.UserID, task.EntityNote, cur.ID, task.TombstoneTitle(cur.Content), snapshot{Note: &cur})
		if err != nil {
			return err
		}
		return s.record(ctx, tx, a, task.EntityNote, id, task.ActionDeleted, map[string]any{"tombstone_id": tomb.ID})
	})
	return tomb, err
}

// ApplyTranscription records the outcome of a voice note's transcription. A note that
// is gone or not pending any more is left alone (redelivery, late events).
func (s *Store) ApplyTranscription(ctx context.Context, tx pgx.Tx, userID, noteID, text string, ok bool) error {
	if !ValidID(noteID) || !ValidID(userID) {
		return nil
	}
	cur, err := lockNote(ctx, tx, userID, noteID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil // a deleted note has nothing to update
	}
	if err != nil {
		return err
	}
	if cur.TranscriptionStatus != task.TranscriptionPending {
		return nil
	}
	next := task.ApplyTranscription(cur, text, ok, s.now())
	if err := saveNote(ctx, tx, next); err != nil {
		return err
	}
	action := "transcription_completed"
	if !ok {
		action = "transcription_failed"
	}
	return s.record(ctx, tx, Actor{UserID: userID, Source: task.SourceSystem}, task.EntityNote, noteID, action, nil)
}

// Note is one note for the ai service (svc.tasks.notes.get).
func (s *Store) Note(ctx context.Context, userID, id string) (task.Note, error) {
	return s.GetNote(ctx, userID, id)
}
