// Package httpapi is the ai service's HTTP edge: decoding and validating requests,
// calling the assistant, and writing the envelopes and Server-Sent Events of API.md §4.
package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
)

// Header names the API reads.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderTaskID         = "X-Task-Id"
)

// API holds the handlers.
type API struct {
	svc *assistant.Service
}

// New is the API over svc.
func New(svc *assistant.Service) *API { return &API{svc: svc} }

// Routes mounts the endpoints (relative to /api/v1). The caller puts authentication and
// the idempotency layer (with Idempotency-Key required) in front.
func (a *API) Routes(r chi.Router) {
	r.Post("/ai/chat", a.chat)
	r.Post("/ai/chat/stream", a.chatStream)
	r.Post("/ai/confirm-action", a.confirmAction)
	r.Post("/ai/generate-subtasks", a.generateSubtasks)
	r.Post("/ai/transcribe", a.transcribe)
	r.Post("/notes/{id}/convert", a.convertNote)
}

// caller is the verified token's user, session and tier, and the request's key.
func caller(r *http.Request) (assistant.Caller, error) {
	c, ok := authn.FromContext(r.Context())
	if !ok {
		return assistant.Caller{}, apperr.New(apperr.Unauthorized, "an access token is required")
	}
	key := r.Header.Get(HeaderIdempotencyKey)
	if key == "" {
		// The idempotency layer refuses this first; checked again because the credit
		// operation id is derived from the key.
		return assistant.Caller{}, apperr.New(apperr.IdempotencyKeyRequired, "the Idempotency-Key header is required on AI requests")
	}
	return assistant.Caller{UserID: c.UserID, SessionID: c.SessionID, Tier: c.Tier, IdempotencyKey: key}, nil
}

type chatContext struct {
	IncludeTasks *bool `json:"include_tasks"`
	TaskLimit    *int  `json:"task_limit"`
}

type chatRequest struct {
	Message string       `json:"message"`
	Context *chatContext `json:"context"`
}

func chatInput(r *http.Request) (assistant.ChatInput, error) {
	var req chatRequest
	if err := httpx.Decode(r, &req); err != nil {
		return assistant.ChatInput{}, err
	}
	in := assistant.ChatInput{
		Message:      req.Message,
		IncludeTasks: true,
		TaskLimit:    assistant.DefaultTaskLimit,
		TaskID:       strings.ToLower(strings.TrimSpace(r.Header.Get(HeaderTaskID))),
	}
	if req.Context != nil {
		if req.Context.IncludeTasks != nil {
			in.IncludeTasks = *req.Context.IncludeTasks
		}
		if req.Context.TaskLimit != nil {
			in.TaskLimit = *req.Context.TaskLimit
		}
	}
	return in, in.Validate()
}

type suggestedAction struct {
	ActionType  string         `json:"action_type"`
	TaskID      string         `json:"task_id"`
	Description string         `json:"description"`
	Data        map[string]any `json:"data"`
}

func suggestions(list []assistant.SuggestedAction) []suggestedAction {
	out := make([]suggestedAction, 0, len(list))
	for _, a := range list {
		data := a.Data
		if data == nil {
			data = map[string]any{}
		}
		out = append(out, suggestedAction{ActionType: a.ActionType, TaskID: a.TaskID, Description: a.Description, Data: data})
	}
	return out
}

type chatResponse struct {
	Response         string            `json:"response"`
	SuggestedActions []suggestedAction `json:"suggested_actions"`
	CreditsUsed      int               `json:"credits_used"`
	CreditsRemaining int               `json:"credits_remaining"`
	AIRequestWarning bool              `json:"ai_request_warning"`
}

func (a *API) chat(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	in, err := chatInput(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out, err := a.svc.Chat(r.Context(), c, in)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, chatResponse{
		Response:         out.Response,
		SuggestedActions: suggestions(out.SuggestedActions),
		CreditsUsed:      out.CreditsUsed,
		CreditsRemaining: out.CreditsRemaining,
		AIRequestWarning: out.Warning,
	})
}

type confirmRequest struct {
	ActionType string          `json:"action_type"`
	TaskID     string          `json:"task_id"`
	Data       json.RawMessage `json:"data"`
}

type confirmResponse struct {
	Task                 map[string]any   `json:"task"`
	UnlockedAchievements []map[string]any `json:"unlocked_achievements"`
}

func (a *API) confirmAction(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var req confirmRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	res, err := a.svc.ConfirmAction(r.Context(), c, req.ActionType, strings.TrimSpace(req.TaskID), req.Data)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	unlocked := res.UnlockedAchievements
	if unlocked == nil {
		unlocked = []map[string]any{}
	}
	httpx.WriteData(w, http.StatusOK, confirmResponse{Task: res.Task, UnlockedAchievements: unlocked})
}

type subtasksRequest struct {
	TaskID string `json:"task_id"`
}

type subtaskTitle struct {
	Title string `json:"title"`
}

type subtasksResponse struct {
	SuggestedSubtasks []subtaskTitle `json:"suggested_subtasks"`
	CreditsUsed       int            `json:"credits_used"`
	CreditsRemaining  int            `json:"credits_remaining"`
	AIRequestWarning  bool           `json:"ai_request_warning"`
}

func (a *API) generateSubtasks(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var req subtasksRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out, err := a.svc.GenerateSubtasks(r.Context(), c, strings.ToLower(strings.TrimSpace(req.TaskID)))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	titles := make([]subtaskTitle, 0, len(out.Titles))
	for _, t := range out.Titles {
		titles = append(titles, subtaskTitle{Title: t})
	}
	httpx.WriteData(w, http.StatusOK, subtasksResponse{
		SuggestedSubtasks: titles, CreditsUsed: out.CreditsUsed, CreditsRemaining: out.CreditsRemaining, AIRequestWarning: out.Warning,
	})
}

type noteResponse struct {
	Title            string `json:"title"`
	Description      string `json:"description"`
	Priority         string `json:"priority"`
	CreditsUsed      int    `json:"credits_used"`
	CreditsRemaining int    `json:"credits_remaining"`
}

func (a *API) convertNote(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// The request has no fields; a body, when sent, must be an empty JSON object.
	body, err := httpx.ReadBody(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if strings.TrimSpace(string(body)) != "" {
		if err := httpx.RequireJSON(r); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		var empty struct{}
		if err := httpx.DecodeBytes(body, &empty); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	}
	out, err := a.svc.ConvertNote(r.Context(), c, strings.ToLower(chi.URLParam(r, "id")))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, noteResponse{
		Title: out.Suggestion.Title, Description: out.Suggestion.Description, Priority: out.Suggestion.Priority,
		CreditsUsed: out.CreditsUsed, CreditsRemaining: out.CreditsRemaining,
	})
}

type transcribeRequest struct {
	AudioURL        string `json:"audio_url"`
	DurationSeconds int    `json:"duration_seconds"`
}

type transcribeResponse struct {
	Transcription    string  `json:"transcription"`
	Language         string  `json:"language"`
	Confidence       float64 `json:"confidence"`
	CreditsUsed      int     `json:"credits_used"`
	CreditsRemaining int     `json:"credits_remaining"`
}

func (a *API) transcribe(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var req transcribeRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out, err := a.svc.Transcribe(r.Context(), c, assistant.TranscribeInput{AudioURL: strings.TrimSpace(req.AudioURL), DurationSeconds: req.DurationSeconds})
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, transcribeResponse{
		Transcription: out.Transcript.Text, Language: out.Transcript.Language, Confidence: out.Transcript.Confidence,
		CreditsUsed: out.CreditsUsed, CreditsRemaining: out.CreditsRemaining,
	})
}

// Deps is what the service's handler is built from.
type Deps struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Checks   []httpx.Check
	// Authenticate verifies the access token (authn.Middleware).
	Authenticate func(http.Handler) http.Handler
	// Idempotency is the Idempotency-Key layer, with the key required.
	Idempotency func(http.Handler) http.Handler
	// Metrics, when not nil, measures every request (by route).
	Metrics func(http.Handler) http.Handler
	Service *assistant.Service
}

// Handler is the whole HTTP surface: ops routes at the root, the API under /api/v1.
func Handler(d Deps) http.Handler {
	r := chi.NewRouter()
	r.Use(httpx.RequestID(d.Logger), httpx.Recover, httpx.SecurityHeaders, httpx.LimitBody)
	if d.Metrics != nil {
		r.Use(d.Metrics)
	}
	r.NotFound(httpx.NotFoundHandler)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler)
	httpx.MountOps(r, d.Registry, d.Checks...)
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(d.Authenticate, d.Idempotency)
		New(d.Service).Routes(r)
	})
	return r
}
