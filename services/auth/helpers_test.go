package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/natsx"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
	"github.com/perpetua-flow/backend/services/auth/internal/google/googletest"
	"github.com/perpetua-flow/backend/services/auth/internal/httpapi"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

// bundle is one running auth service with its own database, NATS server and fake Google.
type bundle struct {
	tb     testing.TB
	url    string // http://host:port of the running service
	clock  *clock.Fake
	google *googletest.Google
	pool   *pgxpool.Pool // the service's database, for checks
	js     jetstream.JetStream
	env    map[string]string
	stop   func()
}

type options struct {
	devLogin bool
	keys     []string // AUTH_SIGNING_KEYS; default one shared test key
}

func withDevLogin(o *options) { o.devLogin = true }

// setup starts a service on :0 with a fake clock at the current time (so tokens also
// verify against real clocks) and stops it at cleanup.
func setup(tb testing.TB, opts ...func(*options)) *bundle {
	tb.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.keys == nil {
		o.keys = []string{writeKey(tb, tb.TempDir(), "key.pem", authntest.Key(tb))}
	}
	dbURL := pgtest.NewDatabase(tb, "auth", func(ctx context.Context, u string) error {
		pool, err := pg.Open(ctx, pg.Config{URL: u, Schema: store.Schema})
		if err != nil {
			return err
		}
		defer pool.Close()
		return store.Migrate(ctx, pool)
	})
	natsURL := natsembed.StartTest(tb)
	g := googletest.New(tb)
	b := &bundle{
		tb:     tb,
		clock:  clock.NewFake(time.Now()),
		google: g,
		env: map[string]string{
			"HTTP_ADDR":          "127.0.0.1:0",
			"DATABASE_URL":       dbURL,
			"DATABASE_MAX_CONNS": "30",
			"NATS_URL":           natsURL,
			"LOG_LEVEL":          "debug",
			"AUTH_SIGNING_KEYS":  strings.Join(o.keys, ","),
			"GOOGLE_CLIENT_IDS":  "another-client.apps.googleusercontent.com," + g.ClientID,
			"GOOGLE_JWKS_URL":    g.URL,
			"AUTH_DEV_LOGIN":     fmt.Sprint(o.devLogin),
		},
	}
	pool, err := pg.Open(context.Background(), pg.Config{URL: dbURL, Schema: store.Schema, MaxConns: 4})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	b.pool = pool
	nc, err := nats.Connect(natsURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	b.js, err = jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	b.start()
	return b
}

// start runs the service with b.env (again, after a stop, to restart it).
func (b *bundle) start() {
	tb := b.tb
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	var logs io.Writer = io.Discard
	if os.Getenv("AUTH_TEST_LOG") != "" {
		logs = os.Stderr
	}
	go func() {
		done <- run(ctx, func(k string) string { return b.env[k] }, logs, func(addr string) { addrc <- addr }, b.clock)
	}()
	select {
	case addr := <-addrc:
		b.url = "http://" + addr
	case err := <-done:
		cancel()
		tb.Fatalf("service did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		tb.Fatal("service did not start within 60s")
	}
	stopped := false
	b.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("service stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Error("service did not stop within 30s")
		}
	}
	tb.Cleanup(b.stop)
}

func writeKey(tb testing.TB, dir, name string, key any) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(tb testing.TB, dst any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, dst); err != nil {
		tb.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode is the code of an error envelope ("" when the body is not one).
func (r response) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r response) errorFields() []string {
	var e struct {
		Error struct {
			Details []struct {
				Field string `json:"field"`
			} `json:"details"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	var out []string
	for _, d := range e.Error.Details {
		out = append(out, d.Field)
	}
	return out
}

// do sends a request; body is JSON-encoded unless it is a string (sent as is) or nil.
func (b *bundle) do(method, path, token string, body any) response {
	b.tb.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			b.tb.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	if err != nil {
		b.tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "auth-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.tb.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// tokens is the token answer.
type tokens = httpapi.TokenResponse

func (b *bundle) mustTokens(r response) tokens {
	b.tb.Helper()
	if r.status != http.StatusOK {
		b.tb.Fatalf("status %d: %s", r.status, r.body)
	}
	var t tokens
	r.json(b.tb, &t)
	return t
}

func (b *bundle) googleSignIn(p googletest.Person) tokens {
	b.tb.Helper()
	return b.mustTokens(b.do("POST", "/api/v1/auth/google", "", map[string]string{"id_token": b.google.Token(b.tb, p, b.clock.Now())}))
}

func (b *bundle) devLogin(email string) tokens {
	b.tb.Helper()
	return b.mustTokens(b.do("POST", "/api/v1/auth/dev/login", "", map[string]string{"email": email, "name": "Dev User"}))
}

func (b *bundle) refresh(refreshToken string) response {
	b.tb.Helper()
	return b.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": refreshToken})
}

// verifier checks access tokens against the running service's JWKS, as other services do.
func (b *bundle) verifier() *authn.Verifier {
	return authn.NewVerifier(authn.VerifierConfig{JWKSURL: b.url + "/.well-known/jwks.json", Clock: b.clock})
}

// waitEvent reads the AUTH stream until an event of typ about userID arrives.
func (b *bundle) waitEvent(typ, userID string) events.Event {
	b.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cons, err := b.js.OrderedConsumer(ctx, natsx.StreamAuth.Name, jetstream.OrderedConsumerConfig{FilterSubjects: []string{typ}})
	if err != nil {
		b.tb.Fatal(err)
	}
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		ev, err := events.Parse(msg.Data())
		if err != nil {
			b.tb.Fatalf("bad envelope %s: %v", msg.Data(), err)
		}
		if ev.Subject == userID {
			if got := msg.Headers().Get(jetstream.MsgIDHeader); got != ev.ID {
				b.tb.Errorf("Nats-Msg-Id %q, want the event id %q", got, ev.ID)
			}
			return ev
		}
	}
	b.tb.Fatalf("no %s event for %s within 15s", typ, userID)
	return events.Event{}
}

// outboxCount is how many events of typ about userID auth has queued.
func (b *bundle) outboxCount(typ, userID string) int {
	b.tb.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM outbox WHERE type = $1 AND payload->>'subject' = $2`, typ, userID).Scan(&n); err != nil {
		b.tb.Fatal(err)
	}
	return n
}

// eventually polls f until it is true or 15 s pass.
func eventually(tb testing.TB, what string, f func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newEmail() string { return "dev-" + uuid.NewString() + "@example.com" }

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
