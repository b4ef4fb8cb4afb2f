package natsapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/natsx"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
	"github.com/perpetua-flow/backend/services/ai/internal/store"
)

// Durable consumer names: part of the public contract (renaming one starts it over).
const (
	DurableVoiceNotes  = "ai-voice-notes"
	DurableUserDeleted = "ai-user-deleted"
)

// voiceNoteAckGrace is added to the provider timeout for a voice note's AckWait: billing's
// two calls and the final write must fit too, or the message would be redelivered while
// it is still being handled.
const voiceNoteAckGrace = 30 * time.Second

// VoiceNotes consumes tasks.note.voice_created: charge (operation id = note id), Deepgram,
// then ai.transcription.completed|failed through the outbox. It is a plain consumer (no
// transaction across the provider call); the service's own record of finished notes makes
// a redelivery harmless.
func VoiceNotes(pool *pgxpool.Pool, js jetstream.JetStream, svc *assistant.Service, providerTimeout time.Duration, metrics *events.Metrics, logger *slog.Logger) (*events.Consumer, error) {
	cfg := events.ConsumerConfig{
		Stream:   natsx.StreamTasks.Name,
		Durable:  DurableVoiceNotes,
		Subjects: []string{tasksevents.TypeNoteVoiceCreated},
		AckWait:  providerTimeout + voiceNoteAckGrace,
		Metrics:  metrics,
	}
	return events.NewPlainConsumer(pool, js, cfg, func(ctx context.Context, ev events.Event) error {
		var data tasksevents.NoteVoiceCreated
		if err := ev.Decode(&data); err != nil {
			return events.Permanent(fmt.Errorf("decode %s: %w", ev.Type, err))
		}
		if data.NoteID == "" || data.UserID == "" {
			return events.Permanent(errors.New("voice note event without note or user id"))
		}
		return svc.TranscribeVoiceNote(ctx, assistant.VoiceNote{
			NoteID: data.NoteID, UserID: data.UserID, VoiceURL: data.VoiceURL, DurationSeconds: data.DurationSeconds,
			Final: events.LastAttempt(ctx),
		})
	}, logger)
}

// UserDeleted consumes auth.user.deleted: the user's rows in the ai schema are erased in
// the same transaction as the inbox record.
func UserDeleted(pool *pgxpool.Pool, js jetstream.JetStream, metrics *events.Metrics, logger *slog.Logger) (*events.Consumer, error) {
	cfg := events.ConsumerConfig{
		Stream:   natsx.StreamAuth.Name,
		Durable:  DurableUserDeleted,
		Subjects: []string{authevents.TypeUserDeleted},
		Metrics:  metrics,
	}
	return events.NewConsumer(pool, js, cfg, func(ctx context.Context, tx pgx.Tx, ev events.Event) error {
		var data authevents.UserDeleted
		if err := ev.Decode(&data); err != nil {
			return events.Permanent(fmt.Errorf("decode %s: %w", ev.Type, err))
		}
		return store.DeleteUser(ctx, tx, data.UserID)
	}, logger)
}
