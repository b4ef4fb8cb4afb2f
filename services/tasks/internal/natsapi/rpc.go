package natsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/rpc/tasksrpc"

	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

// Context limits (tasksrpc.ContextRequest).
const (
	contextDefaultLimit = 20
	contextMaxLimit     = 50
)

// Serve registers the svc.tasks.* endpoints on a NATS micro service named "tasks".
func Serve(nc *nats.Conn, st *store.Store, version string, logger *slog.Logger) (*rpc.Service, error) {
	s, err := rpc.NewService(nc, "tasks", version, logger)
	if err != nil {
		return nil, err
	}
	e := &endpoints{store: st}
	if err := rpc.Handle(s, tasksrpc.SubjectContext, e.context); err != nil {
		return nil, err
	}
	if err := rpc.Handle(s, tasksrpc.SubjectApplyAction, e.apply); err != nil {
		return nil, err
	}
	if err := rpc.Handle(s, tasksrpc.SubjectNote, e.note); err != nil {
		return nil, err
	}
	return s, nil
}

type endpoints struct{ store *store.Store }

func checkUser(userID string) error {
	if !store.ValidID(userID) {
		return apperr.Invalid(apperr.Field("user_id", "must be a UUID"))
	}
	return nil
}

func toRPCTask(d store.TaskDetail) tasksrpc.Task {
	t := tasksrpc.Task{ID: d.Task.ID, Title: d.Task.Title, Description: d.Task.Description, Priority: string(d.Task.Priority),
		DueDate: d.Task.DueDate, Completed: d.Task.Completed, Archived: d.Task.Archived, Version: d.Task.Version,
		Subtasks: []tasksrpc.Subtask{}}
	for _, st := range d.Subtasks {
		t.Subtasks = append(t.Subtasks, tasksrpc.Subtask{ID: st.ID, Title: st.Title, Completed: st.Completed})
	}
	return t
}

func (e *endpoints) context(ctx context.Context, req tasksrpc.ContextRequest) (tasksrpc.ContextResponse, error) {
	if err := checkUser(req.UserID); err != nil {
		return tasksrpc.ContextResponse{}, err
	}
	if req.TaskID != "" {
		d, err := e.store.GetTask(ctx, req.UserID, req.TaskID)
		if err != nil {
			return tasksrpc.ContextResponse{}, err
		}
		return tasksrpc.ContextResponse{Tasks: []tasksrpc.Task{toRPCTask(d)}}, nil
	}
	limit := req.Limit
	if limit == 0 {
		limit = contextDefaultLimit
	}
	if limit < 1 || limit > contextMaxLimit {
		return tasksrpc.ContextResponse{}, apperr.Invalid(apperr.Field("limit", "must be from 1 to 50"))
	}
	ds, err := e.store.OpenTasks(ctx, req.UserID, limit)
	if err != nil {
		return tasksrpc.ContextResponse{}, err
	}
	out := tasksrpc.ContextResponse{Tasks: make([]tasksrpc.Task, 0, len(ds))}
	for _, d := range ds {
		out.Tasks = append(out.Tasks, toRPCTask(d))
	}
	return out, nil
}

func (e *endpoints) note(ctx context.Context, req tasksrpc.NoteRequest) (tasksrpc.NoteResponse, error) {
	if err := checkUser(req.UserID); err != nil {
		return tasksrpc.NoteResponse{}, err
	}
	n, err := e.store.Note(ctx, req.UserID, req.NoteID)
	if err != nil {
		return tasksrpc.NoteResponse{}, err
	}
	return tasksrpc.NoteResponse{ID: n.ID, Content: n.Content, Archived: n.Archived}, nil
}

// decodeData re-reads an action's data strictly into dst (unknown fields are a 400).
func decodeData(data map[string]any, dst any) error {
	if data == nil {
		data = map[string]any{}
	}
	b, err := json.Marshal(data)
	if err != nil {
		return apperr.Invalid(apperr.Field("data", "must be an object"))
	}
	return httpx.DecodeBytes(b, dst)
}

type completeData struct {
	Version *int `json:"version"`
}

type subtasksData struct {
	Titles []string `json:"titles"`
}

// apply executes a confirmed AI action for the user, once per operation id, logged with
// source ai. It answers the task as the HTTP API shows it.
func (e *endpoints) apply(ctx context.Context, req tasksrpc.ApplyActionRequest) (tasksrpc.ApplyActionResponse, error) {
	var v apperr.Validator
	v.Check(store.ValidID(req.UserID), "user_id", "must be a UUID")
	v.Check(req.OperationID != "" && len(req.OperationID) <= 255, "operation_id", "is required (1–255 characters)")
	v.Check(req.TaskID != "", "task_id", "is required")
	if err := v.Err(); err != nil {
		return tasksrpc.ApplyActionResponse{}, err
	}
	a := store.Actor{UserID: req.UserID, Tier: task.ParseTier(req.Tier), Source: task.SourceAI}
	var fn func(tx pgx.Tx) ([]string, error)
	switch req.ActionType {
	case tasksrpc.ActionCompleteTask:
		var d completeData
		if err := decodeData(req.Data, &d); err != nil {
			return tasksrpc.ApplyActionResponse{}, err
		}
		fn = func(tx pgx.Tx) ([]string, error) {
			done := true
			_, comp, err := e.store.UpdateTaskTx(ctx, tx, a, req.TaskID, task.Patch{Completed: &done, Version: d.Version})
			return unlockedIDs(comp), err
		}
	case tasksrpc.ActionCreateSubtasks:
		var d subtasksData
		if err := decodeData(req.Data, &d); err != nil {
			return tasksrpc.ApplyActionResponse{}, err
		}
		fn = func(tx pgx.Tx) ([]string, error) {
			_, err := e.store.CreateSubtasksTx(ctx, tx, a, req.TaskID, d.Titles, task.SourceAI)
			return nil, err
		}
	case tasksrpc.ActionUpdateTask:
		var d wire.TaskPatch
		if err := decodeData(req.Data, &d); err != nil {
			return tasksrpc.ApplyActionResponse{}, err
		}
		if d.Completed.Set || d.Hidden.Set || d.Archived.Set {
			return tasksrpc.ApplyActionResponse{}, apperr.New(apperr.InvalidAction, "update_task changes title, description, priority, due_date or estimated_duration only")
		}
		p, err := d.Patch()
		if err != nil {
			return tasksrpc.ApplyActionResponse{}, err
		}
		fn = func(tx pgx.Tx) ([]string, error) {
			_, comp, err := e.store.UpdateTaskTx(ctx, tx, a, req.TaskID, p)
			return unlockedIDs(comp), err
		}
	default:
		return tasksrpc.ApplyActionResponse{}, apperr.New(apperr.InvalidAction, fmt.Sprintf("unknown action_type %q", req.ActionType))
	}
	unlocked, _, err := e.store.ApplyOnce(ctx, a, req.OperationID, req.ActionType, req.TaskID, fn)
	if err != nil {
		return tasksrpc.ApplyActionResponse{}, err
	}
	d, err := e.store.GetTask(ctx, req.UserID, req.TaskID)
	if err != nil {
		return tasksrpc.ApplyActionResponse{}, err
	}
	taskMap, err := asMap(wire.FromDetail(d.Task, d.Subtasks))
	if err != nil {
		return tasksrpc.ApplyActionResponse{}, err
	}
	resp := tasksrpc.ApplyActionResponse{Task: taskMap, UnlockedAchievements: []map[string]any{}}
	for _, u := range wire.FromUnlocked(achievementsByID(unlocked)) {
		m, err := asMap(u)
		if err != nil {
			return resp, err
		}
		resp.UnlockedAchievements = append(resp.UnlockedAchievements, m)
	}
	return resp, nil
}

func unlockedIDs(c task.Completion) []string {
	ids := make([]string, 0, len(c.Unlocked))
	for _, a := range c.Unlocked {
		ids = append(ids, a.ID)
	}
	return ids
}

func achievementsByID(ids []string) []task.Achievement {
	var out []task.Achievement
	for _, id := range ids {
		for _, a := range task.Catalogue {
			if a.ID == id {
				out = append(out, a)
			}
		}
	}
	return out
}

func asMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}
