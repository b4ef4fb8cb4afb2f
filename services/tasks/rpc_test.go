package main

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/rpc/tasksrpc"
)

func (e *env) nats(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(e.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func wantCode(t testing.TB, err error, code apperr.Code) {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

// TestRequestReply covers svc.tasks.context, svc.tasks.actions.apply and
// svc.tasks.notes.get as the ai service calls them.
func TestRequestReply(t *testing.T) {
	t.Parallel()
	e := setup(t)
	nc := e.nats(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := e.user(t, "free")
	tk := u.createTask(t, map[string]any{"title": "ship it", "description": "soon"})
	done := u.createTask(t, map[string]any{"title": "old"})
	want(t, u.do(t, "PATCH", "/api/v1/tasks/"+id(done), map[string]any{"completed": true}), 200)

	cr, err := rpc.Call[tasksrpc.ContextRequest, tasksrpc.ContextResponse](ctx, nc, tasksrpc.SubjectContext, tasksrpc.ContextRequest{UserID: u.ID, Limit: 10})
	if err != nil || len(cr.Tasks) != 1 || cr.Tasks[0].ID != id(tk) || cr.Tasks[0].Description != "soon" {
		t.Fatalf("context %+v %v", cr, err)
	}
	one, err := rpc.Call[tasksrpc.ContextRequest, tasksrpc.ContextResponse](ctx, nc, tasksrpc.SubjectContext, tasksrpc.ContextRequest{UserID: u.ID, TaskID: id(done)})
	if err != nil || len(one.Tasks) != 1 || !one.Tasks[0].Completed {
		t.Fatalf("context one %+v %v", one, err)
	}
	_, err = rpc.Call[tasksrpc.ContextRequest, tasksrpc.ContextResponse](ctx, nc, tasksrpc.SubjectContext, tasksrpc.ContextRequest{UserID: uuid.NewString(), TaskID: id(tk)})
	wantCode(t, err, apperr.NotFound)
	_, err = rpc.Call[tasksrpc.ContextRequest, tasksrpc.ContextResponse](ctx, nc, tasksrpc.SubjectContext, tasksrpc.ContextRequest{UserID: u.ID, Limit: 51})
	wantCode(t, err, apperr.Validation)

	apply := func(req tasksrpc.ApplyActionRequest) (tasksrpc.ApplyActionResponse, error) {
		req.UserID, req.Tier = u.ID, "free"
		return rpc.Call[tasksrpc.ApplyActionRequest, tasksrpc.ApplyActionResponse](ctx, nc, tasksrpc.SubjectApplyAction, req)
	}
	// create_subtasks twice with one operation id: created once.
	for i := 0; i < 2; i++ {
		res, err := apply(tasksrpc.ApplyActionRequest{ActionType: "create_subtasks", TaskID: id(tk), OperationID: "op-1",
			Data: map[string]any{"titles": []any{"a", "b"}}})
		if err != nil {
			t.Fatal(err)
		}
		subs := res.Task["subtasks"].([]any)
		if len(subs) != 2 || subs[1].(map[string]any)["source"] != "ai" || res.Task["subtask_count"] != float64(2) {
			t.Fatalf("apply %d: %+v", i, res.Task)
		}
	}
	res, err := apply(tasksrpc.ApplyActionRequest{ActionType: "update_task", TaskID: id(tk), OperationID: "op-2",
		Data: map[string]any{"priority": "high", "description": nil}})
	if err != nil || res.Task["priority"] != "high" || res.Task["description"] != "" || res.Task["version"] != float64(2) {
		t.Fatalf("update %+v %v", res.Task, err)
	}
	res, err = apply(tasksrpc.ApplyActionRequest{ActionType: "complete_task", TaskID: id(tk), OperationID: "op-3", Data: map[string]any{"version": 2}})
	if err != nil || res.Task["completed"] != true || res.UnlockedAchievements == nil {
		t.Fatalf("complete %+v %v", res, err)
	}
	// A retried completion is a no-op: still one completion event, version unchanged.
	res, err = apply(tasksrpc.ApplyActionRequest{ActionType: "complete_task", TaskID: id(tk), OperationID: "op-3", Data: map[string]any{"version": 2}})
	if err != nil || res.Task["version"] != float64(3) {
		t.Fatalf("retry %+v %v", res.Task, err)
	}
	e.waitEvents(t, "tasks.task.completed", u.ID, 2)
	items, _ := u.do(t, "GET", "/api/v1/activity?source=ai", nil).list(t)
	if len(items) != 5 { // 2 subtasks, update, update (completed), completed
		t.Fatalf("ai activity %d: %v", len(items), items)
	}
	_, err = apply(tasksrpc.ApplyActionRequest{ActionType: "delete_everything", TaskID: id(tk), OperationID: "op-4"})
	wantCode(t, err, apperr.InvalidAction)
	_, err = apply(tasksrpc.ApplyActionRequest{ActionType: "update_task", TaskID: id(tk), OperationID: "op-5", Data: map[string]any{"archived": true}})
	wantCode(t, err, apperr.InvalidAction)
	_, err = apply(tasksrpc.ApplyActionRequest{ActionType: "update_task", TaskID: id(tk), OperationID: "op-6", Data: map[string]any{"colour": "red"}})
	wantCode(t, err, apperr.Validation)
	_, err = apply(tasksrpc.ApplyActionRequest{ActionType: "update_task", TaskID: id(tk), OperationID: "op-7", Data: map[string]any{"title": "x", "version": 1}})
	wantCode(t, err, apperr.Conflict)
	_, err = apply(tasksrpc.ApplyActionRequest{ActionType: "complete_task", TaskID: uuid.NewString(), OperationID: "op-8"})
	wantCode(t, err, apperr.NotFound)
	_, err = apply(tasksrpc.ApplyActionRequest{ActionType: "complete_task", TaskID: id(tk)})
	wantCode(t, err, apperr.Validation)

	r := u.do(t, "POST", "/api/v1/notes", map[string]any{"content": "idea"})
	want(t, r, 201)
	note := r.data(t)
	nr, err := rpc.Call[tasksrpc.NoteRequest, tasksrpc.NoteResponse](ctx, nc, tasksrpc.SubjectNote, tasksrpc.NoteRequest{UserID: u.ID, NoteID: id(note)})
	if err != nil || nr.Content != "idea" {
		t.Fatalf("note %+v %v", nr, err)
	}
	_, err = rpc.Call[tasksrpc.NoteRequest, tasksrpc.NoteResponse](ctx, nc, tasksrpc.SubjectNote, tasksrpc.NoteRequest{UserID: uuid.NewString(), NoteID: id(note)})
	wantCode(t, err, apperr.NotFound)
}
