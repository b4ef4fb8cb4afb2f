package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/services/billing/internal/checkout"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
	"github.com/perpetua-flow/backend/services/billing/internal/subscription"
)

// Payments starts hosted payments: it reserves the payment (checking the subscription
// and the monthly cap) in the store, then asks Checkout.com for a payment page without
// holding a transaction. Simulated, it captures the payment at once with a signed webhook
// through billing's own webhook handler, so the flow and the ledger are the real ones.
type Payments struct {
	Store *store.Store
	Clock clock.Clock
	// Client is nil when CHECKOUT_BASE_URL is unset.
	Client *checkout.Client
	// Simulate is BILLING_SIMULATE_PAYMENTS.
	Simulate bool
	// PublicBaseURL is where the payment page sends the payer back.
	PublicBaseURL string
	Webhooks      *Webhooks
}

// Started is a payment page to send the user to.
type Started struct {
	CheckoutURL string
	SessionID   string
}

// Subscribe starts the payment of a Pro subscription.
func (p *Payments) Subscribe(ctx context.Context, userID string) (Started, error) {
	return p.start(ctx, store.Payment{UserID: userID, Kind: checkout.KindSubscription, PriceMinor: subscription.ProPriceMinor},
		"Perpetua Flow Pro, one month", 1)
}

// BuyCredits starts the payment of n credits.
func (p *Payments) BuyCredits(ctx context.Context, userID string, n int) (Started, error) {
	return p.start(ctx, store.Payment{UserID: userID, Kind: checkout.KindCredits, Credits: n, PriceMinor: int64(n) * credit.PricePerCreditMinor},
		fmt.Sprintf("%d Perpetua Flow AI credits", n), n)
}

func (p *Payments) start(ctx context.Context, pay store.Payment, description string, metaAmount int) (Started, error) {
	if p.Client == nil && !p.Simulate {
		return Started{}, apperr.New(apperr.ServiceUnavailable,
			"payments are not configured: set CHECKOUT_BASE_URL and CHECKOUT_SECRET_KEY (or BILLING_SIMULATE_PAYMENTS=true in the local stack)")
	}
	pay.ID = uuid.Must(uuid.NewV7()).String()
	pay.Currency = credit.Currency
	now := p.Clock.Now()
	if err := p.Store.StartPayment(ctx, pay, now); err != nil {
		return Started{}, err
	}
	meta := checkout.Metadata{UserID: pay.UserID, Kind: pay.Kind, Amount: metaAmount}
	back := func(outcome string) string {
		return strings.TrimRight(p.PublicBaseURL, "/") + "/settings/billing?checkout=" + outcome + "&session_id=" + url.QueryEscape(pay.ID)
	}
	if p.Simulate {
		if err := p.Webhooks.simulateCapture(ctx, pay, meta, now); err != nil {
			return Started{}, err
		}
		if err := p.Store.PaymentStarted(ctx, pay.ID, pay.ID, now); err != nil {
			return Started{}, err
		}
		return Started{CheckoutURL: back("success"), SessionID: pay.ID}, nil
	}
	sess, err := p.Client.CreateHostedPayment(ctx, checkout.HostedPayment{
		AmountMinor: pay.PriceMinor, Currency: pay.Currency, Reference: pay.ID, Description: description,
		SuccessURL: back("success"), FailureURL: back("failed"), CancelURL: back("cancelled"), Metadata: meta,
	})
	if err != nil {
		// Release the reservation; the client may try again.
		if ferr := p.Store.PaymentNotStarted(context.WithoutCancel(ctx), pay.ID, now); ferr != nil {
			err = fmt.Errorf("%w (and: %v)", err, ferr)
		}
		return Started{}, apperr.Wrap(err, apperr.ServiceUnavailable, "the payment provider is not available; try again shortly")
	}
	if err := p.Store.PaymentStarted(ctx, pay.ID, sess.ID, now); err != nil {
		return Started{}, err
	}
	return Started{CheckoutURL: sess.RedirectURL, SessionID: sess.ID}, nil
}

// Webhooks is the public Checkout.com webhook: the signature of the raw body is checked
// against every configured secret before anything is read or stored.
type Webhooks struct {
	Store   *store.Store
	Clock   clock.Clock
	Secrets []string
	Logger  *slog.Logger
}

type webhookAck struct {
	Received bool `json:"received"`
}

// ServeHTTP verifies and applies one event.
func (h *Webhooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := httpx.ReadBody(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	if !checkout.Verify(h.Secrets, body, r.Header.Get(checkout.SignatureHeader)) {
		httpx.WriteError(w, r, apperr.New(apperr.InvalidSignature, "the Cko-Signature header does not match the body"))
		return
	}
	ev, err := checkout.ParseEvent(body)
	if err != nil {
		httpx.WriteError(w, r, apperr.Wrap(err, apperr.Validation, "the webhook body is not a Checkout.com event"))
		return
	}
	outcome, err := h.Store.ApplyWebhook(r.Context(), ev, h.Clock.Now())
	if err != nil {
		fail(w, r, err) // 500: Checkout.com retries, and nothing was stored
		return
	}
	log := httpx.LoggerFrom(r.Context())
	if outcome == store.OutcomeUnknown {
		log.Warn("webhook of an unknown type ignored", "event_id", ev.ID, "type", ev.Type)
	} else {
		log.Info("webhook", "event_id", ev.ID, "type", ev.Type, "outcome", outcome)
	}
	httpx.WriteData(w, http.StatusOK, webhookAck{Received: true})
}

// simulateCapture signs a payment_captured event for pay as Checkout.com would and sends
// it through ServeHTTP.
func (h *Webhooks) simulateCapture(ctx context.Context, pay store.Payment, meta checkout.Metadata, now time.Time) error {
	if len(h.Secrets) == 0 {
		return apperr.New(apperr.Internal, "simulated payments need a webhook secret")
	}
	body, err := json.Marshal(checkout.Event{
		ID: "evt_sim_" + uuid.NewString(), Type: checkout.TypePaymentCaptured, Version: "1.0.0", CreatedOn: now,
		Data: checkout.EventData{ID: "pay_sim_" + uuid.NewString(), Amount: pay.PriceMinor, Currency: pay.Currency, Reference: pay.ID, Metadata: meta},
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/webhooks/checkout", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(checkout.SignatureHeader, checkout.Sign(h.Secrets[0], body))
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, req)
	if rec.status != http.StatusOK {
		return fmt.Errorf("simulated webhook answered %d: %s", rec.status, rec.body.String())
	}
	return nil
}

// recorder keeps the answer of an in-process webhook delivery.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) { r.status = status }
