package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/services/auth/internal/account"
)

// SessionJSON is one signed-in device.
type SessionJSON struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	UserAgent  string    `json:"user_agent"`
	IP         string    `json:"ip"`
	// Current marks the session of the access token making the request.
	Current bool `json:"current"`
}

func (a *api) listSessions(w http.ResponseWriter, r *http.Request) {
	c := claimsOf(r)
	page, err := httpx.ParsePage(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	list, total, err := a.cfg.Store.ListSessions(r.Context(), c.UserID, page.Offset, page.Limit, a.cfg.Clock.Now())
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]SessionJSON, 0, len(list))
	for _, s := range list {
		out = append(out, SessionJSON{
			ID: s.ID, CreatedAt: s.CreatedAt, LastUsedAt: s.LastUsedAt, ExpiresAt: s.ExpiresAt,
			UserAgent: s.UserAgent, IP: s.IP, Current: s.ID == c.SessionID,
		})
	}
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(out, page, total))
}

func (a *api) revokeSession(w http.ResponseWriter, r *http.Request) {
	c := claimsOf(r)
	if err := a.cfg.Store.RevokeSession(r.Context(), c.UserID, chi.URLParam(r, "id"), a.cfg.Clock.Now()); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) getMe(w http.ResponseWriter, r *http.Request) {
	u, err := a.cfg.Store.User(r.Context(), claimsOf(r).UserID)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, userJSON(u))
}

type patchMeRequest struct {
	Name     httpx.Optional[string] `json:"name"`
	Timezone httpx.Optional[string] `json:"timezone"`
}

func (a *api) patchMe(w http.ResponseWriter, r *http.Request) {
	var req patchMeRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var change account.ProfileChange
	// null is not a name or a zone: it is checked like the empty string.
	if req.Name.Set {
		change.Name = &req.Name.Value
	}
	if req.Timezone.Set {
		change.Timezone = &req.Timezone.Value
	}
	if err := change.Validate(time.LoadLocation); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	u, err := a.cfg.Store.UpdateProfile(r.Context(), claimsOf(r).UserID, change, a.cfg.Clock.Now())
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, userJSON(u))
}

// DeletedJSON is the answer of DELETE /users/me: the erasure is accepted; the other
// services erase their part when auth.user.deleted reaches them.
type DeletedJSON struct {
	DeletedID string `json:"deleted_id"`
}

func (a *api) deleteMe(w http.ResponseWriter, r *http.Request) {
	c := claimsOf(r)
	if _, err := a.cfg.Store.DeleteUser(r.Context(), c.UserID, a.cfg.Clock.Now()); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusAccepted, DeletedJSON{DeletedID: c.UserID})
}
