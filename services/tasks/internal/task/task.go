// Package task is the domain of the tasks service: tasks, subtasks, notes, tombstones,
// activity and notifications as plain types, the business numbers of API.md §3 as named
// constants, and the rules (validation, PATCH semantics, completion, limits) as pure
// functions. It imports no pgx, HTTP or NATS, so every rule is testable without servers.
package task

import (
	"time"
)

// Tier is the subscription tier from the verified access token.
type Tier string

// Tiers.
const (
	Free Tier = "free"
	Pro  Tier = "pro"
)

// ParseTier maps a token's tier claim to a Tier; anything unknown is Free, the safe side.
func ParseTier(s string) Tier {
	if s == string(Pro) {
		return Pro
	}
	return Free
}

// Priority of a task.
type Priority string

// Priorities.
const (
	Low    Priority = "low"
	Medium Priority = "medium"
	High   Priority = "high"
)

// Valid reports whether p is one of the three priorities.
func (p Priority) Valid() bool { return p == Low || p == Medium || p == High }

// CompletedBy says which path completed a task.
type CompletedBy string

// Completion paths (API.md §3 "Completion").
const (
	ByManual CompletedBy = "manual" // PATCH completed:true
	ByAuto   CompletedBy = "auto"   // the last open subtask was completed
	ByForce  CompletedBy = "force"  // POST /tasks/{id}/force-complete
)

// Source says who made a change (activity log, events).
type Source string

// Sources.
const (
	SourceUser   Source = "user"
	SourceAI     Source = "ai"
	SourceSystem Source = "system"
)

// Valid reports whether s is a known source.
func (s Source) Valid() bool { return s == SourceUser || s == SourceAI || s == SourceSystem }

// Business numbers of API.md §3, each in one place.
const (
	TitleMaxLen            = 200
	DescriptionMaxLenFree  = 1000
	DescriptionMaxLenPro   = 2000
	DueDateMaxAhead        = 30 * 24 * time.Hour
	EstimatedDurationMin   = 1   // minutes
	EstimatedDurationMax   = 720 // minutes
	SubtaskTitleMaxLen     = 200
	NoteContentMaxLen      = 2000
	VoiceURLMaxLen         = 2048
	VoiceDurationMaxSecond = 300 // API.md §4: audio longer than 5 minutes is refused
	TombstoneTTL           = 7 * 24 * time.Hour
	MaxTombstonesPerUser   = 3
	ActivityRetention      = 30 * 24 * time.Hour
	MaxRemindersPerTask    = 5
)

// Task is a user's task as API.md §3 shows it.
type Task struct {
	ID                    string
	UserID                string
	Title                 string
	Description           string
	Priority              Priority
	DueDate               *time.Time
	EstimatedDuration     *int
	FocusTimeSeconds      int
	Completed             bool
	CompletedAt           *time.Time
	CompletedBy           CompletedBy // "" while open
	Hidden                bool
	Archived              bool
	TemplateID            *string
	SubtaskCount          int
	SubtaskCompletedCount int
	Version               int
	CreatedAt             time.Time
	UpdatedAt             time.Time
}

// Subtask is one step of a task, ordered by OrderIndex (0..n-1 without gaps).
type Subtask struct {
	ID          string
	TaskID      string
	UserID      string
	Title       string
	Completed   bool
	CompletedAt *time.Time
	OrderIndex  int
	Source      Source // user or ai
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TranscriptionStatus of a voice note ("" for a note without voice).
type TranscriptionStatus string

// Transcription states.
const (
	TranscriptionNone      TranscriptionStatus = ""
	TranscriptionPending   TranscriptionStatus = "pending"
	TranscriptionCompleted TranscriptionStatus = "completed"
	TranscriptionFailed    TranscriptionStatus = "failed"
)

// Note is a standalone note, optionally a voice note (Pro).
type Note struct {
	ID                   string
	UserID               string
	Content              string
	Archived             bool
	VoiceURL             string // "" when not a voice note
	VoiceDurationSeconds *int
	TranscriptionStatus  TranscriptionStatus
	Version              int
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

// IsVoice reports whether the note carries a recording.
func (n Note) IsVoice() bool { return n.VoiceURL != "" }

// EntityType names what a tombstone or an activity row is about.
type EntityType string

// Entity types.
const (
	EntityTask         EntityType = "task"
	EntitySubtask      EntityType = "subtask"
	EntityNote         EntityType = "note"
	EntityNotification EntityType = "notification"
	EntityCredits      EntityType = "credits"
	EntitySubscription EntityType = "subscription"
)

// Tombstone is a deleted task or note that can still be recovered.
type Tombstone struct {
	ID         string
	UserID     string
	EntityType EntityType
	EntityID   string
	Title      string // the task title or the start of the note
	DeletedAt  time.Time
	ExpiresAt  time.Time
}

// Activity is one row of the audit trail.
type Activity struct {
	ID         string
	UserID     string
	EntityType EntityType
	EntityID   string
	Action     string
	Source     Source
	Details    map[string]any
	CreatedAt  time.Time
}

// Activity actions.
const (
	ActionCreated   = "created"
	ActionUpdated   = "updated"
	ActionCompleted = "completed"
	ActionDeleted   = "deleted"
	ActionRecovered = "recovered"
	ActionReordered = "reordered"
)

// Notification is an in-app notification.
type Notification struct {
	ID        string
	Seq       int64 // strictly increasing per insert; the SSE event id
	UserID    string
	Type      string
	Title     string
	Body      string
	ActionURL string
	TaskID    *string
	Read      bool
	ReadAt    *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Notification types.
const (
	NotificationSubscription = "subscription"
	NotificationReminder     = "reminder"
	NotificationAchievement  = "achievement"
)

// Streak is the user's completion streak (filled by the streaks feature, issue 6).
type Streak struct {
	Current int
	Longest int
}

// Completion is what one completion produced beyond the task itself: achievements it
// unlocked and the streak after it. Every completion path returns it.
type Completion struct {
	Unlocked []Achievement
	Streak   Streak
}
