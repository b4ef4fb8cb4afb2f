package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/svctest"
	"github.com/perpetua-flow/backend/services/gateway/internal/redistest"
)

// upstream is a fake service: it answers every request with what it received, so a test
// can see which service got the request and how.
type upstream struct {
	name string
	srv  *httptest.Server

	mu        sync.Mutex
	notReady  bool
	sseStep   chan struct{} // the SSE handler waits on it between its two chunks
	sseFinish chan struct{} // closed when the SSE handler has returned
}

// echo is what a fake upstream answers.
type echo struct {
	Upstream string `json:"upstream"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Query    string `json:"query"`
	XFF      string `json:"xff"`
	XFProto  string `json:"xf_proto"`
	Rid      string `json:"request_id"`
	Auth     string `json:"authorization"`
	BodyLen  int    `json:"body_len"`
	Trace    string `json:"traceparent"`
}

func newUpstream(t testing.TB, name string) *upstream {
	t.Helper()
	u := &upstream{name: name, sseStep: make(chan struct{}), sseFinish: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/health/ready":
		u.mu.Lock()
		down := u.notReady
		u.mu.Unlock()
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	case strings.HasSuffix(r.URL.Path, "/stream"):
		defer close(u.sseFinish)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "event: chunk\ndata: {\"text\":\"first\"}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.sseStep:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "event: final\ndata: {}\n\n")
		return
	case strings.HasSuffix(r.URL.Path, "/slow"):
		<-r.Context().Done() // never answers; the gateway's timeout must
		return
	case strings.HasSuffix(r.URL.Path, "/delayed"):
		// Answers after 800ms, like a model that takes its time.
		select {
		case <-time.After(800 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	case strings.HasSuffix(r.URL.Path, "/hangup"):
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	n, _ := io.Copy(io.Discard, r.Body)
	// The service echoes the request id and sets the security headers too, as every
	// service does; the gateway must not send them twice.
	w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	httpx.WriteJSON(w, http.StatusOK, echo{
		Upstream: u.name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		XFF: r.Header.Get("X-Forwarded-For"), XFProto: r.Header.Get("X-Forwarded-Proto"),
		Rid: r.Header.Get("X-Request-ID"), Auth: r.Header.Get("Authorization"), BodyLen: int(n),
		Trace: r.Header.Get("Traceparent"),
	})
}

type testEnv struct {
	t         testing.TB
	url       string
	issuer    *authntest.Issuer
	upstreams map[string]*upstream
	client    *http.Client
}

// setup starts four fake upstreams, a token issuer and the gateway on :0 with env on top
// of the defaults, and stops them when the test ends.
func setup(t testing.TB, env map[string]string) *testEnv {
	t.Helper()
	e := &testEnv{t: t, issuer: authntest.NewIssuer(t), upstreams: map[string]*upstream{}, client: &http.Client{Timeout: 20 * time.Second}}
	vars := map[string]string{
		"HTTP_ADDR": "127.0.0.1:0",
		"LOG_LEVEL": "error",
	}
	for k, v := range e.issuer.Env() {
		vars[k] = v
	}
	for _, name := range []string{UpstreamAuth, UpstreamTasks, UpstreamAI, UpstreamBilling} {
		u := newUpstream(t, name)
		e.upstreams[name] = u
		vars["UPSTREAM_"+strings.ToUpper(name)+"_URL"] = u.srv.URL
	}
	for k, v := range env {
		vars[k] = v
	}
	e.url = svctest.Start(t, Run, vars, nil)
	return e
}

func (e *testEnv) bearer() string { return e.issuer.Bearer(e.t, uuid.NewString(), authn.TierFree) }

// do sends a request; header values are set as given ("" values are skipped).
func (e *testEnv) do(method, path string, body io.Reader, headers map[string]string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	e.t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, b, err)
	}
	return v
}

// wantError checks an error envelope: status, code and request_id = X-Request-ID.
func wantError(t *testing.T, resp *http.Response, status int, code string) httpx.ErrorBody {
	t.Helper()
	body := decode[httpx.ErrorBody](t, resp)
	if resp.StatusCode != status || string(body.Error.Code) != code {
		t.Fatalf("got %d %s (%q), want %d %s", resp.StatusCode, body.Error.Code, body.Error.Message, status, code)
	}
	if rid := resp.Header.Get("X-Request-ID"); rid == "" || body.Error.RequestID != rid {
		t.Fatalf("request_id %q, X-Request-ID %q", body.Error.RequestID, rid)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return body
}

func TestRoutingTable(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	id := uuid.NewString()
	cases := []struct {
		method, path, upstream string
	}{
		{"POST", "/api/v1/auth/google", "auth"},
		{"POST", "/api/v1/auth/google/callback", "auth"},
		{"POST", "/api/v1/auth/refresh", "auth"},
		{"POST", "/api/v1/auth/logout", "auth"},
		{"POST", "/api/v1/auth/dev/login", "auth"},
		{"GET", "/api/v1/auth/sessions", "auth"},
		{"DELETE", "/api/v1/auth/sessions/" + id, "auth"},
		{"GET", "/api/v1/users/me", "auth"},
		{"PATCH", "/api/v1/users/me", "auth"},
		{"GET", "/.well-known/jwks.json", "auth"},
		{"GET", "/api/v1/.well-known/jwks.json", "auth"},
		{"GET", "/api/v1/tasks?completed=false&limit=5", "tasks"},
		{"POST", "/api/v1/tasks", "tasks"},
		{"PUT", "/api/v1/tasks/" + id, "tasks"},
		{"POST", "/api/v1/tasks/" + id + "/force-complete", "tasks"},
		{"PUT", "/api/v1/tasks/" + id + "/subtasks/order", "tasks"},
		{"PATCH", "/api/v1/subtasks/" + id, "tasks"},
		{"POST", "/api/v1/reminders", "tasks"},
		{"DELETE", "/api/v1/reminders/" + id, "tasks"},
		{"GET", "/api/v1/notes", "tasks"},
		{"PATCH", "/api/v1/notes/" + id, "tasks"},
		{"POST", "/api/v1/notes/" + id + "/convert", "ai"},
		{"POST", "/api/v1/templates/" + id + "/instantiate", "tasks"},
		{"POST", "/api/v1/focus/start", "tasks"},
		{"GET", "/api/v1/tombstones", "tasks"},
		{"POST", "/api/v1/tombstones/" + id + "/recover", "tasks"},
		{"GET", "/api/v1/achievements", "tasks"},
		{"GET", "/api/v1/achievements/me", "tasks"},
		{"GET", "/api/v1/activity?entity_type=task", "tasks"},
		{"POST", "/api/v1/notifications/read-all", "tasks"},
		{"POST", "/api/v1/calendar/token", "tasks"},
		{"GET", "/api/v1/calendar.ics?token=abc", "tasks"},
		{"POST", "/api/v1/ai/chat", "ai"},
		{"POST", "/api/v1/ai/confirm-action", "ai"},
		{"POST", "/api/v1/ai/generate-subtasks", "ai"},
		{"POST", "/api/v1/ai/transcribe", "ai"},
		{"GET", "/api/v1/ai/credits", "billing"},
		{"GET", "/api/v1/credits/balance", "billing"},
		{"GET", "/api/v1/credits/history?offset=25", "billing"},
		{"POST", "/api/v1/credits/purchase", "billing"},
		{"GET", "/api/v1/subscription", "billing"},
		{"POST", "/api/v1/subscription/checkout", "billing"},
		{"POST", "/api/v1/subscription/purchase-credits", "billing"},
		{"POST", "/api/v1/webhooks/checkout", "billing"},
	}
	token := e.bearer()
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			resp := e.do(c.method, c.path, strings.NewReader(`{}`), map[string]string{"Authorization": token, "Content-Type": "application/json"})
			got := decode[echo](t, resp)
			path, query, _ := strings.Cut(c.path, "?")
			if resp.StatusCode != 200 || got.Upstream != c.upstream || got.Path != path || got.Query != query || got.Method != c.method {
				t.Fatalf("got %d %+v, want %s %s?%s at %s", resp.StatusCode, got, c.method, path, query, c.upstream)
			}
			if got.Auth != token {
				t.Fatalf("Authorization not forwarded: %q", got.Auth)
			}
		})
	}
}

func TestProtectedRoutesNeedAValidToken(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	foreign := foreignToken(t) // signed by a key the gateway does not know
	expired := e.issuer.TokenWith(t, authn.Claims{UserID: uuid.NewString(), IssuedAt: time.Now().Add(-time.Hour)}, authn.AccessTokenTTL)
	paths := []string{
		"/api/v1/tasks", "/api/v1/users/me", "/api/v1/auth/sessions", "/api/v1/ai/chat",
		"/api/v1/ai/credits", "/api/v1/credits/balance", "/api/v1/notes/" + uuid.NewString() + "/convert",
		"/api/v1/notifications/stream", "/api/v1/subscription",
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			wantError(t, e.do("GET", p, nil, nil), 401, "UNAUTHORIZED")
			wantError(t, e.do("GET", p, nil, map[string]string{"Authorization": "Bearer not.a.jwt"}), 401, "INVALID_TOKEN")
			wantError(t, e.do("GET", p, nil, map[string]string{"Authorization": "Bearer " + foreign}), 401, "INVALID_TOKEN")
			wantError(t, e.do("GET", p, nil, map[string]string{"Authorization": "Bearer " + expired}), 401, "TOKEN_EXPIRED")
		})
	}
}

// foreignToken is well formed, with our issuer and audience, but signed by a stranger's key.
func foreignToken(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, authn.MinKeyBits)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := authn.NewSigner([]*rsa.PrivateKey{key}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := signer.Sign(authn.Claims{UserID: uuid.NewString(), SessionID: uuid.NewString(), Email: "x@example.test", Tier: authn.TierFree}, authn.AccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestPublicRoutesNeedNoToken(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for _, p := range []string{
		"/api/v1/auth/google", "/api/v1/auth/google/callback", "/api/v1/auth/refresh", "/api/v1/auth/logout",
		"/api/v1/auth/dev/login", "/.well-known/jwks.json", "/api/v1/.well-known/jwks.json",
		"/api/v1/webhooks/checkout", "/api/v1/calendar.ics?token=x",
	} {
		resp := e.do("POST", p, strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"})
		if resp.StatusCode != 200 {
			t.Errorf("%s without a token: %d", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs"} {
		if resp := e.do("GET", p, nil, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{"CORS_ORIGINS": "http://localhost:3000,http://127.0.0.1:3000"})

	resp := e.do("OPTIONS", "/api/v1/tasks", nil, map[string]string{
		"Origin":                         "http://localhost:3000",
		"Access-Control-Request-Method":  "PATCH",
		"Access-Control-Request-Headers": "authorization, content-type, idempotency-key, x-request-id, x-task-id",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("preflight without a token: %d", resp.StatusCode)
	}
	h := resp.Header
	if h.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "PATCH") {
		t.Fatalf("preflight headers: %v", h)
	}
	for _, want := range []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "X-Task-Id"} {
		if !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), strings.ToLower(want)) {
			t.Fatalf("Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
		}
	}

	resp = e.do("OPTIONS", "/api/v1/tasks", nil, map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Fatalf("unknown origin allowed: %q", v)
	}

	resp = e.do("GET", "/api/v1/tasks", nil, map[string]string{"Origin": "http://127.0.0.1:3000", "Authorization": e.bearer()})
	if resp.StatusCode != 200 || resp.Header.Values("Access-Control-Allow-Origin")[0] != "http://127.0.0.1:3000" || len(resp.Header.Values("Access-Control-Allow-Origin")) != 1 {
		t.Fatalf("actual request: %d %v", resp.StatusCode, resp.Header.Values("Access-Control-Allow-Origin"))
	}
	exposed := strings.ToLower(resp.Header.Get("Access-Control-Expose-Headers"))
	for _, want := range []string{"x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit-policy", "ratelimit", "retry-after", "idempotent-replayed"} {
		if !strings.Contains(exposed, want) {
			t.Fatalf("Expose-Headers %q lacks %s", exposed, want)
		}
	}
}

func TestRequestIDIsEchoedAndPropagated(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	rid := "client-" + uuid.NewString()
	resp := e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": e.bearer(), "X-Request-ID": rid})
	got := decode[echo](t, resp)
	if ids := resp.Header.Values("X-Request-ID"); len(ids) != 1 || ids[0] != rid || got.Rid != rid {
		t.Fatalf("response ids %v, upstream saw %q, sent %q", ids, got.Rid, rid)
	}

	resp = e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": e.bearer(), "X-Request-ID": "bad id; <script>"})
	got = decode[echo](t, resp)
	if id := resp.Header.Get("X-Request-ID"); id == "" || id == "bad id; <script>" || got.Rid != id {
		t.Fatalf("insane id: response %q, upstream %q", id, got.Rid)
	}

	resp = e.do("GET", "/api/v1/tasks", nil, nil)
	body := wantError(t, resp, 401, "UNAUTHORIZED")
	if body.Error.RequestID == "" {
		t.Fatal("no request id on a gateway error")
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	want := map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "DENY",
		"Referrer-Policy":           "no-referrer",
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
		"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
	}
	for _, p := range []string{"/api/v1/tasks", "/nope", "/health/live", "/openapi.json"} {
		resp := e.do("GET", p, nil, map[string]string{"Authorization": e.bearer()})
		for k, v := range want {
			if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s = %q, want once %q", p, k, got, v)
			}
		}
	}
	resp := e.do("GET", "/docs", nil, nil)
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "http") {
		t.Fatalf("docs CSP %q", csp)
	}
}

func TestUnknownPathsAre404Envelopes(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for _, p := range []string{"/", "/nope", "/api/v1/unknown", "/api/v2/tasks", "/api/v1/webhooks/other"} {
		wantError(t, e.do("GET", p, nil, map[string]string{"Authorization": e.bearer()}), 404, "NOT_FOUND")
	}
	// Paths an upstream could read differently from the gateway never leave it, signed in
	// or not (the client would clean "..", so these are sent raw).
	for _, p := range []string{
		"/api/v1/calendar.ics/../tasks", "/api/v1/tasks/../calendar.ics", "/api/v1/webhooks/checkout/..",
		"/api/v1//tasks", "/api/v1/tasks/./x", "/api/v1/tasks%2F..%2Fusers/me", "/api/v1/tasks/x%5C..",
	} {
		for _, auth := range []string{"", e.bearer()} {
			if code := rawStatus(t, e.url, p, auth); code != 404 {
				t.Errorf("%s (token %v): %d, want 404", p, auth != "", code)
			}
		}
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	_ = l.Close()
	e := setup(t, map[string]string{"UPSTREAM_BILLING_URL": deadURL, "UPSTREAM_TIMEOUT": "300ms"})
	token := e.bearer()

	body := wantError(t, e.do("GET", "/api/v1/credits/balance", nil, map[string]string{"Authorization": token}), 503, "SERVICE_UNAVAILABLE")
	if !strings.Contains(body.Error.Message, "billing") {
		t.Fatalf("message %q does not name the service", body.Error.Message)
	}
	wantError(t, e.do("GET", "/api/v1/tasks/slow", nil, map[string]string{"Authorization": token}), 503, "SERVICE_UNAVAILABLE")
	wantError(t, e.do("GET", "/api/v1/tasks/hangup", nil, map[string]string{"Authorization": token}), 502, "BAD_GATEWAY")

	// Readiness follows the upstreams: billing is down.
	resp := e.do("GET", "/health/ready", nil, nil)
	ready := decode[struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}](t, resp)
	if resp.StatusCode != 503 || ready.Checks["billing"] != "failed" || ready.Checks["tasks"] != "ok" {
		t.Fatalf("ready: %d %+v", resp.StatusCode, ready)
	}
}

// The ai service waits for a model; its routes get UPSTREAM_TIMEOUT_AI, so a slow but
// successful answer is not cut off by the general timeout.
func TestAIRoutesHaveTheirOwnTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{"UPSTREAM_TIMEOUT": "300ms", "UPSTREAM_TIMEOUT_AI": "5s"})
	token := e.bearer()
	if resp := e.do("POST", "/api/v1/ai/delayed", strings.NewReader(`{}`), map[string]string{"Authorization": token, "Content-Type": "application/json"}); resp.StatusCode != 200 {
		t.Fatalf("ai route answering after 800ms: %d", resp.StatusCode)
	}
	wantError(t, e.do("GET", "/api/v1/tasks/delayed", nil, map[string]string{"Authorization": token}), 503, "SERVICE_UNAVAILABLE")
}

func TestReadyFollowsUpstreamReadiness(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	if resp := e.do("GET", "/health/ready", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("all upstreams ready: %d", resp.StatusCode)
	}
	u := e.upstreams[UpstreamAI]
	u.mu.Lock()
	u.notReady = true
	u.mu.Unlock()
	if resp := e.do("GET", "/health/ready", nil, nil); resp.StatusCode != 503 {
		t.Fatalf("ai not ready: %d", resp.StatusCode)
	}
}

func TestSSEArrivesChunkByChunk(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{"UPSTREAM_TIMEOUT": "300ms"})
	for _, c := range []struct{ path, upstream string }{
		{"/api/v1/ai/chat/stream", UpstreamAI},
		{"/api/v1/notifications/stream", UpstreamTasks},
	} {
		t.Run(c.path, func(t *testing.T) {
			u := e.upstreams[c.upstream]
			resp := e.do("POST", c.path, strings.NewReader(`{"message":"hi"}`), map[string]string{"Authorization": e.bearer(), "Content-Type": "application/json"})
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			// The upstream is blocked until we say so: reading the first event proves it
			// came through before the upstream finished.
			first := make([]byte, len("event: chunk\ndata: {\"text\":\"first\"}\n\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("first chunk: %v", err)
			}
			select {
			case <-u.sseFinish:
				t.Fatal("the upstream finished before the first chunk was read")
			default:
			}
			if !strings.Contains(string(first), "first") {
				t.Fatalf("first chunk %q", first)
			}
			// The stream outlives UPSTREAM_TIMEOUT (300ms): SSE routes have no total
			// timeout, so the upstream's request is still open well after it.
			select {
			case <-u.sseFinish:
				t.Fatal("the gateway cancelled the stream")
			case <-time.After(600 * time.Millisecond):
			}
			close(u.sseStep)
			rest, err := io.ReadAll(resp.Body)
			if err != nil || !strings.Contains(string(rest), "event: final") {
				t.Fatalf("rest %q: %v", rest, err)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t *testing.T, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	token := e.bearer()
	big := bytes.Repeat([]byte("a"), httpx.MaxBodyBytes+1)
	wantError(t, e.do("POST", "/api/v1/tasks", bytes.NewReader(big), map[string]string{"Authorization": token, "Content-Type": "application/json"}), 413, "PAYLOAD_TOO_LARGE")

	// Without a Content-Length (chunked), the limit trips while the body streams upstream.
	req, _ := http.NewRequest("POST", e.url+"/api/v1/tasks", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	wantError(t, resp, 413, "PAYLOAD_TOO_LARGE")

	exact := bytes.Repeat([]byte("a"), httpx.MaxBodyBytes)
	got := decode[echo](t, e.do("POST", "/api/v1/tasks", bytes.NewReader(exact), map[string]string{"Authorization": token, "Content-Type": "application/json"}))
	if got.BodyLen != httpx.MaxBodyBytes {
		t.Fatalf("1 MiB body arrived as %d bytes", got.BodyLen)
	}
}

func TestXForwardedFor(t *testing.T) {
	t.Parallel()
	t.Run("untrusted peer", func(t *testing.T) {
		t.Parallel()
		e := setup(t, map[string]string{"RATE_LIMIT_AUTH": "2/1h"})
		got := decode[echo](t, e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": e.bearer(), "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}))
		if got.XFF != "127.0.0.1" || got.XFProto != "http" {
			t.Fatalf("upstream saw X-Forwarded-For %q proto %q; want the socket address only", got.XFF, got.XFProto)
		}
		// A spoofed X-Forwarded-For does not buy a new per-IP budget.
		statuses := withinOneWindow(t, func() []int {
			var s []int
			for i := range 3 {
				resp := e.do("POST", "/api/v1/auth/refresh", nil, map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i+1)})
				s = append(s, resp.StatusCode)
			}
			return s
		})
		if fmt.Sprint(statuses) != "[200 200 429]" {
			t.Fatalf("statuses %v, want [200 200 429]", statuses)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		t.Parallel()
		e := setup(t, map[string]string{"RATE_LIMIT_AUTH": "1/1h", "TRUSTED_PROXIES": "127.0.0.0/8,::1"})
		got := decode[echo](t, e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": e.bearer(), "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}))
		if got.XFF != "203.0.113.9, 127.0.0.1" || got.XFProto != "https" {
			t.Fatalf("upstream saw %q %q", got.XFF, got.XFProto)
		}
		// Behind a trusted proxy, each client address has its own budget; the left-most
		// (client-chosen) entries of the chain do not count.
		statuses := withinOneWindow(t, func() []int {
			net := fmt.Sprintf("198.51.%d", nextNet())
			var s []int
			for i := range 3 {
				resp := e.do("POST", "/api/v1/auth/refresh", nil, map[string]string{"X-Forwarded-For": fmt.Sprintf("10.9.9.9, %s.%d", net, i+1)})
				s = append(s, resp.StatusCode)
			}
			resp := e.do("POST", "/api/v1/auth/refresh", nil, map[string]string{"X-Forwarded-For": "10.9.9.8, " + net + ".1"})
			return append(s, resp.StatusCode)
		})
		if fmt.Sprint(statuses) != "[200 200 200 429]" {
			t.Fatalf("statuses %v, want [200 200 200 429]", statuses)
		}
	})
}

var netSeq struct {
	sync.Mutex
	n int
}

func nextNet() int {
	netSeq.Lock()
	defer netSeq.Unlock()
	netSeq.n++
	return netSeq.n
}

// withinOneWindow runs f until a run does not straddle a wall-clock hour boundary (the
// fixed windows reset on it), at most three times.
func withinOneWindow[T any](t *testing.T, f func() T) T {
	t.Helper()
	for range 3 {
		before := time.Now().Truncate(time.Hour)
		v := f()
		if time.Now().Truncate(time.Hour).Equal(before) {
			return v
		}
	}
	t.Fatal("three runs straddled an hour boundary")
	var zero T
	return zero
}

func TestRateLimitHeadersAnd429(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{"RATE_LIMIT_GENERAL": "3/1m", "RATE_LIMIT_AI": "2/1h"})

	var (
		last  *http.Response
		reset int64
	)
	for attempt := 0; ; attempt++ {
		token := e.bearer()
		var resets []string
		var remaining []string
		for range 3 {
			resp := e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": token})
			if resp.StatusCode != 200 {
				t.Fatalf("within the limit: %d", resp.StatusCode)
			}
			if resp.Header.Get("X-RateLimit-Limit") != "3" || resp.Header.Get("RateLimit-Policy") != "3;w=60" {
				t.Fatalf("headers %v", resp.Header)
			}
			resets = append(resets, resp.Header.Get("X-RateLimit-Reset"))
			remaining = append(remaining, resp.Header.Get("X-RateLimit-Remaining"))
			if !strings.HasPrefix(resp.Header.Get("RateLimit"), "limit=3, remaining="+resp.Header.Get("X-RateLimit-Remaining")+", reset=") {
				t.Fatalf("RateLimit %q", resp.Header.Get("RateLimit"))
			}
		}
		last = e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": token})
		resets = append(resets, last.Header.Get("X-RateLimit-Reset"))
		if resets[0] != resets[3] && attempt < 2 {
			continue // the minute turned during the run; the counts restarted
		}
		if fmt.Sprint(remaining) != "[2 1 0]" {
			t.Fatalf("remaining %v", remaining)
		}
		reset, _ = strconv.ParseInt(resets[3], 10, 64)
		break
	}
	now := time.Now()
	wantError(t, last, 429, "RATE_LIMIT_EXCEEDED")
	retry, err := strconv.Atoi(last.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 60 {
		t.Fatalf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	// Retry-After is the real time left: the window ends at X-RateLimit-Reset.
	left := time.Unix(reset, 0).Sub(now)
	if d := time.Duration(retry)*time.Second - left; d < -time.Second || d > time.Second {
		t.Fatalf("Retry-After %ds but the window resets in %s", retry, left)
	}
	if want := fmt.Sprintf("limit=3, remaining=0, reset=%d", retry); last.Header.Get("RateLimit") != want {
		t.Fatalf("RateLimit %q, want %q", last.Header.Get("RateLimit"), want)
	}
	if last.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("remaining %q", last.Header.Get("X-RateLimit-Remaining"))
	}

	// Another user has a budget of their own.
	if resp := e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": e.bearer()}); resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Remaining") != "2" {
		t.Fatalf("second user: %d remaining %s", resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
	}

	// The ai class is a budget of its own (2/1h here), per user.
	statuses := withinOneWindow(t, func() []int {
		token := e.bearer()
		var s []int
		for range 3 {
			s = append(s, e.do("POST", "/api/v1/ai/chat", nil, map[string]string{"Authorization": token}).StatusCode)
		}
		return s
	})
	if fmt.Sprint(statuses) != "[200 200 429]" {
		t.Fatalf("ai statuses %v", statuses)
	}
}

func TestRetryAfterIsTheRealWait(t *testing.T) {
	t.Parallel()
	e := setup(t, map[string]string{"RATE_LIMIT_GENERAL": "1/2s"})
	token := e.bearer()
	var limited *http.Response
	for range 3 { // at most one window boundary can fall between two requests
		if resp := e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": token}); resp.StatusCode == 429 {
			limited = resp
			break
		}
	}
	if limited == nil {
		t.Fatal("never limited")
	}
	reset, _ := strconv.ParseInt(limited.Header.Get("X-RateLimit-Reset"), 10, 64)
	retry, _ := strconv.Atoi(limited.Header.Get("Retry-After"))
	resetAt := time.Unix(reset, 0)
	if retry < 1 || retry > 2 || time.Until(resetAt) > time.Duration(retry)*time.Second {
		t.Fatalf("Retry-After %d, reset in %s", retry, time.Until(resetAt))
	}
	// Poll: refused until the window ends, allowed from then on.
	var allowedAt time.Time
	waitFor(t, 5*time.Second, func() bool {
		resp := e.do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": token})
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode == 200 {
			allowedAt = time.Now()
			return true
		}
		return false
	})
	if allowedAt.Before(resetAt) || allowedAt.Sub(resetAt) > time.Second {
		t.Fatalf("allowed at %s, window reset at %s", allowedAt, resetAt)
	}
}

func TestDocsAndOpenAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	spec := decode[map[string]any](t, e.do("GET", "/openapi.json", nil, nil))
	if spec["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", spec["openapi"])
	}
	resp := e.do("GET", "/docs", nil, nil)
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<script src="/docs/assets/redoc.standalone.js">`) {
		t.Fatalf("docs: %d %s", resp.StatusCode, page)
	}
	resp = e.do("GET", "/docs/assets/redoc.standalone.js", nil, nil)
	js, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || len(js) < 100_000 {
		t.Fatalf("redoc bundle: %d %q %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(js))
	}
	if resp := e.do("GET", "/docs/assets/", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("asset directory listing: %d", resp.StatusCode)
	}
}

func TestConfigIsValidatedAtStart(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"RATE_LIMIT_AI":      "lots",
		"UPSTREAM_TASKS_URL": "ftp://x",
		"TRUSTED_PROXIES":    "10.0.0.0/33",
		"UPSTREAM_TIMEOUT":   "soon",
	}
	err := Run(context.Background(), func(k string) string { return bad[k] }, io.Discard, nil)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, name := range []string{"RATE_LIMIT_AI", "UPSTREAM_TASKS_URL", "TRUSTED_PROXIES", "UPSTREAM_TIMEOUT"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestPortTakenIsAClearError(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := map[string]string{"HTTP_ADDR": l.Addr().String()}
	err = Run(context.Background(), func(k string) string { return env[k] }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("got %v", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("not a listen error: %v", err)
	}
}

func TestRateLimitsHoldAcrossReplicasWithRedis(t *testing.T) {
	t.Parallel()
	env := map[string]string{"RATE_LIMIT_REDIS_URL": redistest.Start(t), "RATE_LIMIT_GENERAL": "3/1h"}
	replicas := []*testEnv{setup(t, env), setup(t, env)}
	statuses := withinOneWindow(t, func() []int {
		token := replicas[0].bearer() // both trust the same test key
		var s []int
		for i := range 5 {
			s = append(s, replicas[i%2].do("GET", "/api/v1/tasks", nil, map[string]string{"Authorization": token}).StatusCode)
		}
		return s
	})
	if fmt.Sprint(statuses) != "[200 200 200 429 429]" {
		t.Fatalf("statuses across two gateways %v: the budget must be shared", statuses)
	}
}

// BenchmarkProxy measures what the gateway adds to a request: token verification, the rate
// limit, the middleware and the extra hop, against calling the upstream directly, over
// real connections from 64 goroutines (make bench's 64 connections). The limits are
// raised so that nothing is refused (a benchmark must say so: it does here).
func BenchmarkProxy(b *testing.B) {
	e := setup(b, map[string]string{"RATE_LIMIT_GENERAL": "1000000000/1m"})
	token := e.bearer()
	transport := &http.Transport{MaxIdleConnsPerHost: 256}
	client := &http.Client{Transport: transport}
	defer transport.CloseIdleConnections()
	run := func(b *testing.B, url string) {
		b.ReportAllocs()
		b.SetParallelism(max(1, benchConns/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", token)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("direct", func(b *testing.B) { run(b, e.upstreams[UpstreamTasks].srv.URL+"/api/v1/tasks") })
	b.Run("gateway", func(b *testing.B) { run(b, e.url+"/api/v1/tasks") })
}

func TestTraceContinuesUpstreamAndMetricsCountRoutes(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	got := decode[echo](t, e.do("GET", "/api/v1/tasks", nil, map[string]string{
		"Authorization": e.bearer(), "Traceparent": "00-" + traceID + "-" + clientSpan + "-01",
	}))
	parts := strings.Split(got.Trace, "-")
	if len(parts) != 4 || parts[1] != traceID || parts[2] == clientSpan {
		t.Fatalf("upstream traceparent %q: want trace %s continued from the gateway's span", got.Trace, traceID)
	}
	resp := e.do("GET", "/metrics", nil, nil)
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `http_requests_total{method="GET",route="/api/v1/tasks",service="gateway",status="200"} 1`) {
		t.Fatalf("metrics lack the proxied route:\n%s", body)
	}
}

// rawStatus sends GET path exactly as written (no client-side cleaning) and returns the status.
func rawStatus(t *testing.T, base, path, auth string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET " + path + " HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
	if auth != "" {
		req += "Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}
