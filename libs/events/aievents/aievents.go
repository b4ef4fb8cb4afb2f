// Package aievents is the public contract of the events the ai service emits on the AI
// stream. Change a type only by adding a new one beside it.
package aievents

import "time"

// Event types (also the JetStream subjects).
const (
	// TypeTranscriptionCompleted: the tasks service stores the text on the note.
	TypeTranscriptionCompleted = "ai.transcription.completed"
	// TypeTranscriptionFailed: the tasks service marks the note failed (credits refunded).
	TypeTranscriptionFailed = "ai.transcription.failed"
	// TypeNoteConverted: a note was turned into a task suggestion (tasks counts it for
	// the notes_10 achievement).
	TypeNoteConverted = "ai.note.converted"
)

// Source is the CloudEvents source of ai's events.
const Source = "perpetua/ai"

// Transcription is the data of ai.transcription.completed|failed.
type Transcription struct {
	NoteID     string    `json:"note_id"`
	UserID     string    `json:"user_id"`
	Text       string    `json:"text"`
	Language   string    `json:"language"`
	Confidence float64   `json:"confidence"`
	Reason     string    `json:"reason"` // on failure
	OccurredAt time.Time `json:"occurred_at"`
}

// NoteConverted is the data of ai.note.converted.
type NoteConverted struct {
	NoteID     string    `json:"note_id"`
	UserID     string    `json:"user_id"`
	OccurredAt time.Time `json:"occurred_at"`
}
