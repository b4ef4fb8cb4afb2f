package httpapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/services/auth/internal/account"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

// TokenResponse is the top-level token answer (API.md §2, OAuth-like); User only on
// sign-in.
type TokenResponse struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type"`
	ExpiresIn    int       `json:"expires_in"`
	User         *UserJSON `json:"user,omitempty"`
}

// UserJSON is the profile of /users/me and of the sign-in answer.
type UserJSON struct {
	ID        string    `json:"id"`
	GoogleID  string    `json:"google_id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	AvatarURL string    `json:"avatar_url"`
	Timezone  string    `json:"timezone"`
	Tier      string    `json:"tier"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func userJSON(u account.User) UserJSON {
	return UserJSON{
		ID: u.ID, GoogleID: u.GoogleID, Email: u.Email, Name: u.Name, AvatarURL: u.AvatarURL,
		Timezone: u.Timezone, Tier: u.Tier, CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
	}
}

type googleRequest struct {
	IDToken string `json:"id_token"`
}

type devLoginRequest struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (a *api) signInGoogle(w http.ResponseWriter, r *http.Request) {
	var req googleRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.IDToken == "" {
		httpx.WriteError(w, r, apperr.Invalid(apperr.Field("id_token", "is required")))
		return
	}
	id, err := a.cfg.Google.Verify(r.Context(), req.IDToken)
	if err != nil {
		a.metrics.signIns.WithLabelValues("google", "failed").Inc()
		httpx.WriteError(w, r, err)
		return
	}
	a.signIn(w, r, "google", id)
}

func (a *api) devLogin(w http.ResponseWriter, r *http.Request) {
	var req devLoginRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if err := account.ValidateDevLogin(req.Email, req.Name); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	a.signIn(w, r, "dev", account.Identity{Email: req.Email, Name: req.Name})
}

func (a *api) signIn(w http.ResponseWriter, r *http.Request, method string, id account.Identity) {
	now := a.cfg.Clock.Now()
	raw, hash, err := account.NewRefreshToken()
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	u, sess, created, err := a.cfg.Store.SignIn(r.Context(), id, clientOf(r), store.Issue{Hash: hash, ExpiresAt: now.Add(account.RefreshTokenTTL)}, now)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	outcome := "existing_user"
	if created {
		outcome = "new_user"
	}
	a.metrics.signIns.WithLabelValues(method, outcome).Inc()
	uj := userJSON(u)
	a.writeTokens(w, r, u, sess, raw, &uj, now)
}

func (a *api) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.RefreshToken == "" {
		httpx.WriteError(w, r, apperr.Invalid(apperr.Field("refresh_token", "is required")))
		return
	}
	if !account.WellFormedRefreshToken(req.RefreshToken) {
		a.metrics.refreshes.WithLabelValues(string(apperr.InvalidRefreshToken)).Inc()
		httpx.WriteError(w, r, account.ErrInvalidRefreshToken)
		return
	}
	now := a.cfg.Clock.Now()
	raw, hash, err := account.NewRefreshToken()
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	u, sess, err := a.cfg.Store.Rotate(r.Context(), account.HashRefreshToken(req.RefreshToken), store.Issue{Hash: hash, ExpiresAt: now.Add(account.RefreshTokenTTL)}, now)
	if err != nil {
		code := apperr.CodeOf(err)
		a.metrics.refreshes.WithLabelValues(string(code)).Inc()
		if code == apperr.RefreshTokenReused {
			httpx.LoggerFrom(r.Context()).WarnContext(r.Context(), "refresh token reused; session revoked", "session_id", sess.ID, "user_id", sess.UserID)
		}
		httpx.WriteError(w, r, err)
		return
	}
	a.metrics.refreshes.WithLabelValues("ok").Inc()
	a.writeTokens(w, r, u, sess, raw, nil, now)
}

// writeTokens signs the access token for the session and writes the token answer.
func (a *api) writeTokens(w http.ResponseWriter, r *http.Request, u account.User, sess account.Session, refresh string, user *UserJSON, now time.Time) {
	jti, err := uuid.NewV7()
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	access, err := a.cfg.Signer.Sign(authn.Claims{
		UserID: u.ID, SessionID: sess.ID, TokenID: jti.String(), Email: u.Email, Tier: u.Tier, IssuedAt: now,
	}, account.AccessTokenTTL)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// Token answers must not be cached by anything in between (RFC 6749 §5.1).
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	httpx.WriteJSON(w, http.StatusOK, TokenResponse{
		AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int(account.AccessTokenTTL / time.Second), User: user,
	})
}

// logout revokes the session of the presented refresh token and answers 204 whatever it
// was given: a client signing out must never be told to try again, and the answer must not
// reveal whether a token was valid.
func (a *api) logout(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if body, err := httpx.ReadBody(r); err == nil && len(body) > 0 {
		if err := httpx.DecodeBytes(body, &req); err == nil && account.WellFormedRefreshToken(req.RefreshToken) {
			if err := a.cfg.Store.Logout(r.Context(), account.HashRefreshToken(req.RefreshToken), a.cfg.Clock.Now()); err != nil {
				httpx.LoggerFrom(r.Context()).ErrorContext(r.Context(), "logout failed", "err", err)
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
