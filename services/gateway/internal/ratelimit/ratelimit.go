// Package ratelimit applies the rate-limit classes of API.md §1 (auth per IP, ai and
// general per user) with go-chi/httprate, and writes the headers clients rely on:
// X-RateLimit-*, the IETF RateLimit-Policy/RateLimit fields, and on a 429 the envelope
// with a Retry-After that is the real number of seconds until the window resets.
//
// Windows are fixed and aligned to the wall clock (a 1m window resets at every whole
// minute) rather than httprate's sliding estimate: that makes X-RateLimit-Reset and
// Retry-After exact, and identical whether the counters live in memory or in Redis.
package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/httprate"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
)

// Limit is N requests per window.
type Limit struct {
	Requests int
	Window   time.Duration
}

func (l Limit) String() string { return fmt.Sprintf("%d/%s", l.Requests, l.Window) }

// Limits are the three classes of API.md §1.
type Limits struct {
	Auth, AI, General Limit
}

// Class names, also the Redis key prefixes.
const (
	ClassAuth    = "auth"
	ClassAI      = "ai"
	ClassGeneral = "general"
)

// Header names written on every limited response.
const (
	HeaderLimit      = "X-RateLimit-Limit"
	HeaderRemaining  = "X-RateLimit-Remaining"
	HeaderReset      = "X-RateLimit-Reset"
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRateLimit  = "RateLimit"
	HeaderRetryAfter = "Retry-After"
)

// KeyFunc names the budget a request spends from ("user:<sub>", "ip:<addr>").
type KeyFunc func(r *http.Request) string

// Limiter is one class: a limit, a key and a counter.
type Limiter struct {
	class  string
	limit  Limit
	key    KeyFunc
	rl     *httprate.RateLimiter
	logger *slog.Logger
	now    func() time.Time
}

type counterErrKey struct{}

// New is a limiter for class. counter is where the counts live: NewMemoryCounter for one
// replica, NewRedisCounter to share them between replicas.
func New(class string, limit Limit, key KeyFunc, counter httprate.LimitCounter, logger *slog.Logger) *Limiter {
	l := &Limiter{class: class, limit: limit, key: key, logger: logger, now: time.Now}
	l.rl = httprate.NewRateLimiter(limit.Requests, limit.Window,
		httprate.WithLimitCounter(counter),
		httprate.WithResponseHeaders(httprate.ResponseHeaders{
			Limit: HeaderLimit, Remaining: HeaderRemaining, Reset: HeaderReset,
			// Retry-After is ours: httprate would send the whole window length.
		}),
		httprate.WithErrorHandler(func(_ http.ResponseWriter, r *http.Request, err error) {
			if p, ok := r.Context().Value(counterErrKey{}).(*error); ok {
				*p = err
			}
		}),
	)
	return l
}

// Handler spends one request from the caller's budget and refuses with 429 when it is empty.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var counterErr error
		rr := r.WithContext(context.WithValue(r.Context(), counterErrKey{}, &counterErr))
		key := l.class + ":" + l.key(r)
		limited := l.rl.OnLimit(w, rr, key)
		if counterErr != nil {
			// The counters failing must not take the API down with them: let it through.
			httpx.LoggerFrom(r.Context()).WarnContext(r.Context(), "rate limit counter failed; request allowed",
				"class", l.class, "err", counterErr)
			next.ServeHTTP(w, r)
			return
		}
		secs := l.writeHeaders(w.Header())
		if limited {
			httpx.WriteError(w, r, &apperr.Error{
				Code:    apperr.RateLimitExceeded,
				Message: fmt.Sprintf("rate limit of %d requests per %s exceeded; retry in %d s", l.limit.Requests, l.limit.Window, secs),
				Headers: map[string]string{HeaderRetryAfter: strconv.Itoa(secs)},
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeHeaders adds the IETF fields from httprate's X-RateLimit-* and returns the seconds
// until the window resets (at least 1: a client told to wait 0 s would retry at once).
func (l *Limiter) writeHeaders(h http.Header) int {
	resetUnix, _ := strconv.ParseInt(h.Get(HeaderReset), 10, 64)
	left := time.Unix(resetUnix, 0).Sub(l.now())
	secs := int((left + time.Second - 1) / time.Second)
	window := int(l.limit.Window / time.Second)
	secs = max(1, min(secs, window))
	remaining, _ := strconv.Atoi(h.Get(HeaderRemaining))
	remaining = max(0, remaining)
	h.Set(HeaderRemaining, strconv.Itoa(remaining))
	h.Set(HeaderPolicy, fmt.Sprintf("%d;w=%d", l.limit.Requests, window))
	h.Set(HeaderRateLimit, fmt.Sprintf("limit=%d, remaining=%d, reset=%d", l.limit.Requests, remaining, secs))
	return secs
}
