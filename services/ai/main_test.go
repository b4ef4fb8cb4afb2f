package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/pgtest"
	"github.com/perpetua-flow/backend/libs/svctest"

	"github.com/perpetua-flow/backend/services/ai/internal/aitest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// migrateTemplate prepares the template database every test's database is cloned from.
func migrateTemplate(ctx context.Context, databaseURL string) error {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = ServiceName
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrateSchema(ctx, pool)
}

// env is one ai service started with Run on :0 against its own database and NATS server,
// a fake OpenAI and Deepgram, and stand-ins for billing and tasks.
type env struct {
	base     string
	issuer   *authntest.Issuer
	openai   *aitest.OpenAI
	deepgram *aitest.Deepgram
	billing  *aitest.Billing
	tasks    *aitest.Tasks
	js       jetstream.JetStream
	db       *pgxpool.Pool
}

// setup starts the service. edit may change its environment before it starts.
func setup(t *testing.T, edit ...func(map[string]string)) *env {
	t.Helper()
	natsURL := natsembed.StartTest(t)
	dbURL := pgtest.NewDatabase(t, ServiceName, migrateTemplate)
	e := &env{issuer: authntest.NewIssuer(t), openai: aitest.NewOpenAI(t), deepgram: aitest.NewDeepgram(t)}

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.billing = aitest.StartBilling(t, nc)
	e.tasks = aitest.StartTasks(t, nc)
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}

	vars := map[string]string{
		"DATABASE_URL":        dbURL,
		"DATABASE_MAX_CONNS":  "6",
		"DATABASE_MIN_CONNS":  "1",
		"NATS_URL":            natsURL,
		"HTTP_ADDR":           "127.0.0.1:0",
		"LOG_LEVEL":           "error",
		"OPENAI_API_KEY":      "sk-test",
		"OPENAI_BASE_URL":     e.openai.URL,
		"DEEPGRAM_API_KEY":    "dg-test",
		"DEEPGRAM_BASE_URL":   e.deepgram.URL,
		"AI_PROVIDER_TIMEOUT": "10s",
	}
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	poolCfg.ConnConfig.RuntimeParams["search_path"] = ServiceName
	poolCfg.MaxConns = 2
	if e.db, err = pgxpool.NewWithConfig(context.Background(), poolCfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.db.Close)
	for k, v := range e.issuer.Env() {
		vars[k] = v
	}
	for _, f := range edit {
		f(vars)
	}
	e.base = svctest.Start(t, Run, vars, nil)
	return e
}

// user is a signed-in user with one session (one token).
type user struct {
	id    string
	tier  string
	token string
}

func (e *env) user(t *testing.T, tier string, credits int) user {
	t.Helper()
	u := user{id: uuid.NewString(), tier: tier}
	u.token = e.issuer.TokenWith(t, authn.Claims{UserID: u.id, Tier: tier}, authn.AccessTokenTTL)
	if credits > 0 {
		e.billing.Grant(u.id, credits)
	}
	return u
}

// newSession is another sign-in of the same user.
func (e *env) newSession(t *testing.T, u user) user {
	t.Helper()
	u.token = e.issuer.TokenWith(t, authn.Claims{UserID: u.id, Tier: u.tier}, authn.AccessTokenTTL)
	return u
}

type req struct {
	path    string
	body    any
	key     string // Idempotency-Key; "" makes a new one, "-" sends none
	headers map[string]string
}

func (e *env) do(t *testing.T, u user, r req) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(e.request(t, u, r))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// request builds the HTTP request of r for u.
func (e *env) request(t *testing.T, u user, r req) *http.Request {
	t.Helper()
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequest(http.MethodPost, e.base+"/api/v1"+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if u.token != "" {
		hr.Header.Set("Authorization", "Bearer "+u.token)
	}
	switch r.key {
	case "":
		hr.Header.Set("Idempotency-Key", uuid.NewString())
	case "-":
	default:
		hr.Header.Set("Idempotency-Key", r.key)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	return hr
}

// result is a decoded JSON answer.
type result struct {
	status int
	header http.Header
	raw    []byte
	data   map[string]any
	code   string
	msg    string
}

func (e *env) call(t *testing.T, u user, r req) result {
	t.Helper()
	resp := e.do(t, u, r)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := result{status: resp.StatusCode, header: resp.Header, raw: raw}
	var env struct {
		Data  map[string]any `json:"data"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: not JSON (%d): %s", r.path, resp.StatusCode, raw)
	}
	res.data = env.Data
	if env.Error != nil {
		res.code, res.msg = env.Error.Code, env.Error.Message
	}
	return res
}

func (r result) expect(t *testing.T, status int, code string) result {
	t.Helper()
	if r.status != status || r.code != code {
		t.Fatalf("status %d code %q, want %d %q: %s", r.status, r.code, status, code, r.raw)
	}
	return r
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name string
	data map[string]any
}

// readEvent reads the next event from r.
func readEvent(t *testing.T, r *bufio.Reader) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (event so far %+v)", err, ev)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if ev.name != "" {
				return ev
			}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				t.Fatalf("event data: %v", err)
			}
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextEvent waits for the first event on subject in the AI stream.
func (e *env) nextEvent(t *testing.T, subject string) events.Event {
	t.Helper()
	return e.eventMatching(t, subject, func(events.Event) bool { return true })
}

// eventMatching waits for the first event on subject in the AI stream that match accepts.
func (e *env) eventMatching(t *testing.T, subject string, match func(events.Event) bool) events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := e.js.OrderedConsumer(ctx, "AI", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := c.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("no matching %s event: %v", subject, err)
		}
		ev, err := events.Parse(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		if match(ev) {
			return ev
		}
	}
}

// publish puts an event on its stream as another service's relay would and returns its
// stream sequence.
func (e *env) publish(t *testing.T, ev events.Event) uint64 {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(ev.Type)
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := e.js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// waitConsumed waits until the durable consumer on stream has acknowledged seq.
func (e *env) waitConsumed(t *testing.T, stream, durable string, seq uint64) {
	t.Helper()
	eventually(t, durable+" to acknowledge "+stream+" #"+fmt.Sprint(seq), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := e.js.Consumer(ctx, stream, durable)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream >= seq
	})
}

func TestServiceRunsAndAnswersHealth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, path := range []string{"/health/live", "/health/ready", "/metrics"} {
		resp, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	// Without a token the API refuses before anything else.
	e.call(t, user{}, req{path: "/ai/chat", body: map[string]any{"message": "hi"}}).expect(t, 401, "UNAUTHORIZED")
	u := e.user(t, "free", 1)
	e.call(t, u, req{path: "/ai/nothing-here", body: map[string]any{}}).expect(t, 404, "NOT_FOUND")
	hr := e.request(t, u, req{path: "/ai/chat"})
	hr.Method = http.MethodGet
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET /ai/chat: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := ReadConfig(func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://x", "NATS_URL": "nats://x"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Base.HTTPAddr != "127.0.0.1:8083" || cfg.OpenAIBaseURL != "https://api.openai.com/v1" || cfg.OpenAIModel != "gpt-4o-mini" ||
		cfg.ProviderTimeout != 30*time.Second || cfg.OpenAIKey != "" {
		t.Fatalf("defaults %+v", cfg)
	}
	if _, err := ReadConfig(func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://x", "NATS_URL": "nats://x", "OPENAI_BASE_URL": "ftp://x", "AI_PROVIDER_TIMEOUT": "soon"}[k]
	}); err == nil || !strings.Contains(err.Error(), "OPENAI_BASE_URL") || !strings.Contains(err.Error(), "AI_PROVIDER_TIMEOUT") {
		t.Fatalf("bad config accepted or not named: %v", err)
	}
}

func TestMigrateOnAnEmptyDatabaseTwice(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, "ai-empty", func(context.Context, string) error { return nil })
	vars := map[string]string{"DATABASE_URL": dbURL, "NATS_URL": "nats://127.0.0.1:1", "LOG_LEVEL": "error"}
	for i := 0; i < 2; i++ {
		if err := Migrate(context.Background(), func(k string) string { return vars[k] }, io.Discard); err != nil {
			t.Fatalf("migrate %d: %v", i+1, err)
		}
	}
}

// metrics is the service's /metrics text.
func (e *env) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
