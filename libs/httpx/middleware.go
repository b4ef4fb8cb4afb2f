package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// RequestIDHeader carries the request id end to end.
const RequestIDHeader = "X-Request-ID"

type requestIDKey struct{}

// RequestIDFrom is the request id of ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// WithRequestID stores id in ctx.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// requestIDCanonical is RequestIDHeader in http.CanonicalHeaderKey's form, for indexing a header
// map directly: Get and Set would canonicalise "X-Request-ID" into a new string on every
// call. (RequestIDHeader keeps its spelling: NATS headers, which libs/rpc sets with it,
// are case-sensitive.)
const requestIDCanonical = "X-Request-Id"

// NewRequestID is 16 random bytes in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	var out [32]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// SaneRequestID accepts a client's id when it is 1–128 characters of [A-Za-z0-9._-].
func SaneRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// RequestID echoes a sane X-Request-ID or makes one, sets it on the response and puts it
// in the context together with a logger that carries it.
func RequestID(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var id string
			if v := r.Header[requestIDCanonical]; len(v) > 0 {
				id = v[0]
			}
			if !SaneRequestID(id) {
				id = NewRequestID()
			}
			// One value slice for both maps: neither side modifies it in place.
			v := []string{id}
			r.Header[requestIDCanonical] = v
			w.Header()[requestIDCanonical] = v
			ctx := WithRequestID(r.Context(), id)
			ctx = withLazyLogger(ctx, logger, []any{"request_id", id})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// SecurityHeaders sets the headers of API.md §1 on every response.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// One allocation for the five values instead of one per Set; each header gets a
		// slice capped at its one value, so an Add to one cannot overwrite another.
		v := [...]string{"nosniff", "DENY", "no-referrer", "max-age=31536000; includeSubDomains",
			"default-src 'none'; frame-ancestors 'none'"}
		vals := v[:]
		h["X-Content-Type-Options"] = vals[0:1:1]
		h["X-Frame-Options"] = vals[1:2:2]
		h["Referrer-Policy"] = vals[2:3:3]
		h["Strict-Transport-Security"] = vals[3:4:4]
		if h.Get("Content-Security-Policy") == "" {
			h["Content-Security-Policy"] = vals[4:5:5]
		}
		next.ServeHTTP(w, r)
	})
}

// Recover turns a panic in a handler into a logged INTERNAL_ERROR.
func Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				LoggerFrom(r.Context()).ErrorContext(r.Context(), "panic in handler", "panic", v, "stack", string(debug.Stack()))
				WriteError(w, r, apperr.New(apperr.Internal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// LimitBody refuses bodies over MaxBodyBytes before a handler reads them.
func LimitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			WriteError(w, r, apperr.New(apperr.PayloadTooLarge, "request body exceeds 1 MiB"))
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}
