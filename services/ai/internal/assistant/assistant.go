// Package assistant is the ai service's domain: what a chat, a subtask suggestion, a note
// conversion and a transcription cost, how prompts and tool definitions are built, how the
// model's untrusted output becomes bounded suggestions, and the per (session, task)
// request counter. It orchestrates the providers, the credits and the tasks service through
// small interfaces declared here, so it imports no HTTP router, SQL driver or broker.
package assistant

import (
	"time"
)

// Credit costs of API.md §4.
const (
	CostChat             = 1
	CostGenerateSubtasks = 1
	CostNoteConvert      = 1
	// CostTranscriptionPerMinute is charged for every started minute of audio.
	CostTranscriptionPerMinute = 5
)

// Input bounds of API.md §4.
const (
	MaxMessageChars   = 2000
	MinTaskLimit      = 1
	MaxTaskLimit      = 50
	DefaultTaskLimit  = 10
	MaxAudioSeconds   = 300
	MaxAudioURLChars  = 2048
	MaxSuggested      = 5
	MaxSubtasksFree   = 4
	MaxSubtasksPro    = 10
	MaxSubtaskTitle   = 200
	MaxTaskTitle      = 200
	MaxDescription    = 2000 // the pro bound; the tasks service applies the tier's own
	MaxEstimatedMins  = 720
	MaxActionReason   = 500
	MaxNoteSuggestion = 1000 // a converted note's description fits a free user's task
)

// Per (session, task) request counter (API.md §4).
const (
	TaskRequestWarningFrom = 5
	TaskRequestLimit       = 10
	TaskCounterTTL         = 24 * time.Hour
)

// Tiers, as the access token carries them.
const (
	TierFree = "free"
	TierPro  = "pro"
)

// Kind names an AI operation: the request log's kind, part of the credit operation id and
// the reason given to billing.
type Kind string

// The kinds of AI operation.
const (
	KindChat             Kind = "chat"
	KindGenerateSubtasks Kind = "generate_subtasks"
	KindNoteConvert      Kind = "note_convert"
	KindTranscribe       Kind = "transcribe"
	KindVoiceNote        Kind = "voice_note"
	KindConfirmAction    Kind = "confirm_action"
)

// Reason is what billing's ledger records for the kind (billingrpc.ConsumeRequest.Reason).
func (k Kind) Reason() string { return "ai." + string(k) }

// Outcomes recorded in the request log.
const (
	OutcomeOK                  = "ok"
	OutcomeProviderError       = "provider_error"
	OutcomeCancelled           = "cancelled"
	OutcomeInsufficientCredits = "insufficient_credits"
	OutcomeBillingUnavailable  = "billing_unavailable"
)

// TranscriptionCost is 5 credits per started minute: 1–60 s cost 5, 61–120 s cost 10.
func TranscriptionCost(seconds int) int {
	if seconds <= 0 {
		return 0
	}
	minutes := (seconds + 59) / 60
	return minutes * CostTranscriptionPerMinute
}

// MaxSubtasks is how many subtask titles a tier may be offered at once.
func MaxSubtasks(tier string) int {
	if tier == TierPro {
		return MaxSubtasksPro
	}
	return MaxSubtasksFree
}

// RequestWarning is true from the 5th request on one task in one session.
func RequestWarning(n int) bool { return n >= TaskRequestWarningFrom }

// Caller is who asks: the verified token's user, session and tier, and the request's
// Idempotency-Key (which makes the credit operation id stable across retries).
type Caller struct {
	UserID         string
	SessionID      string
	Tier           string
	IdempotencyKey string
}

// Task is what the assistant sees of one of the user's tasks.
type Task struct {
	ID          string
	Title       string
	Description string
	Priority    string
	DueDate     *time.Time
	Completed   bool
	Archived    bool
	Subtasks    []Subtask
}

// Subtask is what the assistant sees of a subtask.
type Subtask struct {
	Title     string
	Completed bool
}

// Note is what the assistant sees of a note.
type Note struct {
	ID       string
	Content  string
	Archived bool
}

// Usage is what a provider call used, for the request log.
type Usage struct {
	Model            string
	PromptTokens     int
	CompletionTokens int
}

// RequestLog is one row of the cost-tracking log.
type RequestLog struct {
	UserID      string
	Kind        Kind
	Model       string
	Usage       Usage
	Credits     int
	Latency     time.Duration
	Outcome     string
	OperationID string
	At          time.Time
}
