package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

func (a *API) listSubtasks(w http.ResponseWriter, r *http.Request) {
	hp, _, err := page(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	subs, err := a.store.ListSubtasks(r.Context(), actor(r).UserID, chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// A task has at most MaxSubtasksPro subtasks, all read in order; the page is cut here.
	total := len(subs)
	lo, hi := min(hp.Offset, total), min(hp.Offset+hp.Limit, total)
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(wire.FromSubtasks(subs[lo:hi]), hp, total))
}

type createSubtaskRequest struct {
	Title  *string `json:"title"`
	Source *string `json:"source"`
}

func (a *API) createSubtask(w http.ResponseWriter, r *http.Request) {
	var req createSubtaskRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var v apperr.Validator
	v.Check(req.Title != nil, "title", "is required")
	src := task.SourceUser
	if req.Source != nil {
		src = task.Source(*req.Source)
		v.Check(src == task.SourceUser || src == task.SourceAI, "source", "must be user or ai")
	}
	if err := v.Err(); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	subs, err := a.store.CreateSubtasks(r.Context(), actor(r), chi.URLParam(r, "id"), []string{*req.Title}, src)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusCreated, wire.FromSubtask(subs[0]))
}

type patchSubtaskRequest struct {
	Title     httpx.Optional[string] `json:"title"`
	Completed httpx.Optional[bool]   `json:"completed"`
	// Version is accepted for older clients that send the task's version on toggles; a
	// subtask has no version of its own, so it is ignored.
	Version httpx.Optional[int] `json:"version"`
}

// subtaskChanged is the subtask plus its task (counts, auto-completion) and any unlocks.
type subtaskChanged struct {
	Data                 wire.Subtask               `json:"data"`
	Task                 wire.Task                  `json:"task"`
	UnlockedAchievements []wire.UnlockedAchievement `json:"unlocked_achievements"`
}

func (a *API) updateSubtask(w http.ResponseWriter, r *http.Request) {
	var req patchSubtaskRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var v apperr.Validator
	p := store.SubtaskPatch{Title: notNull(&v, "title", req.Title), Completed: notNull(&v, "completed", req.Completed)}
	if err := v.Err(); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ch, err := a.store.UpdateSubtask(r.Context(), actor(r), chi.URLParam(r, "id"), p)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, subtaskChanged{Data: wire.FromSubtask(ch.Subtask), Task: wire.FromTask(ch.Task),
		UnlockedAchievements: wire.FromUnlocked(ch.Completion.Unlocked)})
}

func (a *API) deleteSubtask(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := a.store.DeleteSubtask(r.Context(), actor(r), id); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, map[string]string{"deleted_id": id})
}

type reorderRequest struct {
	SubtaskIDs []string `json:"subtask_ids"`
}

func (a *API) reorderSubtasks(w http.ResponseWriter, r *http.Request) {
	var req reorderRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.SubtaskIDs == nil {
		httpx.WriteError(w, r, apperr.Invalid(apperr.Field("subtask_ids", "is required")))
		return
	}
	subs, err := a.store.ReorderSubtasks(r.Context(), actor(r), chi.URLParam(r, "id"), req.SubtaskIDs)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, wire.FromSubtasks(subs))
}
