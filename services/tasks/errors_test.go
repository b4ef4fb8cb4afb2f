package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/authn"
)

// TestErrorEnvelopes covers the edge errors of this service with the exact envelope
// (the domain errors are asserted where they arise in the other tests).
func TestErrorEnvelopes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	tk := u.createTask(t, map[string]any{"title": "mine"})

	wantError(t, e.raw(t, "GET", "/api/v1/tasks", "", nil), 401, "UNAUTHORIZED")
	wantError(t, e.raw(t, "GET", "/api/v1/tasks", "not.a.jwt", nil), 401, "INVALID_TOKEN")
	expired := e.Issuer.TokenWith(t, authn.Claims{UserID: u.ID, Tier: "free", IssuedAt: time.Now().Add(-time.Hour)}, 15*time.Minute)
	wantError(t, e.raw(t, "GET", "/api/v1/tasks", expired, nil), 401, "TOKEN_EXPIRED")

	// Another user's task and a malformed id are both 404, never a hint or a 500.
	o := e.user(t, "free")
	for _, r := range []response{
		o.do(t, "GET", "/api/v1/tasks/"+id(tk), nil),
		o.do(t, "PATCH", "/api/v1/tasks/"+id(tk), map[string]any{"title": "theirs"}),
		o.do(t, "DELETE", "/api/v1/tasks/"+id(tk), nil),
		o.do(t, "POST", "/api/v1/tasks/"+id(tk)+"/force-complete", map[string]any{"version": 1}),
		o.do(t, "POST", "/api/v1/tasks/"+id(tk)+"/subtasks", map[string]any{"title": "x"}),
		u.do(t, "GET", "/api/v1/tasks/123", nil),
		u.do(t, "GET", "/api/v1/tasks/"+uuid.NewString(), nil),
		u.do(t, "POST", "/api/v1/tombstones/nope/recover", nil),
		u.do(t, "GET", "/api/v1/notes/"+uuid.NewString(), nil),
		u.do(t, "GET", "/api/v1/nothing-here", nil),
	} {
		wantError(t, r, 404, "NOT_FOUND")
	}
	if got := u.do(t, "GET", "/api/v1/tasks/"+id(tk), nil).data(t); got["title"] != "mine" {
		t.Fatal("another user changed the task")
	}

	r := u.do(t, "POST", "/api/v1/tasks", `{"title":"x"}`, "Content-Type", "text/plain")
	wantError(t, r, 415, "UNSUPPORTED_MEDIA_TYPE")
	big := `{"title":"x","description":"` + strings.Repeat("x", 1<<20) + `"}`
	wantError(t, u.do(t, "POST", "/api/v1/tasks", big), 413, "PAYLOAD_TOO_LARGE")
	wantError(t, u.do(t, "POST", "/api/v1/tasks", ``), 400, "VALIDATION_ERROR", "body")
	wantError(t, u.do(t, "POST", "/api/v1/tasks", `{}`), 400, "VALIDATION_ERROR", "title")
	wantError(t, u.do(t, "POST", "/api/v1/tasks", `{"title":"x","due_date":"soon","priority":"urgent"}`), 400, "VALIDATION_ERROR", "due_date", "priority")
	wantError(t, u.do(t, "POST", "/api/v1/tasks", `{"title":"x","id":"mine"}`), 400, "VALIDATION_ERROR", "id")
	wantError(t, u.do(t, "DELETE", "/api/v1/tasks", nil), 405, "METHOD_NOT_ALLOWED")

	// A request without a body is never refused for its Content-Type.
	r = e.raw(t, "POST", "/api/v1/notifications/read-all", u.Token, nil)
	want(t, r, 200)

	// Security headers and the request id on every answer.
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if r.Header.Get(k) != v {
			t.Fatalf("%s = %q", k, r.Header.Get(k))
		}
	}
	r = u.do(t, "GET", "/api/v1/tasks", nil, "X-Request-ID", "client-id-1")
	if r.Header.Get("X-Request-ID") != "client-id-1" {
		t.Fatal("request id not echoed")
	}
	for _, p := range []string{"/health/live", "/health/ready", "/metrics"} {
		if r := e.raw(t, "GET", p, "", nil); r.Status != http.StatusOK {
			t.Fatalf("%s: %d", p, r.Status)
		}
	}
}
