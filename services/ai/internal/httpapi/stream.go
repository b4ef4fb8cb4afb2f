package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/idempotency"
)

// SSE event names of POST /ai/chat/stream.
const (
	EventChunk = "chunk"
	EventFinal = "final"
	EventError = "error"
)

// sse writes Server-Sent Events and flushes each one, so a chunk reaches the client as
// soon as the model produced it. Headers go out with the first event: until then an error
// can still be answered with a normal status and envelope.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func newSSE(w http.ResponseWriter) *sse {
	return &sse{w: w, rc: http.NewResponseController(w)}
}

func (s *sse) start() {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Proxies such as nginx buffer responses unless told otherwise.
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
	s.started = true
}

func (s *sse) send(event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if !s.started {
		s.start()
	}
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return err
	}
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

type chunkEvent struct {
	Text string `json:"text"`
}

type finalEvent struct {
	SuggestedActions []suggestedAction `json:"suggested_actions"`
	CreditsUsed      int               `json:"credits_used"`
	CreditsRemaining int               `json:"credits_remaining"`
	AIRequestWarning bool              `json:"ai_request_warning"`
}

type errorEvent struct {
	Code    apperr.Code `json:"code"`
	Message string      `json:"message"`
}

func (a *API) chatStream(w http.ResponseWriter, r *http.Request) {
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
	s := newSSE(w)
	out, err := a.svc.ChatStream(r.Context(), c, in, func(text string) error {
		return s.send(EventChunk, chunkEvent{Text: text})
	})
	if r.Context().Err() != nil {
		// The client went away; the provider call was cancelled and the credits refunded,
		// so what was sent must not become the key's stored answer.
		idempotency.Forget(r.Context())
		return
	}
	if err != nil {
		if !s.started {
			httpx.WriteError(w, r, err)
			return
		}
		e, ok := apperr.As(err)
		if !ok || !e.Code.Known() {
			httpx.LoggerFrom(r.Context()).ErrorContext(r.Context(), "stream failed", "err", err)
			e = apperr.New(apperr.Internal, "internal error")
		} else if e.Code.Status() >= 500 {
			httpx.LoggerFrom(r.Context()).WarnContext(r.Context(), "stream failed", "code", e.Code, "err", err)
		}
		// The 200 is already out; like a 5xx, this answer must not be replayed, so a retry
		// with the same key runs (and is charged) again.
		idempotency.Forget(r.Context())
		_ = s.send(EventError, errorEvent{Code: e.Code, Message: e.Message})
		return
	}
	_ = s.send(EventFinal, finalEvent{
		SuggestedActions: suggestions(out.SuggestedActions),
		CreditsUsed:      out.CreditsUsed,
		CreditsRemaining: out.CreditsRemaining,
		AIRequestWarning: out.Warning,
	})
}
