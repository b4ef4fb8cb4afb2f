// Package wire is the JSON shape of the tasks service's resources (API.md §3), shared by
// the HTTP handlers and the request-reply endpoints so the AI sees a task exactly as the
// HTTP API shows it. Times are RFC 3339 UTC with a Z; empty strings are "", not null.
package wire

import (
	"time"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// Time formats t as RFC 3339 in UTC.
func Time(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// TimePtr is Time for a nullable time.
func TimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := Time(*t)
	return &s
}

// Task is a task.
type Task struct {
	ID                    string  `json:"id"`
	UserID                string  `json:"user_id"`
	Title                 string  `json:"title"`
	Description           string  `json:"description"`
	Priority              string  `json:"priority"`
	DueDate               *string `json:"due_date"`
	EstimatedDuration     *int    `json:"estimated_duration"`
	FocusTimeSeconds      int     `json:"focus_time_seconds"`
	Completed             bool    `json:"completed"`
	CompletedAt           *string `json:"completed_at"`
	CompletedBy           string  `json:"completed_by"`
	Hidden                bool    `json:"hidden"`
	Archived              bool    `json:"archived"`
	TemplateID            *string `json:"template_id"`
	SubtaskCount          int     `json:"subtask_count"`
	SubtaskCompletedCount int     `json:"subtask_completed_count"`
	Version               int     `json:"version"`
	CreatedAt             string  `json:"created_at"`
	UpdatedAt             string  `json:"updated_at"`
}

// FromTask is the wire form of t.
func FromTask(t task.Task) Task {
	return Task{
		ID: t.ID, UserID: t.UserID, Title: t.Title, Description: t.Description, Priority: string(t.Priority),
		DueDate: TimePtr(t.DueDate), EstimatedDuration: t.EstimatedDuration, FocusTimeSeconds: t.FocusTimeSeconds,
		Completed: t.Completed, CompletedAt: TimePtr(t.CompletedAt), CompletedBy: string(t.CompletedBy),
		Hidden: t.Hidden, Archived: t.Archived, TemplateID: t.TemplateID, SubtaskCount: t.SubtaskCount,
		SubtaskCompletedCount: t.SubtaskCompletedCount, Version: t.Version,
		CreatedAt: Time(t.CreatedAt), UpdatedAt: Time(t.UpdatedAt),
	}
}

// TaskDetail is a task with its subtasks and reminders (GET /tasks/{id}).
type TaskDetail struct {
	Task
	Subtasks  []Subtask  `json:"subtasks"`
	Reminders []Reminder `json:"reminders"`
}

// FromDetail is the wire form of a task with its subtasks.
func FromDetail(t task.Task, subs []task.Subtask) TaskDetail {
	return TaskDetail{Task: FromTask(t), Subtasks: FromSubtasks(subs), Reminders: []Reminder{}}
}

// FromFullDetail is the wire form of a task with its subtasks and reminders.
func FromFullDetail(t task.Task, subs []task.Subtask, rems []reminder.Reminder) TaskDetail {
	return TaskDetail{Task: FromTask(t), Subtasks: FromSubtasks(subs), Reminders: FromReminders(rems)}
}

// Subtask is a subtask.
type Subtask struct {
	ID          string  `json:"id"`
	TaskID      string  `json:"task_id"`
	Title       string  `json:"title"`
	Completed   bool    `json:"completed"`
	CompletedAt *string `json:"completed_at"`
	OrderIndex  int     `json:"order_index"`
	Source      string  `json:"source"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

// FromSubtask is the wire form of st.
func FromSubtask(st task.Subtask) Subtask {
	return Subtask{ID: st.ID, TaskID: st.TaskID, Title: st.Title, Completed: st.Completed,
		CompletedAt: TimePtr(st.CompletedAt), OrderIndex: st.OrderIndex, Source: string(st.Source),
		CreatedAt: Time(st.CreatedAt), UpdatedAt: Time(st.UpdatedAt)}
}

// FromSubtasks is never nil.
func FromSubtasks(subs []task.Subtask) []Subtask {
	out := make([]Subtask, 0, len(subs))
	for _, st := range subs {
		out = append(out, FromSubtask(st))
	}
	return out
}

// Perk is what an achievement gives.
type Perk struct {
	Type  string `json:"type"`
	Value int    `json:"value"`
}

// UnlockedAchievement is an achievement a change unlocked.
type UnlockedAchievement struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Perk        Perk   `json:"perk"`
}

// FromUnlocked is never nil.
func FromUnlocked(as []task.Achievement) []UnlockedAchievement {
	out := make([]UnlockedAchievement, 0, len(as))
	for _, a := range as {
		out = append(out, UnlockedAchievement{ID: a.ID, Name: a.Name, Description: a.Description,
			Perk: Perk{Type: string(a.PerkType), Value: a.PerkValue}})
	}
	return out
}

// Streak is the streak after a completion.
type Streak struct {
	Current int `json:"current"`
	Longest int `json:"longest"`
}

// Note is a note.
type Note struct {
	ID                   string `json:"id"`
	UserID               string `json:"user_id"`
	Content              string `json:"content"`
	Archived             bool   `json:"archived"`
	VoiceURL             string `json:"voice_url"`
	VoiceDurationSeconds *int   `json:"voice_duration_seconds"`
	TranscriptionStatus  string `json:"transcription_status"`
	Version              int    `json:"version"`
	CreatedAt            string `json:"created_at"`
	UpdatedAt            string `json:"updated_at"`
}

// FromNote is the wire form of n.
func FromNote(n task.Note) Note {
	return Note{ID: n.ID, UserID: n.UserID, Content: n.Content, Archived: n.Archived, VoiceURL: n.VoiceURL,
		VoiceDurationSeconds: n.VoiceDurationSeconds, TranscriptionStatus: string(n.TranscriptionStatus),
		Version: n.Version, CreatedAt: Time(n.CreatedAt), UpdatedAt: Time(n.UpdatedAt)}
}

// Tombstone is a recoverable deletion.
type Tombstone struct {
	ID               string `json:"id"`
	EntityType       string `json:"entity_type"`
	EntityID         string `json:"entity_id"`
	Title            string `json:"title"`
	DeletedAt        string `json:"deleted_at"`
	RecoverableUntil string `json:"recoverable_until"`
}

// FromTombstone is the wire form of t.
func FromTombstone(t task.Tombstone) Tombstone {
	return Tombstone{ID: t.ID, EntityType: string(t.EntityType), EntityID: t.EntityID, Title: t.Title,
		DeletedAt: Time(t.DeletedAt), RecoverableUntil: Time(t.ExpiresAt)}
}

// Deleted is the answer of a DELETE that keeps a tombstone.
type Deleted struct {
	DeletedID        string `json:"deleted_id"`
	TombstoneID      string `json:"tombstone_id"`
	RecoverableUntil string `json:"recoverable_until"`
}

// Activity is one audit row.
type Activity struct {
	ID         string         `json:"id"`
	UserID     string         `json:"user_id"`
	EntityType string         `json:"entity_type"`
	EntityID   string         `json:"entity_id"`
	Action     string         `json:"action"`
	Source     string         `json:"source"`
	Details    map[string]any `json:"details"`
	CreatedAt  string         `json:"created_at"`
}

// FromActivity is the wire form of a.
func FromActivity(a task.Activity) Activity {
	return Activity{ID: a.ID, UserID: a.UserID, EntityType: string(a.EntityType), EntityID: a.EntityID,
		Action: a.Action, Source: string(a.Source), Details: a.Details, CreatedAt: Time(a.CreatedAt)}
}

// Notification is an in-app notification; message repeats body for older clients.
type Notification struct {
	ID        string  `json:"id"`
	Seq       int64   `json:"seq"`
	UserID    string  `json:"user_id"`
	Type      string  `json:"type"`
	Title     string  `json:"title"`
	Body      string  `json:"body"`
	Message   string  `json:"message"`
	ActionURL string  `json:"action_url"`
	TaskID    *string `json:"task_id"`
	Read      bool    `json:"read"`
	ReadAt    *string `json:"read_at"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
}

// FromNotification is the wire form of n.
func FromNotification(n task.Notification) Notification {
	return Notification{ID: n.ID, Seq: n.Seq, UserID: n.UserID, Type: n.Type, Title: n.Title, Body: n.Body, Message: n.Body,
		ActionURL: n.ActionURL, TaskID: n.TaskID, Read: n.Read, ReadAt: TimePtr(n.ReadAt),
		CreatedAt: Time(n.CreatedAt), UpdatedAt: Time(n.UpdatedAt)}
}
