// Package httpx is the HTTP edge shared by every service: the error envelope of API.md §1,
// strict JSON decoding, request ids, security headers, pagination, health endpoints and a
// server with timeouts and graceful shutdown.
package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// ErrorBody is the wire form of an error (API.md §1).
type ErrorBody struct {
	Error ErrorPayload `json:"error"`
}

// ErrorPayload is the inside of the envelope.
type ErrorPayload struct {
	Code      apperr.Code     `json:"code"`
	Message   string          `json:"message"`
	Details   []apperr.Detail `json:"details"`
	RequestID string          `json:"request_id"`
}

// Item is the envelope of one resource: {"data": ...}.
type Item[T any] struct {
	Data T `json:"data"`
}

// maxPooledBuffer bounds the buffers WriteJSON keeps for reuse, so one huge answer does
// not pin its memory.
const maxPooledBuffer = 256 << 10

var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// WriteJSON writes v as JSON (what json.Marshal makes, then a newline) with the given
// status. The body is encoded into a pooled buffer first, so an unmarshalable value
// still gets a clean 500 and the answer carries its Content-Length: a reverse proxy in
// front (the gateway's httputil.ReverseProxy) flushes an answer of unknown length on
// every write, one of known length once.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			jsonBuffers.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		// Only a programming error (an unmarshalable type) gets here.
		http.Error(w, `{"error":{"code":"INTERNAL_ERROR","message":"internal error","details":[]}}`, http.StatusInternalServerError)
		return
	}
	WriteJSONBytes(w, status, buf.Bytes())
}

// WriteJSONBytes writes body, JSON already encoded (newline included), with the given
// status and its Content-Length.
func WriteJSONBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteData writes {"data": v}.
func WriteData(w http.ResponseWriter, status int, v any) {
	WriteJSON(w, status, Item[any]{Data: v})
}

// WriteError maps err to the envelope. Errors without a code are logged with the request
// id and answered as INTERNAL_ERROR, so no internal detail leaks.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	rid := RequestIDFrom(ctx)
	e, ok := apperr.As(apperr.Unavailable(err))
	if !ok || !e.Code.Known() {
		LoggerFrom(ctx).ErrorContext(ctx, "request failed", "err", err, "request_id", rid, "method", r.Method, "path", r.URL.Path)
		e = apperr.New(apperr.Internal, "internal error")
	} else if e.Err != nil || e.Code.Status() >= 500 {
		LoggerFrom(ctx).WarnContext(ctx, "request failed", "code", e.Code, "err", err, "request_id", rid, "path", r.URL.Path)
	}
	details := e.Details
	if details == nil {
		details = []apperr.Detail{}
	}
	for k, v := range e.Headers {
		w.Header().Set(k, v)
	}
	WriteJSON(w, e.Code.Status(), ErrorBody{Error: ErrorPayload{
		Code: e.Code, Message: e.Message, Details: details, RequestID: rid,
	}})
}

type loggerKey struct{}

// WithLogger stores the request's logger in ctx.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// WithLogAttrs is WithLogger(ctx, LoggerFrom(ctx).With(args...)), but the logger is made
// only when LoggerFrom first asks for it, with one With for all the attributes the
// middleware added (request id, trace, user): a JSON handler formats a With's attributes
// at once, and most requests never log.
func WithLogAttrs(ctx context.Context, args ...any) context.Context {
	switch v := ctx.Value(loggerKey{}).(type) {
	case *lazyLogger:
		return withLazyLogger(ctx, v.base, append(v.args[:len(v.args):len(v.args)], args...))
	case *slog.Logger:
		return withLazyLogger(ctx, v, args)
	}
	return withLazyLogger(ctx, nil, args)
}

func withLazyLogger(ctx context.Context, base *slog.Logger, args []any) context.Context {
	return context.WithValue(ctx, loggerKey{}, &lazyLogger{base: base, args: args})
}

// lazyLogger is base.With(args...), made on first use. A nil base is slog.Default at
// that time.
type lazyLogger struct {
	base *slog.Logger
	args []any
	once sync.Once
	l    *slog.Logger
}

func (z *lazyLogger) logger() *slog.Logger {
	z.once.Do(func() {
		base := z.base
		if base == nil {
			base = slog.Default()
		}
		z.l = base.With(z.args...)
	})
	return z.l
}

// LoggerFrom is the logger stored by WithLogger (with WithLogAttrs' attributes), or
// slog.Default.
func LoggerFrom(ctx context.Context) *slog.Logger {
	switch v := ctx.Value(loggerKey{}).(type) {
	case *slog.Logger:
		return v
	case *lazyLogger:
		return v.logger()
	}
	return slog.Default()
}

// NotFoundHandler answers unknown routes with the envelope.
func NotFoundHandler(w http.ResponseWriter, r *http.Request) {
	WriteError(w, r, apperr.New(apperr.NotFound, "no such route"))
}

// MethodNotAllowedHandler answers a known route with the wrong method.
func MethodNotAllowedHandler(w http.ResponseWriter, r *http.Request) {
	WriteError(w, r, apperr.New(apperr.MethodNotAllowed, "method not allowed on this route"))
}
