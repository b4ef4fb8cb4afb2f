// Package httpapi is the HTTP face of the tasks service under /api/v1: it decodes and
// validates requests, calls the store (which applies the domain rules in one transaction
// per use case) and encodes the answers of API.md §3. Every route needs a verified access
// token; every mutating route goes through the idempotency middleware.
package httpapi

import (
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/tasks/internal/notify"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

// DefaultHeartbeat is how often an idle SSE stream gets a comment line, so proxies keep it
// open and a dead client is noticed.
const DefaultHeartbeat = 15 * time.Second

// Config wires the API.
type Config struct {
	Store *store.Store
	// Auth verifies the access token (authn.Middleware).
	Auth func(http.Handler) http.Handler
	// Idempotency replays retried mutations (libs/idempotency); nil passes through.
	Idempotency func(http.Handler) http.Handler
	// Hub streams notifications to SSE clients.
	Hub       *notify.Hub
	Logger    *slog.Logger
	Heartbeat time.Duration
}

// API holds the handlers.
type API struct {
	store     *store.Store
	hub       *notify.Hub
	logger    *slog.Logger
	heartbeat time.Duration
}

// Routes is the /api/v1 router of the tasks service (mount it under /api/v1).
func Routes(cfg Config) http.Handler {
	a := &API{store: cfg.Store, hub: cfg.Hub, logger: cfg.Logger, heartbeat: cfg.Heartbeat}
	if a.heartbeat <= 0 {
		a.heartbeat = DefaultHeartbeat
	}
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler)
	// The calendar feed carries its own secret instead of an access token.
	r.Get("/calendar.ics", a.calendarFeed)
	r.Group(func(r chi.Router) {
		r.Use(cfg.Auth)
		if cfg.Idempotency != nil {
			r.Use(cfg.Idempotency)
		}

		r.Get("/tasks", a.listTasks)
		r.Post("/tasks", a.createTask)
		r.Get("/tasks/{id}", a.getTask)
		r.Patch("/tasks/{id}", a.updateTask)
		r.Put("/tasks/{id}", a.updateTask)
		r.Delete("/tasks/{id}", a.deleteTask)
		r.Post("/tasks/{id}/force-complete", a.forceComplete)
		r.Get("/tasks/{id}/subtasks", a.listSubtasks)
		r.Post("/tasks/{id}/subtasks", a.createSubtask)
		r.Put("/tasks/{id}/subtasks/order", a.reorderSubtasks)
		r.Patch("/subtasks/{id}", a.updateSubtask)
		r.Put("/subtasks/{id}", a.updateSubtask)
		r.Delete("/subtasks/{id}", a.deleteSubtask)

		r.Get("/notes", a.listNotes)
		r.Post("/notes", a.createNote)
		r.Get("/notes/{id}", a.getNote)
		r.Patch("/notes/{id}", a.updateNote)
		r.Put("/notes/{id}", a.updateNote)
		r.Delete("/notes/{id}", a.deleteNote)

		r.Get("/tombstones", a.listTombstones)
		r.Post("/tombstones/{id}/recover", a.recover)

		r.Get("/activity", a.listActivity)

		r.Get("/notifications", a.listNotifications)
		r.Get("/notifications/stream", a.streamNotifications)
		r.Patch("/notifications/{id}/read", a.readNotification)
		r.Post("/notifications/read-all", a.readAllNotifications)
		r.Delete("/notifications/{id}", a.deleteNotification)
		a.scheduleRoutes(r)
	})
	return r
}

// actor is the verified user behind the request.
func actor(r *http.Request) store.Actor {
	c, _ := authn.FromContext(r.Context())
	return store.Actor{UserID: c.UserID, Tier: task.ParseTier(c.Tier), Source: task.SourceUser}
}

// UserID is the verified user of r ("" without a token), for the idempotency middleware.
func UserID(r *http.Request) string {
	c, _ := authn.FromContext(r.Context())
	return c.UserID
}

func page(r *http.Request) (httpx.Page, store.Page, error) {
	p, err := httpx.ParsePage(r)
	return p, store.Page{Offset: p.Offset, Limit: p.Limit}, err
}

// query reads optional typed query parameters, collecting every bad one.
type query struct {
	v apperr.Validator
	q url.Values
}

func newQuery(r *http.Request) *query { return &query{q: r.URL.Query()} }

func (q *query) boolean(name string) *bool {
	s := q.q.Get(name)
	if s == "" {
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.v.Add(name, "must be true or false")
		return nil
	}
	return &b
}

func (q *query) time(name string) *time.Time {
	s := q.q.Get(name)
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		q.v.Add(name, "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
		return nil
	}
	t = t.UTC()
	return &t
}

func (q *query) oneOf(name string, allowed ...string) string {
	s := q.q.Get(name)
	if s == "" {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	q.v.Add(name, "must be one of "+strings.Join(allowed, ", "))
	return ""
}

func (q *query) text(name string, max int) string {
	s := strings.TrimSpace(q.q.Get(name))
	if len([]rune(s)) > max {
		q.v.Add(name, "must be at most "+strconv.Itoa(max)+" characters")
		return ""
	}
	return s
}

// parseTime reads a JSON time field.
func parseTime(v *apperr.Validator, field, s string) *time.Time { return wire.ParseTime(v, field, s) }

func notNull[T any](v *apperr.Validator, field string, o httpx.Optional[T]) *T {
	return wire.NotNull(v, field, o)
}
