package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/pgtest"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
	"github.com/perpetua-flow/backend/libs/svctest"
	"github.com/perpetua-flow/backend/services/billing/internal/checkout"
	"github.com/perpetua-flow/backend/services/billing/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Webhook secrets of the tests: "old" and "new" are both active, as during a rotation.
const (
	oldSecret = "whsec_old_0123456789"
	newSecret = "whsec_new_9876543210"
)

func migrateTemplate(ctx context.Context, url string) error {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = migrations.Schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrations.Apply(ctx, pool, nil)
}

type service struct {
	url    string
	clock  *clock.Fake
	nc     *nats.Conn
	js     jetstream.JetStream
	issuer *authntest.Issuer
	db     *pgxpool.Pool
}

// start is a few hours before a UTC midnight that is also a month end.
var start = time.Date(2026, 1, 31, 20, 0, 0, 0, time.UTC)

// setup runs the whole service on :0 against its own database and NATS server.
func setup(t *testing.T, env map[string]string) *service {
	t.Helper()
	issuer := authntest.NewIssuer(t)
	natsURL := natsembed.StartTest(t)
	vars := map[string]string{
		"DATABASE_URL":             pgtest.NewDatabase(t, "billing", migrateTemplate),
		"NATS_URL":                 natsURL,
		"HTTP_ADDR":                "127.0.0.1:0",
		"LOG_LEVEL":                "error",
		"JWKS_URL":                 issuer.JWKSURL,
		"CHECKOUT_WEBHOOK_SECRETS": oldSecret + "," + newSecret,
		"DATABASE_MAX_CONNS":       "10",
	}
	for k, v := range env {
		vars[k] = v
	}
	clk := clock.NewFake(start)
	s := &service{clock: clk, issuer: issuer}
	pcfg, err := pgxpool.ParseConfig(vars["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.RuntimeParams["search_path"] = migrations.Schema
	if s.db, err = pgxpool.NewWithConfig(context.Background(), pcfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.db.Close)
	s.url = svctest.Start(t, func(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(string)) error {
		return run(ctx, getenv, stdout, ready, clk)
	}, vars, nil)
	var nc *nats.Conn
	nc, err = nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s.nc = nc
	if s.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (r response) data(t *testing.T) map[string]any {
	t.Helper()
	d, ok := r.json(t)["data"].(map[string]any)
	if !ok {
		t.Fatalf("no data object in %s", r.body)
	}
	return d
}

func (r response) code(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (s *service) do(t *testing.T, method, path, token string, body []byte, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (s *service) webhook(t *testing.T, body []byte, signature string) response {
	t.Helper()
	h := map[string]string{}
	if signature != "" {
		h[checkout.SignatureHeader] = signature
	}
	return s.do(t, http.MethodPost, "/api/v1/webhooks/checkout", "", body, h)
}

func capturedBody(t *testing.T, user, kind string, amount int) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": "evt_" + uuid.NewString(), "type": "payment_captured", "version": "1.0.0", "created_on": time.Now().UTC(),
		"data": map[string]any{"id": "pay_" + uuid.NewString(), "amount": 999, "currency": "USD", "reference": "ord-1",
			"metadata": map[string]any{"user_id": user, "kind": kind, "amount": amount}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type balance struct {
	Daily, Subscription, Purchased, Kickstart, Total int
}

func (s *service) balance(t *testing.T, token string) balance {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/credits/balance", token, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("balance: %d %s", r.status, r.body)
	}
	var out struct{ Data balance }
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Data
}

func (s *service) historyTotal(t *testing.T, token string) int {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/credits/history?limit=100", token, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	return int(r.json(t)["pagination"].(map[string]any)["total"].(float64))
}

// publish sends an event as its producer's relay would (msgID lets a test redeliver it).
func (s *service) publish(t *testing.T, ev events.Event, msgID string) {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: ev.Type, Data: b, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, msgID)
	if _, err := s.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func (s *service) userCreated(t *testing.T, user string) events.Event {
	t.Helper()
	ev, err := events.New(authevents.Source, authevents.TypeUserCreated, user, authevents.UserCreated{UserID: user, Email: user + "@example.com", CreatedAt: s.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *service) consume(t *testing.T, user string, n int) (billingrpc.ConsumeResponse, error) {
	t.Helper()
	return rpc.Call[billingrpc.ConsumeRequest, billingrpc.ConsumeResponse](context.Background(), s.nc, billingrpc.SubjectConsume,
		billingrpc.ConsumeRequest{UserID: user, OperationID: uuid.NewString(), Amount: n, Reason: "ai.chat"})
}

func TestOpsAndAuth(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	for _, p := range []string{"/health/live", "/health/ready", "/metrics"} {
		if r := s.do(t, http.MethodGet, p, "", nil, nil); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
	r := s.do(t, http.MethodGet, "/api/v1/credits/balance", "", nil, nil)
	if r.status != http.StatusUnauthorized || r.header.Get("X-Request-ID") == "" {
		t.Fatalf("no token: %d %s", r.status, r.body)
	}
	token := s.issuer.Token(t, "", "free")
	r = s.do(t, http.MethodGet, "/api/v1/subscription", token, nil, nil)
	d := r.data(t)
	if r.status != http.StatusOK || d["tier"] != "free" || d["status"] != nil || d["features"].(map[string]any)["max_subtasks"].(float64) != 10 {
		t.Fatalf("subscription of a new user: %s", r.body)
	}
	if r := s.do(t, http.MethodGet, "/api/v1/credits/history?limit=101", token, nil, nil); r.status != http.StatusBadRequest || r.code(t) != "VALIDATION_ERROR" {
		t.Fatalf("limit 101: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodPost, "/api/v1/credits/purchase", token, []byte(`{"amount": 10}`), nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("purchase without a provider: %d %s", r.status, r.body)
	}
}

// TestWebhookSignatures: every bad signature is 401 INVALID_SIGNATURE and stores nothing;
// both secrets of a rotation are accepted.
func TestWebhookSignatures(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	user := uuid.NewString()
	token := s.issuer.Token(t, user, "free")
	body := capturedBody(t, user, "credits", 7)
	altered := bytes.Replace(body, []byte(`"amount":7`), []byte(`"amount":8`), 1)
	if bytes.Equal(altered, body) {
		t.Fatal("test body not altered")
	}
	bad := []struct {
		name, sig string
		body      []byte
	}{
		{"missing header", "", body},
		{"wrong secret", checkout.Sign("whsec_other", body), body},
		{"not hex", "zz", body},
		{"body altered by one byte", checkout.Sign(oldSecret, body), altered},
		{"truncated signature", checkout.Sign(oldSecret, body)[:62], body},
	}
	for _, b := range bad {
		r := s.webhook(t, b.body, b.sig)
		if r.status != http.StatusUnauthorized || r.code(t) != "INVALID_SIGNATURE" {
			t.Fatalf("%s: %d %s", b.name, r.status, r.body)
		}
	}
	if got := s.balance(t, token); got.Total != 0 || s.historyTotal(t, token) != 0 || s.rows(t, "webhook_events") != 0 || s.rows(t, "payments") != 0 {
		t.Fatalf("a refused webhook changed something: %+v", got)
	}
	// Signed with the old secret, then a new event with the new one: both act.
	if r := s.webhook(t, body, checkout.Sign(oldSecret, body)); r.status != http.StatusOK {
		t.Fatalf("old secret: %d %s", r.status, r.body)
	}
	// The path without /api/v1 is the same endpoint: this delivery is a duplicate.
	if r := s.do(t, http.MethodPost, "/webhooks/checkout", "", body, map[string]string{checkout.SignatureHeader: checkout.Sign(oldSecret, body)}); r.status != http.StatusOK {
		t.Fatalf("short path: %d %s", r.status, r.body)
	}
	other := capturedBody(t, user, "credits", 3)
	if r := s.webhook(t, other, checkout.Sign(newSecret, other)); r.status != http.StatusOK {
		t.Fatalf("new secret: %d %s", r.status, r.body)
	}
	if got := s.balance(t, token); got.Purchased != 10 {
		t.Fatalf("purchased = %d, want 10", got.Purchased)
	}
	// A signed event of an unknown type: 200, logged, nothing changes.
	unknown := []byte(`{"id":"evt_` + uuid.NewString() + `","type":"dispute_opened","data":{}}`)
	if r := s.webhook(t, unknown, checkout.Sign(newSecret, unknown)); r.status != http.StatusOK {
		t.Fatalf("unknown type: %d %s", r.status, r.body)
	}
	// Signed but not JSON: a client error, never a 500.
	junk := []byte(`{"id":`)
	if r := s.webhook(t, junk, checkout.Sign(newSecret, junk)); r.status != http.StatusBadRequest {
		t.Fatalf("junk: %d %s", r.status, r.body)
	}
}

// TestScenario8Webhooks is API.md §10 scenario 8 on billing: a bad signature → 401 and no
// change; the same signed event 5 times → one activation, one grant.
func TestScenario8Webhooks(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	user := uuid.NewString()
	token := s.issuer.Token(t, user, "free")
	body := capturedBody(t, user, "subscription", 1)
	if r := s.webhook(t, body, checkout.Sign("wrong", body)); r.status != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", r.status)
	}
	if d := s.do(t, http.MethodGet, "/api/v1/subscription", token, nil, nil).data(t); d["tier"] != "free" {
		t.Fatalf("after a bad signature: %v", d)
	}
	for i := range 5 {
		if r := s.webhook(t, body, checkout.Sign(newSecret, body)); r.status != http.StatusOK {
			t.Fatalf("delivery %d: %d %s", i, r.status, r.body)
		}
	}
	d := s.do(t, http.MethodGet, "/api/v1/subscription", token, nil, nil).data(t)
	if d["tier"] != "pro" || d["status"] != "active" || d["features"].(map[string]any)["monthly_credits"].(float64) != 50 {
		t.Fatalf("subscription: %v", d)
	}
	if b := s.balance(t, token); b.Subscription != 50 || s.historyTotal(t, token) != 1 || s.rows(t, "webhook_events") != 1 {
		t.Fatalf("balance %+v, %d history rows", b, s.historyTotal(t, token))
	}
	// One billing.subscription.activated reaches the BILLING stream.
	eventually(t, "one activation event", func() bool {
		return s.countEvents(t, billingevents.TypeSubscriptionActivated, user) == 1
	})
}

// countEvents counts the BILLING stream's messages of typ about user.
func (s *service) countEvents(t *testing.T, typ, user string) int {
	t.Helper()
	ctx := context.Background()
	c, err := s.js.OrderedConsumer(ctx, "BILLING", jetstream.OrderedConsumerConfig{FilterSubjects: []string{typ}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		msgs, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range msgs.Messages() {
			got++
			ev, err := events.Parse(m.Data())
			if err == nil && ev.Subject == user {
				n++
			}
		}
		if got == 0 {
			return n
		}
	}
}

// TestScenario2Credits is the billing half of API.md §10 scenario 2, through the real
// edges: auth.user.created over JetStream (delivered twice), consumes over request-reply,
// Pro by a signed webhook over HTTP, balances over HTTP.
func TestScenario2Credits(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	user := uuid.NewString()
	token := s.issuer.Token(t, user, "free")
	ev := s.userCreated(t, user)
	s.publish(t, ev, ev.ID)
	s.publish(t, ev, ev.ID+"-redelivered") // past JetStream's dedupe: the inbox stops it
	again := s.userCreated(t, user)        // a second event id: the grant's unique source stops it
	s.publish(t, again, again.ID)
	eventually(t, "kickstart credits", func() bool { return s.balance(t, token).Kickstart == 5 })

	for _, want := range []int{4, 3} { // chat, generate-subtasks
		res, err := s.consume(t, user, 1)
		if err != nil || res.Balance.Kickstart != want {
			t.Fatalf("consume: %+v %v", res, err)
		}
	}
	s.clock.Set(time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)) // the next UTC day (and month)
	if b := s.balance(t, token); b != (balance{Daily: 10, Kickstart: 3, Total: 13}) {
		t.Fatalf("next day: %+v", b)
	}
	for range 10 {
		if _, err := s.consume(t, user, 1); err != nil {
			t.Fatal(err)
		}
	}
	if b := s.balance(t, token); b != (balance{Kickstart: 3, Total: 3}) {
		t.Fatalf("after ten chats: %+v", b)
	}
	body := capturedBody(t, user, "subscription", 1)
	if r := s.webhook(t, body, checkout.Sign(oldSecret, body)); r.status != http.StatusOK {
		t.Fatalf("webhook: %d %s", r.status, r.body)
	}
	if b := s.balance(t, token); b != (balance{Subscription: 50, Kickstart: 3, Total: 53}) {
		t.Fatalf("after Pro: %+v", b)
	}
	if res, err := s.consume(t, user, 10); err != nil || res.Balance.Subscription != 40 { // a 61–120 s transcription
		t.Fatalf("transcription: %+v %v", res, err)
	}
	// A failed provider call is compensated: the refund of the operation restores what
	// it took, once, and a retried consume of that id charges nothing more.
	op := billingrpc.ConsumeRequest{UserID: user, OperationID: uuid.NewString(), Amount: 5, Reason: "ai.transcribe"}
	for range 2 {
		res, err := rpc.Call[billingrpc.ConsumeRequest, billingrpc.ConsumeResponse](context.Background(), s.nc, billingrpc.SubjectConsume, op)
		if err != nil || res.Charged != 5 || res.Balance.Subscription != 35 {
			t.Fatalf("consume with an operation id: %+v %v", res, err)
		}
	}
	for range 2 {
		res, err := rpc.Call[billingrpc.RefundRequest, billingrpc.RefundResponse](context.Background(), s.nc, billingrpc.SubjectRefund,
			billingrpc.RefundRequest{UserID: user, OperationID: op.OperationID, Reason: "provider failed"})
		if err != nil || res.Refunded != 5 || res.Balance.Subscription != 40 {
			t.Fatalf("refund: %+v %v", res, err)
		}
	}
	if _, err := rpc.Call[billingrpc.ConsumeRequest, billingrpc.ConsumeResponse](context.Background(), s.nc, billingrpc.SubjectConsume,
		billingrpc.ConsumeRequest{UserID: "not-a-uuid", OperationID: "x", Amount: 0}); apperr.CodeOf(err) != apperr.Validation {
		t.Fatalf("bad consume request: %v", err)
	}
	if _, err := s.consume(t, user, 43); err != nil {
		t.Fatal(err)
	}
	rows := s.historyTotal(t, token)
	_, err := s.consume(t, user, 1)
	if e, ok := apperr.As(err); !ok || e.Code != apperr.InsufficientCredits || len(e.Details) != 6 || e.Details[1].Message != "0" {
		t.Fatalf("at 0 credits: %v", err)
	}
	if b := s.balance(t, token); b.Total != 0 || s.historyTotal(t, token) != rows {
		t.Fatalf("a refused consume charged: %+v", b)
	}
	// The alias answers the same.
	if r := s.do(t, http.MethodGet, "/api/v1/ai/credits", token, nil, nil); r.status != http.StatusOK || r.data(t)["total"].(float64) != 0 {
		t.Fatalf("alias: %d %s", r.status, r.body)
	}
	eventually(t, "the kickstart grant event", func() bool {
		return s.countEvents(t, billingevents.TypeCreditsGranted, user) == 3 // kickstart, daily, subscription
	})
}

// TestPerksAndErasure: a daily-credit achievement raises the next day's grant; a deleted
// user's rows are gone.
func TestPerksAndErasure(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	user := uuid.NewString()
	token := s.issuer.Token(t, user, "free")
	ev := s.userCreated(t, user)
	s.publish(t, ev, ev.ID)
	eventually(t, "kickstart", func() bool { return s.balance(t, token).Kickstart == 5 })
	perk, err := events.New(tasksevents.Source, tasksevents.TypeAchievementUnlocked, user, tasksevents.AchievementUnlocked{
		UserID: user, AchievementID: "streak_7", PerkType: "daily_ai_credits", PerkValue: 3, UnlockedAt: s.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	s.publish(t, perk, perk.ID)
	// Move to the next day only once the perk is stored; the consumer is asynchronous.
	eventually(t, "the perk", func() bool {
		return s.perkStored(t, user)
	})
	s.clock.Advance(24 * time.Hour)
	if b := s.balance(t, token); b.Daily != 13 {
		t.Fatalf("daily with streak_7: %+v", b)
	}
	del, err := events.New(authevents.Source, authevents.TypeUserDeleted, user, authevents.UserDeleted{UserID: user, DeletedAt: s.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	s.publish(t, del, del.ID)
	eventually(t, "erasure", func() bool { return s.historyTotal(t, token) == 0 })
}

// rows counts a table's rows.
func (s *service) rows(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *service) perkStored(t *testing.T, user string) bool {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), `SELECT coalesce(sum(value), 0) FROM credit_perks WHERE user_id = $1`, user).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 3
}

// TestSimulatedPayments: with BILLING_SIMULATE_PAYMENTS the hosted payment is captured at
// once by a signed webhook through billing's own handler.
func TestSimulatedPayments(t *testing.T) {
	t.Parallel()
	s := setup(t, map[string]string{"BILLING_SIMULATE_PAYMENTS": "true", "CHECKOUT_WEBHOOK_SECRETS": ""})
	user := uuid.NewString()
	token := s.issuer.Token(t, user, "free")
	r := s.do(t, http.MethodPost, "/api/v1/subscription/upgrade", token, nil, nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.data(t)["checkout_url"].(string), "http://localhost:3000/") || r.data(t)["session_id"] == "" {
		t.Fatalf("upgrade: %d %s", r.status, r.body)
	}
	if d := s.do(t, http.MethodGet, "/api/v1/subscription", token, nil, nil).data(t); d["tier"] != "pro" || d["current_period_end"] != "2026-02-28T20:00:00Z" {
		t.Fatalf("after the simulated payment: %v", d)
	}
	if r := s.do(t, http.MethodPost, "/api/v1/subscription/checkout", token, []byte(`{}`), nil); r.status != http.StatusConflict || r.code(t) != "ALREADY_SUBSCRIBED" {
		t.Fatalf("second checkout: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"amount": 0}`, 400, "VALIDATION_ERROR"},
		{`{"amount": 501}`, 400, "VALIDATION_ERROR"},
		{`{}`, 400, "VALIDATION_ERROR"},
		{`{"amount": 1, "x": 1}`, 400, "VALIDATION_ERROR"},
		{`{"amount": 300}`, 200, ""},
		{`{"amount": 200}`, 200, ""},
		{`{"amount": 1}`, 409, "LIMIT_EXCEEDED"},
	} {
		r := s.do(t, http.MethodPost, "/api/v1/credits/purchase", token, []byte(tc.body), nil)
		if r.status != tc.status || (tc.code != "" && r.code(t) != tc.code) {
			t.Fatalf("purchase %s: %d %s", tc.body, r.status, r.body)
		}
	}
	if b := s.balance(t, token); b.Purchased != 500 || b.Subscription != 50 {
		t.Fatalf("balance: %+v", b)
	}
	// The same purchase retried with its Idempotency-Key is replayed, not bought twice.
	s.clock.Set(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) // a new UTC month
	key := map[string]string{"Idempotency-Key": uuid.NewString()}
	first := s.do(t, http.MethodPost, "/api/v1/credits/purchase", token, []byte(`{"amount": 20}`), key)
	again := s.do(t, http.MethodPost, "/api/v1/credits/purchase", token, []byte(`{"amount": 20}`), key)
	if first.status != http.StatusOK || again.status != http.StatusOK || again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(first.body, again.body) {
		t.Fatalf("retried purchase: %d %s / %d %v %s", first.status, first.body, again.status, again.header, again.body)
	}
	if r := s.do(t, http.MethodPost, "/api/v1/credits/purchase", token, []byte(`{"amount": 21}`), key); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("key reused with another body: %d %s", r.status, r.body)
	}
	if b := s.balance(t, token); b.Purchased != 520 {
		t.Fatalf("after the retried purchase: %+v", b)
	}
	r = s.do(t, http.MethodPost, "/api/v1/subscription/cancel", token, nil, nil)
	if d := r.data(t); r.status != http.StatusOK || d["status"] != "cancelled" || d["cancel_at_period_end"] != true || d["tier"] != "pro" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	// The new month's cap counts the 20 bought above (the alias route).
	if r := s.do(t, http.MethodPost, "/api/v1/subscription/purchase-credits", token, []byte(`{"amount": 481}`), nil); r.status != http.StatusConflict {
		t.Fatalf("over the new month's cap: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodPost, "/api/v1/subscription/purchase-credits", token, []byte(`{"amount": 480}`), nil); r.status != http.StatusOK {
		t.Fatalf("next month: %d %s", r.status, r.body)
	}
}

// TestCheckoutClient: with a provider configured, checkout creates a hosted payment with
// the secret key and the metadata, and answers the provider's page.
func TestCheckoutClient(t *testing.T) {
	t.Parallel()
	type request struct {
		auth string
		body map[string]any
	}
	got := make(chan request, 1)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/hosted-payments" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- request{auth: r.Header.Get("Authorization"), body: body}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"hpp_kE7HkdL4v6CN","reference":"x","_links":{"self":{"href":"https://api.sandbox.checkout.com/hosted-payments/hpp_kE7HkdL4v6CN"},"redirect":{"href":"https://pay.sandbox.checkout.com/page/hpp_kE7HkdL4v6CN"}}}`)
	}))
	t.Cleanup(fake.Close)
	s := setup(t, map[string]string{"CHECKOUT_BASE_URL": fake.URL, "CHECKOUT_SECRET_KEY": "sk_sbox_test"})
	user := uuid.NewString()
	token := s.issuer.Token(t, user, "free")
	r := s.do(t, http.MethodPost, "/api/v1/credits/purchase", token, []byte(`{"amount": 40}`), nil)
	if r.status != http.StatusOK || r.data(t)["checkout_url"] != "https://pay.sandbox.checkout.com/page/hpp_kE7HkdL4v6CN" || r.data(t)["session_id"] != "hpp_kE7HkdL4v6CN" {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	req := <-got
	meta, _ := req.body["metadata"].(map[string]any)
	if req.auth != "Bearer sk_sbox_test" || req.body["amount"].(float64) != 200 || req.body["currency"] != "USD" ||
		meta["user_id"] != user || meta["kind"] != "credits" || meta["amount"] != "40" || req.body["success_url"] == "" {
		t.Fatalf("hosted payment request: %+v", req)
	}
	// Credits arrive with the captured payment, which names billing's reference.
	capture, _ := json.Marshal(map[string]any{"id": "evt_" + uuid.NewString(), "type": "payment_captured",
		"data": map[string]any{"id": "pay_" + uuid.NewString(), "amount": 200, "currency": "USD", "reference": req.body["reference"],
			"metadata": meta}})
	if r := s.webhook(t, capture, checkout.Sign(newSecret, capture)); r.status != http.StatusOK {
		t.Fatalf("capture: %d %s", r.status, r.body)
	}
	if b := s.balance(t, token); b.Purchased != 40 {
		t.Fatalf("balance: %+v", b)
	}
}

func TestCancelWithoutSubscription(t *testing.T) {
	t.Parallel()
	s := setup(t, nil)
	token := s.issuer.Token(t, "", "free")
	if r := s.do(t, http.MethodPost, "/api/v1/subscription/cancel", token, nil, nil); r.status != http.StatusNotFound || r.code(t) != "NOT_FOUND" {
		t.Fatalf("cancel without a subscription: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodPost, "/api/v1/subscription/cancel", token, []byte(`{"now": true}`), nil); r.status != http.StatusBadRequest {
		t.Fatalf("cancel with an unknown field: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodPost, "/api/v1/credits/purchase", token, []byte(`{"amount": 5}`), map[string]string{"Content-Type": "text/plain"}); r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("purchase as text/plain: %d %s", r.status, r.body)
	}
}
