// Package checkout is billing's small Checkout.com client: it creates hosted payments
// (POST {base}/hosted-payments with the secret key), verifies webhook signatures
// (Cko-Signature, hex HMAC-SHA256 of the raw body) and reads the webhook envelope. The
// base URL comes from config, so tests and the local stack point it at a fake.
package checkout

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the webhook signature.
const SignatureHeader = "Cko-Signature"

// Webhook event types billing acts on.
const (
	TypePaymentCaptured       = "payment_captured"
	TypePaymentDeclined       = "payment_declined"
	TypeSubscriptionRenewed   = "subscription_renewed"
	TypeSubscriptionCancelled = "subscription_cancelled"
)

// Metadata kinds billing sets on a hosted payment.
const (
	KindSubscription = "subscription"
	KindCredits      = "credits"
)

// RequestTimeout bounds one call to Checkout.com.
const RequestTimeout = 15 * time.Second

// Sign is the hex HMAC-SHA256 of body with secret: the Cko-Signature value.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is body's HMAC under any of secrets (several are
// active while one is rotated). Every comparison is constant time.
func Verify(secrets []string, body []byte, signature string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(signature))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		m := hmac.New(sha256.New, []byte(s))
		m.Write(body)
		// No early exit: the time taken does not say which secret matched.
		if hmac.Equal(m.Sum(nil), got) {
			ok = true
		}
	}
	return ok
}

// Event is Checkout.com's webhook envelope.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Version   string    `json:"version,omitempty"`
	CreatedOn time.Time `json:"created_on"`
	Data      EventData `json:"data"`
}

// EventData is the part of data billing reads.
type EventData struct {
	ID               string     `json:"id"`
	Amount           int64      `json:"amount"`
	Currency         string     `json:"currency"`
	Reference        string     `json:"reference"`
	Metadata         Metadata   `json:"metadata"`
	SubscriptionID   string     `json:"subscription_id,omitempty"`
	CurrentPeriodEnd *time.Time `json:"current_period_end,omitempty"`
}

// Metadata is what billing put on the hosted payment: who pays for what.
type Metadata struct {
	UserID string `json:"user_id"`
	Kind   string `json:"kind"`
	// Amount is the number of credits bought (kind credits) or months (subscription).
	Amount int `json:"amount"`
}

// UnmarshalJSON accepts amount as a number or a numeric string: Checkout.com returns
// metadata values as they were sent, and other senders stringify them.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	var raw struct {
		UserID string          `json:"user_id"`
		Kind   string          `json:"kind"`
		Amount json.RawMessage `json:"amount"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.UserID, m.Kind, m.Amount = raw.UserID, raw.Kind, 0
	if len(raw.Amount) > 0 && string(raw.Amount) != "null" {
		s := strings.Trim(string(raw.Amount), `"`)
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("metadata.amount: %q is not an integer", s)
		}
		m.Amount = n
	}
	return nil
}

// ParseEvent reads a webhook body (already verified).
func ParseEvent(body []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return Event{}, fmt.Errorf("checkout: webhook body: %w", err)
	}
	if ev.ID == "" || ev.Type == "" {
		return Event{}, errors.New("checkout: webhook without id or type")
	}
	return ev, nil
}

// Client creates hosted payments.
type Client struct {
	BaseURL   string
	SecretKey string
	HTTP      *http.Client
}

// HostedPayment is what billing asks Checkout.com for.
type HostedPayment struct {
	AmountMinor int64
	Currency    string
	Reference   string
	Description string
	SuccessURL  string
	FailureURL  string
	CancelURL   string
	Metadata    Metadata
}

// Session is a created hosted payment page.
type Session struct {
	ID          string
	RedirectURL string
}

type hostedPaymentRequest struct {
	Amount      int64             `json:"amount"`
	Currency    string            `json:"currency"`
	Reference   string            `json:"reference"`
	Description string            `json:"description"`
	Billing     billing           `json:"billing"`
	SuccessURL  string            `json:"success_url"`
	FailureURL  string            `json:"failure_url"`
	CancelURL   string            `json:"cancel_url"`
	Metadata    map[string]string `json:"metadata"`
}

type billing struct {
	Address address `json:"address"`
}

type address struct {
	Country string `json:"country"`
}

type hostedPaymentResponse struct {
	ID    string `json:"id"`
	Links struct {
		Redirect struct {
			Href string `json:"href"`
		} `json:"redirect"`
	} `json:"_links"`
}

// BillingCountry is sent with every hosted payment (Checkout.com requires one; the page
// lets the payer change it).
const BillingCountry = "US"

// CreateHostedPayment creates a hosted payment page and returns its id and URL.
func (c *Client) CreateHostedPayment(ctx context.Context, p HostedPayment) (Session, error) {
	body, err := json.Marshal(hostedPaymentRequest{
		Amount: p.AmountMinor, Currency: p.Currency, Reference: p.Reference, Description: p.Description,
		Billing:    billing{Address: address{Country: BillingCountry}},
		SuccessURL: p.SuccessURL, FailureURL: p.FailureURL, CancelURL: p.CancelURL,
		Metadata: map[string]string{
			"user_id": p.Metadata.UserID, "kind": p.Metadata.Kind, "amount": strconv.Itoa(p.Metadata.Amount),
		},
	})
	if err != nil {
		return Session{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+"/hosted-payments", bytes.NewReader(body))
	if err != nil {
		return Session{}, fmt.Errorf("checkout: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.SecretKey)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Session{}, fmt.Errorf("checkout: create hosted payment: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Session{}, fmt.Errorf("checkout: read response: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return Session{}, fmt.Errorf("checkout: create hosted payment: status %d: %s", resp.StatusCode, truncate(string(b), 300))
	}
	var out hostedPaymentResponse
	if err := json.Unmarshal(b, &out); err != nil || out.ID == "" || out.Links.Redirect.Href == "" {
		return Session{}, fmt.Errorf("checkout: unexpected hosted payment response: %s", truncate(string(b), 300))
	}
	return Session{ID: out.ID, RedirectURL: out.Links.Redirect.Href}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
