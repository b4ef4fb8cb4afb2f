package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

func (a *API) listTombstones(w http.ResponseWriter, r *http.Request) {
	hp, sp, err := page(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ts, total, err := a.store.ListTombstones(r.Context(), actor(r).UserID, sp)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]wire.Tombstone, 0, len(ts))
	for _, t := range ts {
		out = append(out, wire.FromTombstone(t))
	}
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(out, hp, total))
}

// recovered is the answer of a recovery: the entity type and the restored task (with
// its subtasks) or note, also under "data" directly for clients that read the resource.
type recovered struct {
	EntityType string           `json:"entity_type"`
	Task       *wire.TaskDetail `json:"task,omitempty"`
	Note       *wire.Note       `json:"note,omitempty"`
}

func (a *API) recover(w http.ResponseWriter, r *http.Request) {
	rec, err := a.store.Recover(r.Context(), actor(r), chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := recovered{EntityType: string(rec.EntityType)}
	if rec.Task != nil {
		d := wire.FromFullDetail(rec.Task.Task, rec.Task.Subtasks, rec.Task.Reminders)
		out.Task = &d
	}
	if rec.Note != nil {
		n := wire.FromNote(*rec.Note)
		out.Note = &n
	}
	httpx.WriteData(w, http.StatusOK, out)
}

func (a *API) listActivity(w http.ResponseWriter, r *http.Request) {
	hp, sp, err := page(r)
	q := newQuery(r)
	f := store.ActivityFilter{
		EntityType: q.text("entity_type", 50), EntityID: q.text("entity_id", 100), Action: q.text("action", 50),
		Source: q.oneOf("source", string(task.SourceUser), string(task.SourceAI), string(task.SourceSystem)),
		From:   q.time("from"), To: q.time("to"),
	}
	if err == nil {
		err = q.v.Err()
	}
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	as, total, err := a.store.ListActivity(r.Context(), actor(r).UserID, f, sp)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]wire.Activity, 0, len(as))
	for _, x := range as {
		out = append(out, wire.FromActivity(x))
	}
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(out, hp, total))
}
