// Package idempotency makes POST, PATCH, PUT and DELETE requests that carry an
// Idempotency-Key safe to retry (API.md §1, DESIGN-NOTES "Idempotency keys"), over a table
// in the calling service's own schema.
//
// Per (user, key): the first request claims the key (a committed in_flight row), runs the
// handler while the response streams to the client and is recorded, then stores a 2xx or
// 4xx response (state done) or deletes the row on a 5xx, a panic or Forget, so the client
// may retry. A later request with the same key:
//
//   - different method, path (with query) or body SHA-256 → 422 IDEMPOTENCY_KEY_REUSED;
//   - the first still running → 409 IDEMPOTENCY_IN_PROGRESS. Concurrent duplicates are not
//     queued: of N identical requests sent at once, one runs and the others get 409 while
//     it runs (a replay once it is done). The owner refreshes locked_at while it works, so
//     only a crashed owner's row goes stale; after StaleLock a retry takes it over;
//   - done → the stored status, headers and body byte for byte, plus
//     Idempotent-Replayed: true and X-Idempotent-Replayed: true.
//
// Rows live TTL (24 h); an expired row is treated as absent and Purge deletes it.
//
// Streaming responses (SSE) are passed through as they are flushed, and recorded like any
// other: a replay of a completed stream sends the whole recorded stream at once. A handler
// that reports a failure inside a 200 stream (event: error) calls Forget so the key is
// released rather than replaying the failure.
//
// The handler's own writes and the stored response are separate transactions; a crash in
// between leaves an in_flight row that a retry takes over after StaleLock, so handlers
// still rely on their own idempotency (unique constraints, operation ids) for that gap.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/pg"
)

// Header names.
const (
	HeaderKey            = "Idempotency-Key"
	HeaderReplayed       = "Idempotent-Replayed"
	HeaderReplayedLegacy = "X-Idempotent-Replayed"
)

const (
	// DefaultTTL is how long a key is kept (API.md §1: 24 h).
	DefaultTTL = 24 * time.Hour
	// DefaultStaleLock is how long an in_flight row without a heartbeat blocks retries.
	DefaultStaleLock = time.Minute
	// MaxKeyLength is the longest key accepted (API.md §1: 1–255 printable characters).
	MaxKeyLength = 255
	// MaxStoredResponse bounds a recorded body. A larger response still reaches the
	// client, but the key is released instead of stored (a retry runs again).
	MaxStoredResponse = 8 << 20
	// VersionTable keeps this package's migration history apart from the service's own.
	VersionTable = "idempotency_schema_migrations"

	purgeBatch   = 5000
	finalizeTime = 10 * time.Second
)

// notStored are response headers that belong to one exchange, not to the resource: the
// replay carries its own request id, date and framing.
var notStored = map[string]bool{
	"X-Request-Id":       true,
	"Date":               true,
	"Content-Length":     true,
	"Transfer-Encoding":  true,
	"Connection":         true,
	"Keep-Alive":         true,
	"Trailer":            true,
	HeaderReplayed:       true,
	HeaderReplayedLegacy: true,
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate creates the idempotency_keys table in schema, with its own migration history
// (VersionTable) beside the service's. pool's search_path must be schema (pg.Open and
// svc.Open make it so), since the middleware's queries name the table without a schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if !pg.ValidSchema(schema) {
		return fmt.Errorf("idempotency: invalid schema name %q", schema)
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("idempotency: create schema %s: %w", schema, err)
	}
	var current *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		return fmt.Errorf("idempotency: current schema: %w", err)
	}
	if current == nil || *current != schema {
		return fmt.Errorf("idempotency: the pool's search_path must start with %s", schema)
	}
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	if err := pg.MigratePoolTable(ctx, pool, schema, VersionTable, fsys, slog.New(slog.DiscardHandler)); err != nil {
		return fmt.Errorf("idempotency: %w", err)
	}
	return nil
}

// Purge deletes the keys that expired at or before now, in batches so a large backlog
// never holds one long lock. It returns how many it deleted.
func Purge(ctx context.Context, pool *pgxpool.Pool, now time.Time) (int64, error) {
	var total int64
	for {
		tag, err := pool.Exec(ctx, `
			DELETE FROM idempotency_keys
			WHERE (user_id, key) IN (
				SELECT user_id, key FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)`,
			now, purgeBatch)
		if err != nil {
			return total, fmt.Errorf("idempotency: purge: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < purgeBatch {
			return total, nil
		}
	}
}

// Config of the middleware.
type Config struct {
	// TTL of a key (default 24 h).
	TTL time.Duration
	// Required refuses a mutating request without a key (400 IDEMPOTENCY_KEY_REQUIRED).
	Required bool
	// StaleLock is how long an in_flight row whose owner stopped refreshing it blocks
	// retries with 409 before one takes it over (default 60 s).
	StaleLock time.Duration
	// Clock tells the time (default the system clock).
	Clock clock.Clock
}

type middleware struct {
	pool   *pgxpool.Pool
	cfg    Config
	userID func(*http.Request) string
}

// New is the middleware. userID names the caller (the verified token's subject), so it
// goes after authentication; a request without a user is passed through unprotected,
// since keys are scoped per user. Other methods than POST, PATCH, PUT and DELETE pass
// through untouched.
func New(pool *pgxpool.Pool, cfg Config, userID func(*http.Request) string) func(http.Handler) http.Handler {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.StaleLock <= 0 {
		cfg.StaleLock = DefaultStaleLock
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	m := &middleware{pool: pool, cfg: cfg, userID: userID}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next) })
	}
}

func mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// validKey: 1–255 printable ASCII characters.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// fingerprint is what must match for a key to be reused.
type fingerprint struct {
	method, path string
	bodySHA256   []byte
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if !mutating(r.Method) {
		next.ServeHTTP(w, r)
		return
	}
	values := r.Header.Values(HeaderKey)
	if len(values) == 0 {
		if m.cfg.Required {
			httpx.WriteError(w, r, apperr.New(apperr.IdempotencyKeyRequired, "the Idempotency-Key header is required on this request"))
			return
		}
		next.ServeHTTP(w, r)
		return
	}
	key := values[0]
	if len(values) > 1 || !validKey(key) {
		httpx.WriteError(w, r, apperr.Invalid(apperr.Field(HeaderKey, "must be one value of 1–255 printable ASCII characters")))
		return
	}
	user := m.userID(r)
	if user == "" {
		next.ServeHTTP(w, r)
		return
	}
	body, err := httpx.ReadBody(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// The handler reads the same bytes we hashed.
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(body)
	path := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	fp := fingerprint{method: r.Method, path: path, bodySHA256: sum[:]}

	ctx := r.Context()
	c, err := m.claim(ctx, user, key, fp)
	if err != nil {
		httpx.WriteError(w, r, fmt.Errorf("idempotency: claim key: %w", err))
		return
	}
	switch c.outcome {
	case reused:
		httpx.WriteError(w, r, apperr.New(apperr.IdempotencyKeyReused,
			"this Idempotency-Key was used with a different request; use a new key for a new request"))
	case inProgress:
		httpx.WriteError(w, r, apperr.New(apperr.IdempotencyInProgress,
			"a request with this Idempotency-Key is still being processed; retry later"))
	case replay:
		replayResponse(w, c.stored)
	case owner:
		m.run(w, r, next, user, key, c.lockedAt)
	}
}

type outcome int

const (
	owner outcome = iota
	reused
	inProgress
	replay
)

type storedResponse struct {
	status  int
	headers http.Header
	body    []byte
}

type claimResult struct {
	outcome  outcome
	lockedAt time.Time // owner: the lock the row holds, which proves ownership later
	stored   storedResponse
}

// now is the clock's time at the precision Postgres stores, so a lock time read back
// compares equal to the one written.
func (m *middleware) now() time.Time { return m.cfg.Clock.Now().UTC().Truncate(time.Microsecond) }

// claim decides what this request is: the owner of a new (or expired, or stale) key, a
// reuse with another request, a duplicate of one still running, or a replay. The insert
// waits on a concurrent uncommitted insert of the same key, so exactly one of any number
// of simultaneous requests becomes the owner.
func (m *middleware) claim(ctx context.Context, user, key string, fp fingerprint) (claimResult, error) {
	// A row deleted between our insert attempt and our read (its owner got a 5xx) makes
	// the next round insert; more than a few rounds means something else is wrong.
	for range 3 {
		var res claimResult
		var found bool
		err := pg.InTx(ctx, m.pool, func(tx pgx.Tx) error {
			now := m.now()
			tag, err := tx.Exec(ctx, `
				INSERT INTO idempotency_keys
					(user_id, key, method, path, body_sha256, state, locked_at, created_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, 'in_flight', $6, $6, $7)
				ON CONFLICT (user_id, key) DO NOTHING`,
				user, key, fp.method, fp.path, fp.bodySHA256, now, now.Add(m.cfg.TTL))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				res, found = claimResult{outcome: owner, lockedAt: now}, true
				return nil
			}
			var (
				method, path, state string
				sum                 []byte
				status              *int
				headers             []byte
				body                []byte
				lockedAt, expiresAt time.Time
			)
			err = tx.QueryRow(ctx, `
				SELECT method, path, body_sha256, state, response_status, response_headers, response_body,
				       locked_at, expires_at
				FROM idempotency_keys WHERE user_id = $1 AND key = $2
				FOR UPDATE`, user, key).
				Scan(&method, &path, &sum, &state, &status, &headers, &body, &lockedAt, &expiresAt)
			if pg.IsNoRows(err) {
				return nil
			}
			if err != nil {
				return err
			}
			found = true
			switch {
			case !expiresAt.After(now):
				// Expired rows count as absent: this request starts afresh.
				_, err := tx.Exec(ctx, `
					UPDATE idempotency_keys
					SET method = $3, path = $4, body_sha256 = $5, state = 'in_flight', response_status = NULL,
					    response_headers = NULL, response_body = NULL, locked_at = $6, created_at = $6, expires_at = $7
					WHERE user_id = $1 AND key = $2`,
					user, key, fp.method, fp.path, fp.bodySHA256, now, now.Add(m.cfg.TTL))
				res = claimResult{outcome: owner, lockedAt: now}
				return err
			case method != fp.method || path != fp.path || !bytes.Equal(sum, fp.bodySHA256):
				res = claimResult{outcome: reused}
			case state == "done":
				h := http.Header{}
				if len(headers) > 0 {
					if err := json.Unmarshal(headers, &h); err != nil {
						return fmt.Errorf("stored headers: %w", err)
					}
				}
				res = claimResult{outcome: replay, stored: storedResponse{status: *status, headers: h, body: body}}
			case lockedAt.After(now.Add(-m.cfg.StaleLock)):
				res = claimResult{outcome: inProgress}
			default:
				// The owner stopped refreshing its lock: it crashed or lost its database.
				httpx.LoggerFrom(ctx).WarnContext(ctx, "taking over a stale idempotency key", "locked_at", lockedAt)
				_, err := tx.Exec(ctx, `UPDATE idempotency_keys SET locked_at = $3 WHERE user_id = $1 AND key = $2`,
					user, key, now)
				res = claimResult{outcome: owner, lockedAt: now}
				return err
			}
			return nil
		})
		if err != nil {
			return claimResult{}, err
		}
		if found {
			return res, nil
		}
	}
	return claimResult{}, errors.New("the key kept disappearing")
}

func replayResponse(w http.ResponseWriter, s storedResponse) {
	h := w.Header()
	for k, v := range s.headers {
		h[k] = v
	}
	h.Set(HeaderReplayed, "true")
	h.Set(HeaderReplayedLegacy, "true")
	h.Set("Content-Length", fmt.Sprint(len(s.body)))
	w.WriteHeader(s.status)
	_, _ = w.Write(s.body)
}

// run executes the handler as the key's owner and stores or releases the key after.
func (m *middleware) run(w http.ResponseWriter, r *http.Request, next http.Handler, user, key string, lockedAt time.Time) {
	rec := &recorder{w: w}
	lock := &ownerLock{at: lockedAt}
	stopBeat := m.heartbeat(r.Context(), user, key, lock)
	finished := false
	defer func() {
		stopBeat()
		// A panic (answered 500 by the recovery middleware further out) releases the
		// key like any 5xx, then continues unwinding.
		m.finish(r.Context(), rec, user, key, lock, finished)
	}()
	ctx := context.WithValue(r.Context(), recorderKey{}, rec)
	next.ServeHTTP(rec, r.WithContext(ctx))
	finished = true
}

// ownerLock is the locked_at value that proves this request still owns the row; the
// heartbeat moves it forward.
type ownerLock struct {
	mu sync.Mutex
	at time.Time
}

// heartbeat refreshes locked_at while the handler runs, so a long request (an AI stream)
// is never taken over by a retry; only a dead owner's lock goes stale.
func (m *middleware) heartbeat(ctx context.Context, user, key string, lock *ownerLock) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(m.cfg.StaleLock / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				lock.mu.Lock()
				now := m.now()
				tag, err := m.pool.Exec(ctx, `
					UPDATE idempotency_keys SET locked_at = $4
					WHERE user_id = $1 AND key = $2 AND state = 'in_flight' AND locked_at = $3`,
					user, key, lock.at, now)
				if err == nil && tag.RowsAffected() == 1 {
					lock.at = now
				}
				lock.mu.Unlock()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// finish stores a 2xx/4xx response or releases the key. It uses a context of its own:
// the client going away must not leave the key in_flight.
func (m *middleware) finish(reqCtx context.Context, rec *recorder, user, key string, lock *ownerLock, finished bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), finalizeTime)
	defer cancel()
	logger := httpx.LoggerFrom(reqCtx)
	lock.mu.Lock()
	lockedAt := lock.at
	lock.mu.Unlock()

	status, header, body, overflow := rec.result()
	store := finished && status < 500 && !overflow && !rec.forget.Load()
	if !store {
		_, err := m.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND locked_at = $3`,
			user, key, lockedAt)
		if err != nil {
			// The row stays in_flight until StaleLock, then a retry takes it over.
			logger.ErrorContext(ctx, "idempotency: could not release key", "err", err)
		}
		if overflow {
			logger.WarnContext(ctx, "idempotency: response too large to store; key released", "limit", MaxStoredResponse)
		}
		return
	}
	stored := http.Header{}
	for k, v := range header {
		if !notStored[http.CanonicalHeaderKey(k)] {
			stored[k] = v
		}
	}
	headersJSON, err := json.Marshal(stored)
	if err != nil {
		logger.ErrorContext(ctx, "idempotency: encode headers", "err", err)
		return
	}
	tag, err := m.pool.Exec(ctx, `
		UPDATE idempotency_keys
		SET state = 'done', response_status = $4, response_headers = $5, response_body = $6
		WHERE user_id = $1 AND key = $2 AND state = 'in_flight' AND locked_at = $3`,
		user, key, lockedAt, status, headersJSON, body)
	switch {
	case err != nil:
		logger.ErrorContext(ctx, "idempotency: could not store response", "err", err)
	case tag.RowsAffected() == 0:
		// Another request took the row over as stale; its response will be the one kept.
		logger.WarnContext(ctx, "idempotency: key was taken over before the response was stored")
	}
}

type recorderKey struct{}

// Forget tells the middleware not to store the response of this request and to release
// its key, as it does for a 5xx: for a failure the handler could only report inside an
// already started 200 response (an SSE event: error). It returns false when the request
// is not under an idempotency key.
func Forget(ctx context.Context) bool {
	rec, ok := ctx.Value(recorderKey{}).(*recorder)
	if ok {
		rec.forget.Store(true)
	}
	return ok
}

// recorder passes the response through to the client as it is written (and flushed)
// and keeps a copy of the status, headers and body.
type recorder struct {
	w      http.ResponseWriter
	forget atomic.Bool

	mu       sync.Mutex
	status   int
	header   http.Header
	body     bytes.Buffer
	overflow bool
}

func (rec *recorder) Header() http.Header { return rec.w.Header() }

func (rec *recorder) WriteHeader(code int) {
	rec.mu.Lock()
	if code >= 200 && rec.status == 0 {
		rec.status = code
		rec.header = rec.w.Header().Clone()
	}
	rec.mu.Unlock()
	rec.w.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	rec.mu.Lock()
	if rec.status == 0 {
		rec.status = http.StatusOK
		rec.header = rec.w.Header().Clone()
	}
	if !rec.overflow {
		if rec.body.Len()+len(b) > MaxStoredResponse {
			rec.overflow = true
			rec.body = bytes.Buffer{}
		} else {
			rec.body.Write(b)
		}
	}
	rec.mu.Unlock()
	return rec.w.Write(b)
}

// Flush sends what was written so far (SSE); it is what makes streaming pass through.
func (rec *recorder) Flush() { _ = rec.FlushError() }

// FlushError is the form http.ResponseController prefers.
func (rec *recorder) FlushError() error {
	rec.mu.Lock()
	if rec.status == 0 {
		rec.status = http.StatusOK
		rec.header = rec.w.Header().Clone()
	}
	rec.mu.Unlock()
	return http.NewResponseController(rec.w).Flush()
}

// Unwrap lets http.ResponseController reach the connection (deadlines, hijack).
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

func (rec *recorder) result() (status int, header http.Header, body []byte, overflow bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	status, header = rec.status, rec.header
	if status == 0 { // the handler wrote nothing: net/http answers 200 with no body
		status, header = http.StatusOK, rec.w.Header().Clone()
	}
	return status, header, bytes.Clone(rec.body.Bytes()), rec.overflow
}
