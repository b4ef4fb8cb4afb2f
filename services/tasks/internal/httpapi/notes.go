package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

func (a *API) listNotes(w http.ResponseWriter, r *http.Request) {
	hp, sp, err := page(r)
	q := newQuery(r)
	archived := q.boolean("archived")
	if err == nil {
		err = q.v.Err()
	}
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ns, total, err := a.store.ListNotes(r.Context(), actor(r).UserID, archived, sp)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]wire.Note, 0, len(ns))
	for _, n := range ns {
		out = append(out, wire.FromNote(n))
	}
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(out, hp, total))
}

type createNoteRequest struct {
	Content              *string `json:"content"`
	VoiceURL             *string `json:"voice_url"`
	VoiceDurationSeconds *int    `json:"voice_duration_seconds"`
}

func (a *API) createNote(w http.ResponseWriter, r *http.Request) {
	var req createNoteRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	n := task.NewNote{VoiceDurationSeconds: req.VoiceDurationSeconds}
	if req.Content != nil {
		n.Content = *req.Content
	}
	if req.VoiceURL != nil {
		n.VoiceURL = *req.VoiceURL
	}
	note, err := a.store.CreateNote(r.Context(), actor(r), n)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusCreated, wire.FromNote(note))
}

func (a *API) getNote(w http.ResponseWriter, r *http.Request) {
	n, err := a.store.GetNote(r.Context(), actor(r).UserID, chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, wire.FromNote(n))
}

type patchNoteRequest struct {
	Content  httpx.Optional[string] `json:"content"`
	Archived httpx.Optional[bool]   `json:"archived"`
	Version  httpx.Optional[int]    `json:"version"`
}

func (a *API) updateNote(w http.ResponseWriter, r *http.Request) {
	var req patchNoteRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var v apperr.Validator
	p := task.NotePatch{Content: notNull(&v, "content", req.Content), Archived: notNull(&v, "archived", req.Archived)}
	if req.Version.Has() {
		p.Version = &req.Version.Value
	}
	if err := v.Err(); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	n, err := a.store.UpdateNote(r.Context(), actor(r), chi.URLParam(r, "id"), p)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, wire.FromNote(n))
}

func (a *API) deleteNote(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	tomb, err := a.store.DeleteNote(r.Context(), actor(r), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, wire.Deleted{DeletedID: id, TombstoneID: tomb.ID, RecoverableUntil: wire.Time(tomb.ExpiresAt)})
}
