package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

// testParallel is how many end-to-end tests run at once unless -parallel says otherwise.
// They wait on Postgres and JetStream fsyncs far more than they compute, so the default
// (GOMAXPROCS, 2 in CI) would leave the package mostly idle and past a minute.
const testParallel = "8"

func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		if err := flag.Set("test.parallel", testParallel); err != nil {
			panic(err)
		}
	}
	pgtest.Main(m)
}

// env is one running tasks service with its own database, NATS server and token issuer.
type env struct {
	URL     string
	DBURL   string
	NATSURL string
	Issuer  *authntest.Issuer
	Pool    *pgxpool.Pool
	client  *http.Client
	vars    map[string]string
}

func migrateURL(ctx context.Context, u string) error {
	pool, err := pg.Open(ctx, pg.Config{URL: u, Schema: name, MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrate(ctx, pool)
}

func setup(t testing.TB, extra ...string) *env {
	t.Helper()
	dbURL := pgtest.NewDatabase(t, "tasks", migrateURL)
	natsURL := natsembed.StartTest(t)
	iss := authntest.NewIssuer(t)
	vars := map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": natsURL, "HTTP_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
		"DATABASE_MAX_CONNS": "40", "SSE_HEARTBEAT": "200ms",
	}
	for k, v := range iss.Env() {
		vars[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		vars[extra[i]] = extra[i+1]
	}
	e := &env{DBURL: dbURL, NATSURL: natsURL, Issuer: iss, vars: vars}
	e.URL = e.start(t)
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = name
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 256}
	t.Cleanup(tr.CloseIdleConnections)
	e.Pool, e.client = pool, &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return e
}

// start runs one more replica of the service on the env's database and NATS and returns
// its base URL; it stops at cleanup.
func (e *env) start(t testing.TB) string {
	t.Helper()
	vars := e.vars
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, func(k string) string { return vars[k] }, io.Discard, func(a string) { addr <- a })
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("service did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("service did not stop")
		}
	})
	return url
}

// user is a signed-in user of e.
type user struct {
	ID    string
	Token string
	e     *env
}

func (e *env) user(t testing.TB, tier string) *user {
	t.Helper()
	id := uuid.NewString()
	return &user{ID: id, Token: e.Issuer.Token(t, id, tier), e: e}
}

// response is one HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

func (r response) data(t testing.TB) map[string]any {
	t.Helper()
	d, ok := r.json(t)["data"].(map[string]any)
	if !ok {
		t.Fatalf("no data object in %s", r.Body)
	}
	return d
}

func (r response) list(t testing.TB) ([]any, map[string]any) {
	t.Helper()
	m := r.json(t)
	d, ok := m["data"].([]any)
	if !ok {
		t.Fatalf("no data array in %s", r.Body)
	}
	p, _ := m["pagination"].(map[string]any)
	return d, p
}

// do sends body (a string is sent as is, anything else as JSON) with the user's token.
func (u *user) do(t testing.TB, method, path string, body any, headers ...string) response {
	t.Helper()
	token := ""
	if u != nil {
		token = u.Token
	}
	return u.e.raw(t, method, path, token, body, headers...)
}

func (e *env) raw(t testing.TB, method, path, token string, body any, headers ...string) response {
	t.Helper()
	r, err := e.send1(method, path, token, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send1 is one request; it reports failures instead of failing the test, so benchmark
// goroutines can use it.
func (e *env) send1(method, path, token string, body any, headers ...string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		return response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// want fails unless r has status.
func want(t testing.TB, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
}

// wantError checks the exact error envelope of API.md §1.
func wantError(t testing.TB, r response, status int, code string, fields ...string) map[string]any {
	t.Helper()
	want(t, r, status)
	m := r.json(t)
	if len(m) != 1 {
		t.Fatalf("error body has keys beyond error: %s", r.Body)
	}
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r.Body)
	}
	if len(e) != 4 {
		t.Fatalf("error must have exactly code, message, details, request_id: %s", r.Body)
	}
	if e["code"] != code {
		t.Fatalf("code %v, want %s: %s", e["code"], code, r.Body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("empty message: %s", r.Body)
	}
	if rid, _ := e["request_id"].(string); rid == "" || rid != r.Header.Get("X-Request-ID") {
		t.Fatalf("request_id %v does not match X-Request-ID %q", e["request_id"], r.Header.Get("X-Request-ID"))
	}
	details, ok := e["details"].([]any)
	if !ok {
		t.Fatalf("details must be an array: %s", r.Body)
	}
	for _, f := range fields {
		found := false
		for _, d := range details {
			if dm, _ := d.(map[string]any); dm["field"] == f {
				found = true
			}
		}
		if !found {
			t.Fatalf("no detail for field %q: %s", f, r.Body)
		}
	}
	return e
}

func (u *user) createTask(t testing.TB, body map[string]any) map[string]any {
	t.Helper()
	r := u.do(t, "POST", "/api/v1/tasks", body)
	want(t, r, http.StatusCreated)
	return r.data(t)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
