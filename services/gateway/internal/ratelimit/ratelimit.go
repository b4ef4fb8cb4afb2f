// Package ratelimit applies the rate-limit classes of API.md §1 (auth per IP, ai and
// general per user) and writes the headers clients rely on: X-RateLimit-*, the IETF
// RateLimit-Policy/RateLimit fields, and on a 429 the envelope with a Retry-After that is
// the real number of seconds until the window resets.
//
// Windows are fixed and aligned to the wall clock (a 1m window resets at every whole
// minute): that makes X-RateLimit-Reset and Retry-After exact, and identical whether the
// counters live in memory or in Redis. A request adds itself to its window's count and
// is refused when the count is then over the limit: one counter operation (one Redis
// round trip), no lock held across it, so concurrent requests never wait for each other
// in the gateway. (Refused requests count too; in a fixed window that changes nothing a
// client can see: the window is spent either way.)
package ratelimit

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

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

// Counter counts requests per key in fixed windows.
type Counter interface {
	// Add adds n to key's count in the window of the given length that starts at start,
	// and returns the count after adding.
	Add(key string, start time.Time, length time.Duration, n int) (int, error)
}

// The header names in canonical form, so writing them is a map assignment (http.Header.Set
// would canonicalize "X-RateLimit-Limit" into a new string on every request). The wire
// form is the same either way.
var (
	keyLimit     = http.CanonicalHeaderKey(HeaderLimit)
	keyRemaining = http.CanonicalHeaderKey(HeaderRemaining)
	keyReset     = http.CanonicalHeaderKey(HeaderReset)
	keyPolicy    = http.CanonicalHeaderKey(HeaderPolicy)
	keyRateLimit = http.CanonicalHeaderKey(HeaderRateLimit)
)

// Limiter is one class: a limit, a key and a counter.
type Limiter struct {
	class   string
	limit   Limit
	key     KeyFunc
	counter Counter
	logger  *slog.Logger
	now     func() time.Time

	// The header values that never change, made once.
	limitValue, policyValue, rateLimitPrefix string
}

// New is a limiter for class. counter is where the counts live: NewMemoryCounter for one
// replica, NewRedisCounter to share them between replicas.
func New(class string, limit Limit, key KeyFunc, counter Counter, logger *slog.Logger) *Limiter {
	return &Limiter{
		class: class, limit: limit, key: key, counter: counter, logger: logger, now: time.Now,
		limitValue:      strconv.Itoa(limit.Requests),
		policyValue:     fmt.Sprintf("%d;w=%d", limit.Requests, int(limit.Window/time.Second)),
		rateLimitPrefix: fmt.Sprintf("limit=%d, remaining=", limit.Requests),
	}
}

// Handler spends one request from the caller's budget and refuses with 429 when it is empty.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := l.now()
		start := now.Truncate(l.limit.Window)
		count, err := l.counter.Add(l.class+":"+l.key(r), start, l.limit.Window, 1)
		if err != nil {
			// The counters failing must not take the API down with them: let it through.
			httpx.LoggerFrom(r.Context()).WarnContext(r.Context(), "rate limit counter failed; request allowed",
				"class", l.class, "err", err)
			next.ServeHTTP(w, r)
			return
		}
		secs := l.writeHeaders(w.Header(), now, start, count)
		if count > l.limit.Requests {
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

// writeHeaders sets the X-RateLimit-* and IETF fields for a request that made the count
// of the window starting at start, and returns the seconds until the window resets (at
// least 1: a client told to wait 0 s would retry at once).
func (l *Limiter) writeHeaders(h http.Header, now, start time.Time, count int) int {
	end := start.Add(l.limit.Window)
	secs := int((end.Sub(now) + time.Second - 1) / time.Second)
	secs = max(1, min(secs, int(l.limit.Window/time.Second)))
	remaining := strconv.Itoa(max(0, l.limit.Requests-count))
	// One backing array for the five values: one allocation instead of five.
	v := [...]string{
		l.limitValue, remaining, strconv.FormatInt(end.Unix(), 10), l.policyValue,
		l.rateLimitPrefix + remaining + ", reset=" + strconv.Itoa(secs),
	}
	vals := v[:]
	h[keyLimit] = vals[0:1:1]
	h[keyRemaining] = vals[1:2:2]
	h[keyReset] = vals[2:3:3]
	h[keyPolicy] = vals[3:4:4]
	h[keyRateLimit] = vals[4:5:5]
	return secs
}
