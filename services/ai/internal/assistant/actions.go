package assistant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Action types of a suggested action (API.md §4); also the model's tool names.
const (
	ActionCompleteTask   = "complete_task"
	ActionCreateSubtasks = "create_subtasks"
	ActionUpdateTask     = "update_task"
)

// Priorities a task may have.
var priorities = map[string]bool{"low": true, "medium": true, "high": true}

// maxToolArgumentBytes bounds one tool call's arguments: the model's output is untrusted
// input and gets the same treatment as a request body, only smaller.
const maxToolArgumentBytes = 16 << 10

// Tool is a function the model may call. Parameters is its JSON Schema.
type Tool struct {
	Name        string
	Description string
	Parameters  map[string]any
}

// ToolCall is one function call the model made, arguments as the JSON text it produced.
type ToolCall struct {
	Name      string
	Arguments string
}

// SuggestedAction is a validated action the user may confirm; it never runs by itself.
type SuggestedAction struct {
	ActionType  string
	TaskID      string
	Description string
	Data        map[string]any
}

// Tools are the functions the chat model is offered. Each takes the task id and a short
// reason, which becomes the suggestion's description.
func Tools(tier string) []Tool {
	taskID := map[string]any{"type": "string", "description": "id of one of the user's tasks listed in the system prompt"}
	reason := map[string]any{"type": "string", "maxLength": MaxActionReason, "description": "one sentence telling the user why"}
	return []Tool{
		{
			Name:        ActionCompleteTask,
			Description: "Suggest marking one of the user's tasks as completed.",
			Parameters: map[string]any{
				"type":                 "object",
				"properties":           map[string]any{"task_id": taskID, "reason": reason},
				"required":             []string{"task_id", "reason"},
				"additionalProperties": false,
			},
		},
		{
			Name:        ActionCreateSubtasks,
			Description: "Suggest subtasks that break one of the user's tasks into concrete steps.",
			Parameters: map[string]any{
				"type": "object",
				"properties": map[string]any{
					"task_id": taskID,
					"reason":  reason,
					"titles": map[string]any{
						"type":     "array",
						"minItems": 1,
						"maxItems": MaxSubtasks(tier),
						"items":    map[string]any{"type": "string", "minLength": 1, "maxLength": MaxSubtaskTitle},
					},
				},
				"required":             []string{"task_id", "reason", "titles"},
				"additionalProperties": false,
			},
		},
		{
			Name:        ActionUpdateTask,
			Description: "Suggest changing fields of one of the user's tasks. Give only the fields to change.",
			Parameters: map[string]any{
				"type": "object",
				"properties": map[string]any{
					"task_id":            taskID,
					"reason":             reason,
					"title":              map[string]any{"type": "string", "minLength": 1, "maxLength": MaxTaskTitle},
					"description":        map[string]any{"type": "string", "maxLength": MaxDescription},
					"priority":           map[string]any{"type": "string", "enum": []string{"low", "medium", "high"}},
					"due_date":           map[string]any{"type": "string", "description": "RFC 3339 UTC time"},
					"estimated_duration": map[string]any{"type": "integer", "minimum": 1, "maximum": MaxEstimatedMins, "description": "minutes"},
				},
				"required":             []string{"task_id", "reason"},
				"additionalProperties": false,
			},
		},
	}
}

// SuggestActions turns the model's tool calls into suggestions: arguments parsed strictly
// and bounded, calls naming a task the user does not have (or a tool we did not offer)
// dropped, duplicates dropped, at most MaxSuggested kept.
func SuggestActions(calls []ToolCall, known map[string]Task, tier string) []SuggestedAction {
	out := []SuggestedAction{}
	seen := map[string]bool{}
	for _, c := range calls {
		if len(out) == MaxSuggested {
			break
		}
		a, err := parseToolCall(c, tier)
		if err != nil {
			continue
		}
		if _, ok := known[a.TaskID]; !ok {
			continue
		}
		sig := a.ActionType + "/" + a.TaskID
		if seen[sig] {
			continue
		}
		seen[sig] = true
		out = append(out, a)
	}
	return out
}

func parseToolCall(c ToolCall, tier string) (SuggestedAction, error) {
	if len(c.Arguments) > maxToolArgumentBytes {
		return SuggestedAction{}, errors.New("arguments too large")
	}
	args, err := decodeObject([]byte(c.Arguments))
	if err != nil {
		return SuggestedAction{}, err
	}
	taskID, ok := args["task_id"].(string)
	if !ok || !validUUID(taskID) {
		return SuggestedAction{}, errors.New("task_id is not a task id")
	}
	reason := ""
	if v, present := args["reason"]; present {
		s, ok := v.(string)
		if !ok || utf8.RuneCountInString(s) > MaxActionReason {
			return SuggestedAction{}, errors.New("reason is not a short string")
		}
		reason = strings.TrimSpace(s)
	}
	delete(args, "task_id")
	delete(args, "reason")
	data, err := actionData(c.Name, args, tier)
	if err != nil {
		return SuggestedAction{}, err
	}
	if reason == "" {
		reason = defaultDescription(c.Name)
	}
	return SuggestedAction{ActionType: c.Name, TaskID: strings.ToLower(taskID), Description: reason, Data: data}, nil
}

func defaultDescription(actionType string) string {
	switch actionType {
	case ActionCompleteTask:
		return "Mark this task as completed."
	case ActionCreateSubtasks:
		return "Break this task into subtasks."
	default:
		return "Update this task."
	}
}

// ConfirmedAction is an action the user confirmed, validated like a request body.
type ConfirmedAction struct {
	ActionType string
	TaskID     string
	Data       map[string]any
}

// ParseConfirmedAction validates POST /ai/confirm-action: a known action type
// (INVALID_ACTION otherwise), a task id, and data that fits the type.
func ParseConfirmedAction(actionType, taskID string, rawData []byte, tier string) (ConfirmedAction, error) {
	switch actionType {
	case ActionCompleteTask, ActionCreateSubtasks, ActionUpdateTask:
	default:
		return ConfirmedAction{}, apperr.New(apperr.InvalidAction,
			"action_type must be complete_task, create_subtasks or update_task",
			apperr.Field("action_type", "unknown action type"))
	}
	if !validUUID(taskID) {
		return ConfirmedAction{}, apperr.Invalid(apperr.Field("task_id", "must be a task id"))
	}
	args := map[string]any{}
	if len(bytes.TrimSpace(rawData)) > 0 && !bytes.Equal(bytes.TrimSpace(rawData), []byte("null")) {
		var err error
		if args, err = decodeObject(rawData); err != nil {
			return ConfirmedAction{}, apperr.New(apperr.InvalidAction, "data does not fit the action", apperr.Field("data", err.Error()))
		}
	}
	data, err := actionData(actionType, args, tier)
	if err != nil {
		return ConfirmedAction{}, apperr.New(apperr.InvalidAction, "data does not fit the action", apperr.Field("data", err.Error()))
	}
	return ConfirmedAction{ActionType: actionType, TaskID: strings.ToLower(taskID), Data: data}, nil
}

// actionData validates the type-specific fields of args (task_id and reason removed) and
// returns the data the tasks service receives. Unknown fields are refused.
func actionData(actionType string, args map[string]any, tier string) (map[string]any, error) {
	switch actionType {
	case ActionCompleteTask:
		data := map[string]any{}
		for k, v := range args {
			if k != "version" {
				return nil, fmt.Errorf("unknown field %q", k)
			}
			n, ok := asInt(v)
			if !ok || n < 1 {
				return nil, errors.New("version must be a positive integer")
			}
			data["version"] = n
		}
		return data, nil
	case ActionCreateSubtasks:
		for k := range args {
			if k != "titles" {
				return nil, fmt.Errorf("unknown field %q", k)
			}
		}
		list, ok := args["titles"].([]any)
		if !ok {
			return nil, errors.New("titles must be an array of strings")
		}
		titles := make([]string, 0, len(list))
		for _, v := range list {
			s, ok := v.(string)
			if !ok {
				return nil, errors.New("titles must be an array of strings")
			}
			titles = append(titles, s)
		}
		titles = NormalizeSubtaskTitles(titles, tier)
		if len(titles) == 0 {
			return nil, errors.New("titles must hold at least one title of 1–200 characters")
		}
		return map[string]any{"titles": titles}, nil
	case ActionUpdateTask:
		return updateData(args)
	default:
		return nil, fmt.Errorf("unknown action %q", actionType)
	}
}

func updateData(args map[string]any) (map[string]any, error) {
	data := map[string]any{}
	for k, v := range args {
		switch k {
		case "title":
			s, ok := v.(string)
			s = strings.TrimSpace(s)
			if !ok || s == "" || utf8.RuneCountInString(s) > MaxTaskTitle {
				return nil, errors.New("title must be 1–200 characters")
			}
			data[k] = s
		case "description":
			if v == nil {
				data[k] = nil
				continue
			}
			s, ok := v.(string)
			if !ok || utf8.RuneCountInString(s) > MaxDescription {
				return nil, errors.New("description must be at most 2000 characters")
			}
			data[k] = s
		case "priority":
			s, ok := v.(string)
			if !ok || !priorities[s] {
				return nil, errors.New("priority must be low, medium or high")
			}
			data[k] = s
		case "due_date":
			if v == nil {
				data[k] = nil
				continue
			}
			s, ok := v.(string)
			t, err := time.Parse(time.RFC3339, s)
			if !ok || err != nil {
				return nil, errors.New("due_date must be an RFC 3339 time")
			}
			data[k] = t.UTC().Format(time.RFC3339)
		case "estimated_duration":
			if v == nil {
				data[k] = nil
				continue
			}
			n, ok := asInt(v)
			if !ok || n < 1 || n > MaxEstimatedMins {
				return nil, errors.New("estimated_duration must be 1–720 minutes")
			}
			data[k] = n
		case "version":
			n, ok := asInt(v)
			if !ok || n < 1 {
				return nil, errors.New("version must be a positive integer")
			}
			data[k] = n
		default:
			return nil, fmt.Errorf("unknown field %q", k)
		}
	}
	if len(data) == 0 || (len(data) == 1 && data["version"] != nil) {
		return nil, errors.New("at least one field to change is required")
	}
	return data, nil
}

// decodeObject parses one JSON object, numbers kept exact.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, errors.New("must be a JSON object")
	}
	if m == nil {
		return nil, errors.New("must be a JSON object")
	}
	if dec.More() {
		return nil, errors.New("must be a single JSON object")
	}
	return m, nil
}

func asInt(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil || i > 1<<31 || i < -(1<<31) {
		return 0, false
	}
	return int(i), true
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// ValidID reports whether s is a UUID in its canonical 36-character form.
func ValidID(s string) bool { return validUUID(s) }
