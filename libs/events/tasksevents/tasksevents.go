// Package tasksevents is the public contract of the events the tasks service emits on the
// TASKS stream. Change a type only by adding a new one beside it.
package tasksevents

import "time"

// Event types (also the JetStream subjects).
const (
	TypeTaskCreated         = "tasks.task.created"
	TypeTaskUpdated         = "tasks.task.updated"
	TypeTaskCompleted       = "tasks.task.completed"
	TypeTaskDeleted         = "tasks.task.deleted"
	TypeTaskRecovered       = "tasks.task.recovered"
	TypeAchievementUnlocked = "tasks.achievement.unlocked" // billing adds daily-credit perks
	TypeReminderFired       = "tasks.reminder.fired"
	TypeNoteVoiceCreated    = "tasks.note.voice_created" // ai transcribes the note
)

// Source is the CloudEvents source of tasks' events.
const Source = "perpetua/tasks"

// Task is the data of tasks.task.created|updated|deleted|recovered: the task as it is
// after the change. Version orders changes of one task.
type Task struct {
	TaskID     string     `json:"task_id"`
	UserID     string     `json:"user_id"`
	Title      string     `json:"title"`
	Priority   string     `json:"priority"`
	DueDate    *time.Time `json:"due_date"`
	Completed  bool       `json:"completed"`
	Version    int        `json:"version"`
	Source     string     `json:"source"` // user, ai, system
	OccurredAt time.Time  `json:"occurred_at"`
}

// TaskCompleted is the data of tasks.task.completed, emitted once per completion.
type TaskCompleted struct {
	TaskID      string    `json:"task_id"`
	UserID      string    `json:"user_id"`
	CompletedBy string    `json:"completed_by"` // manual, auto, force
	Source      string    `json:"source"`       // user, ai, system
	Version     int       `json:"version"`
	CompletedAt time.Time `json:"completed_at"`
}

// AchievementUnlocked is the data of tasks.achievement.unlocked.
type AchievementUnlocked struct {
	UserID        string    `json:"user_id"`
	AchievementID string    `json:"achievement_id"` // e.g. streak_7
	PerkType      string    `json:"perk_type"`      // max_tasks, max_notes, daily_ai_credits
	PerkValue     int       `json:"perk_value"`
	UnlockedAt    time.Time `json:"unlocked_at"`
}

// ReminderFired is the data of tasks.reminder.fired.
type ReminderFired struct {
	ReminderID     string    `json:"reminder_id"`
	TaskID         string    `json:"task_id"`
	UserID         string    `json:"user_id"`
	Method         string    `json:"method"` // in_app, push
	ScheduledAt    time.Time `json:"scheduled_at"`
	FiredAt        time.Time `json:"fired_at"`
	NotificationID string    `json:"notification_id"`
}

// NoteVoiceCreated is the data of tasks.note.voice_created.
type NoteVoiceCreated struct {
	NoteID          string    `json:"note_id"`
	UserID          string    `json:"user_id"`
	VoiceURL        string    `json:"voice_url"`
	DurationSeconds int       `json:"duration_seconds"`
	CreatedAt       time.Time `json:"created_at"`
}
