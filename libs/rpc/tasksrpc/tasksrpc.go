// Package tasksrpc is the request-reply contract of the tasks service (NATS micro, service
// "tasks") used by the ai service. Errors come back as apperr codes (NOT_FOUND,
// CONFLICT, LIMIT_EXCEEDED, ARCHIVED, VALIDATION_ERROR).
package tasksrpc

import "time"

// Subjects.
const (
	SubjectContext     = "svc.tasks.context"
	SubjectApplyAction = "svc.tasks.actions.apply"
	SubjectNote        = "svc.tasks.notes.get"
)

// ContextRequest asks for a user's open tasks (newest first, at most Limit) or, with
// TaskID set, that one task (NOT_FOUND if it is not the user's).
type ContextRequest struct {
	UserID string `json:"user_id"`
	TaskID string `json:"task_id,omitempty"`
	Limit  int    `json:"limit"` // 1–50
}

// ContextResponse carries the tasks for the prompt.
type ContextResponse struct {
	Tasks []Task `json:"tasks"`
}

// Task is what the AI sees of a task.
type Task struct {
	ID          string     `json:"id"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Priority    string     `json:"priority"`
	DueDate     *time.Time `json:"due_date"`
	Completed   bool       `json:"completed"`
	Archived    bool       `json:"archived"`
	Version     int        `json:"version"`
	Subtasks    []Subtask  `json:"subtasks"`
}

// Subtask is what the AI sees of a subtask.
type Subtask struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Completed bool   `json:"completed"`
}

// Action types of a suggested action (API.md §4).
const (
	ActionCompleteTask   = "complete_task"
	ActionCreateSubtasks = "create_subtasks"
	ActionUpdateTask     = "update_task"
)

// ApplyActionRequest executes one confirmed suggested action for the user; the activity
// log records source "ai". Data by type:
//   - complete_task: {} (or {"version": n})
//   - create_subtasks: {"titles": ["...", ...]} (source ai)
//   - update_task: any of {"title", "description", "priority", "due_date", "estimated_duration"}
type ApplyActionRequest struct {
	UserID     string         `json:"user_id"`
	Tier       string         `json:"tier"` // free, pro: limits depend on it
	ActionType string         `json:"action_type"`
	TaskID     string         `json:"task_id"`
	Data       map[string]any `json:"data"`
	// OperationID makes a retried apply a no-op (the AI passes the Idempotency-Key).
	OperationID string `json:"operation_id"`
}

// ApplyActionResponse is the task after the action, as the HTTP API shows it (JSON object),
// plus any achievements the action unlocked.
type ApplyActionResponse struct {
	Task                 map[string]any   `json:"task"`
	UnlockedAchievements []map[string]any `json:"unlocked_achievements"`
}

// NoteRequest asks for one of the user's notes (for note → task conversion).
type NoteRequest struct {
	UserID string `json:"user_id"`
	NoteID string `json:"note_id"`
}

// NoteResponse is the note's content.
type NoteResponse struct {
	ID       string `json:"id"`
	Content  string `json:"content"`
	Archived bool   `json:"archived"`
}
