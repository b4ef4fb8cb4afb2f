package e2e_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/e2e/fakes"
	"github.com/perpetua-flow/backend/e2e/stack"
)

// webhookSecret signs the Checkout.com events of the suite (CHECKOUT_WEBHOOK_SECRETS).
const webhookSecret = "whsec-e2e"

type balance struct {
	Daily, Subscription, Purchased, Kickstart, Total int
}

func getBalance(t *testing.T, u *stack.Client) balance {
	t.Helper()
	var b balance
	u.Must(http.StatusOK, "GET", "/api/v1/credits/balance", nil, nil).Data(t, &b)
	return b
}

func waitBalance(t *testing.T, u *stack.Client, want func(balance) bool) balance {
	t.Helper()
	var b balance
	stack.Eventually(t, 20*time.Second, func() error {
		b = getBalance(t, u)
		if !want(b) {
			return stack.Errorf("balance %+v", b)
		}
		return nil
	})
	return b
}

func aiKey() map[string]string { return map[string]string{"Idempotency-Key": uuid.NewString()} }

// capture is a signed payment_captured event for a Pro subscription of userID.
func capture(t *testing.T, userID, eventID string) (body []byte, signature string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"id": eventID, "type": "payment_captured", "version": "1.0.0", "created_on": time.Now().UTC(),
		"data": map[string]any{
			"id": "pay_" + uuid.NewString()[:8], "amount": 999, "currency": "EUR", "reference": "pro-" + userID,
			"subscription_id": "sub_" + userID[:8], "current_period_end": time.Now().Add(30 * 24 * time.Hour).UTC(),
			"metadata": map[string]any{"user_id": userID, "kind": "subscription", "amount": 1},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write(body)
	return body, hex.EncodeToString(mac.Sum(nil))
}

// API.md §10 scenario 8: a bad signature changes nothing; the same signed event delivered
// five times activates once and grants once.
func testScenarioWebhooks(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	waitBalance(t, u, func(b balance) bool { return b.Kickstart == 5 })
	anon := s.NewClient().For(t)
	body, sig := capture(t, u.UserID, "evt_"+uuid.NewString())
	if r := anon.Do("POST", "/api/v1/webhooks/checkout", body, map[string]string{"Cko-Signature": "00" + sig[2:]}); r.Status != 401 || r.ErrorCode() != "INVALID_SIGNATURE" {
		t.Fatalf("bad signature: %d %s", r.Status, r.Body)
	}
	var sub struct {
		Tier   string  `json:"tier"`
		Status *string `json:"status"`
	}
	u.Must(200, "GET", "/api/v1/subscription", nil, nil).Data(t, &sub)
	if sub.Tier != "free" || sub.Status != nil {
		t.Fatalf("after a refused webhook: %+v", sub)
	}
	for range 5 {
		anon.Must(200, "POST", "/api/v1/webhooks/checkout", body, map[string]string{"Cko-Signature": sig})
	}
	u.Must(200, "GET", "/api/v1/subscription", nil, nil).Data(t, &sub)
	if sub.Tier != "pro" || sub.Status == nil || *sub.Status != "active" {
		t.Fatalf("after the capture: %+v", sub)
	}
	if b := getBalance(t, u); b.Subscription != 50 || b.Kickstart != 5 {
		t.Fatalf("five deliveries must grant once: %+v", b)
	}
}

// API.md §10 scenario 2, through the gateway (the day change is proven in billing's own
// tests with a fake clock): chat and subtask generation take one credit each, a provider
// failure charges nothing, zero credits is 402, and after Pro a 90 s transcription costs
// 10 subscription credits.
func testScenarioCredits(t *testing.T, s *stack.Stack, openai *fakes.OpenAI) {
	u := s.SignIn(email()).For(t)
	waitBalance(t, u, func(b balance) bool { return b.Kickstart == 5 })

	var chat struct {
		Response         string `json:"response"`
		CreditsUsed      int    `json:"credits_used"`
		CreditsRemaining int    `json:"credits_remaining"`
	}
	u.Must(200, "POST", "/api/v1/ai/chat", map[string]any{"message": "How do I start?"}, aiKey()).Data(t, &chat)
	if chat.Response == "" || chat.CreditsUsed != 1 || chat.CreditsRemaining != 4 {
		t.Fatalf("chat = %+v", chat)
	}
	var tk task
	u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": "Write the report"}, nil).Data(t, &tk)
	var gen struct {
		SuggestedSubtasks []struct{ Title string } `json:"suggested_subtasks"`
	}
	u.Must(200, "POST", "/api/v1/ai/generate-subtasks", map[string]any{"task_id": tk.ID}, aiKey()).Data(t, &gen)
	if n := len(gen.SuggestedSubtasks); n < 1 || n > 4 {
		t.Fatalf("free tier gets 1–4 distinct subtasks, got %d: %+v", n, gen)
	}
	if b := getBalance(t, u); b.Kickstart != 3 {
		t.Fatalf("after chat and generate: %+v", b)
	}

	// The model is down: 503, and the credit taken before the call comes back.
	openai.SetFailing(true)
	r := u.Do("POST", "/api/v1/ai/chat", map[string]any{"message": "Still there?"}, aiKey())
	openai.SetFailing(false)
	if r.Status != 503 || r.ErrorCode() != "AI_SERVICE_UNAVAILABLE" {
		t.Fatalf("provider down: %d %s", r.Status, r.Body)
	}
	waitBalance(t, u, func(b balance) bool { return b.Kickstart == 3 })

	for range 3 {
		u.Must(200, "POST", "/api/v1/ai/chat", map[string]any{"message": "Next?"}, aiKey())
	}
	calls := openai.Calls.Load()
	r = u.Do("POST", "/api/v1/ai/chat", map[string]any{"message": "One more"}, aiKey())
	if r.Status != 402 || r.ErrorCode() != "INSUFFICIENT_CREDITS" {
		t.Fatalf("at zero credits: %d %s", r.Status, r.Body)
	}
	if openai.Calls.Load() != calls {
		t.Fatal("a refused chat must not reach the model")
	}
	if b := getBalance(t, u); b.Total != 0 {
		t.Fatalf("after 402: %+v", b)
	}

	// Pro through a signed webhook, then a 90 s transcription costs 10.
	body, sig := capture(t, u.UserID, "evt_"+uuid.NewString())
	s.NewClient().For(t).Must(200, "POST", "/api/v1/webhooks/checkout", body, map[string]string{"Cko-Signature": sig})
	waitBalance(t, u, func(b balance) bool { return b.Subscription == 50 })
	refreshed := refreshUntilTier(t, s, u, "pro")
	var tr struct {
		Transcription string `json:"transcription"`
		CreditsUsed   int    `json:"credits_used"`
	}
	refreshed.Must(200, "POST", "/api/v1/ai/transcribe", map[string]any{"audio_url": "https://cdn.example.com/memo.m4a", "duration_seconds": 90}, aiKey()).Data(t, &tr)
	if tr.Transcription == "" || tr.CreditsUsed != 10 {
		t.Fatalf("transcribe = %+v", tr)
	}
	if b := getBalance(t, u); b.Subscription != 40 {
		t.Fatalf("after a 90 s transcription: %+v", b)
	}
}

// refreshUntilTier refreshes the user's tokens until the access token carries tier (auth
// learns it from billing's event).
func refreshUntilTier(t *testing.T, s *stack.Stack, u *stack.Client, tier string) *stack.Client {
	t.Helper()
	c := s.NewClient().For(t)
	refresh := u.Refresh
	stack.Eventually(t, 20*time.Second, func() error {
		var tok struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		s.NewClient().For(t).Must(200, "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": refresh}, nil).JSON(t, &tok)
		refresh = tok.RefreshToken
		c.Token = tok.AccessToken
		// The services read the tier from the token, so the token's claim is what must
		// have changed: /users/me reads auth's table, which may change between the refresh
		// that minted this token and the read.
		if got := tokenTier(t, tok.AccessToken); got != tier {
			return stack.Errorf("token tier %s", got)
		}
		return nil
	})
	return c
}

// tokenTier is the tier claim of an access token (its payload, not checked: the services
// check it).
func tokenTier(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWT", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("access token payload: %v", err)
	}
	var claims struct {
		Tier string `json:"tier"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("access token claims: %v", err)
	}
	return claims.Tier
}
