// Package httpapi is billing's HTTP edge (API.md §5): balance, history, subscription,
// checkout, purchase and cancel for the signed-in user, and the public Checkout.com
// webhook. Handlers decode, call the store (or the payment flow) and encode.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
	"github.com/perpetua-flow/backend/services/billing/internal/subscription"
)

// API serves billing's routes.
type API struct {
	Store  *store.Store
	Clock  clock.Clock
	Logger *slog.Logger
	// Auth verifies the access token (authn.Middleware).
	Auth func(http.Handler) http.Handler
	// Idempotency wraps the mutating authenticated routes (nil: none).
	Idempotency func(http.Handler) http.Handler
	// Payments starts hosted payments.
	Payments *Payments
	// Webhooks verifies and applies Checkout.com events.
	Webhooks *Webhooks
}

// Routes mounts the API (under /api/v1) on r.
func (a *API) Routes(r chi.Router) {
	r.Post("/api/v1/webhooks/checkout", a.Webhooks.ServeHTTP)
	// ARCHITECTURE.md names the public path without the /api/v1 prefix too.
	r.Post("/webhooks/checkout", a.Webhooks.ServeHTTP)
	r.Group(func(r chi.Router) {
		r.Use(a.Auth)
		r.Get("/api/v1/credits/balance", a.balance)
		r.Get("/api/v1/ai/credits", a.balance)
		r.Get("/api/v1/credits/history", a.history)
		r.Get("/api/v1/subscription", a.subscription)
		r.Group(func(r chi.Router) {
			if a.Idempotency != nil {
				r.Use(a.Idempotency)
			}
			r.Post("/api/v1/subscription/checkout", a.checkout)
			r.Post("/api/v1/subscription/upgrade", a.checkout)
			r.Post("/api/v1/subscription/cancel", a.cancel)
			r.Post("/api/v1/credits/purchase", a.purchase)
			r.Post("/api/v1/subscription/purchase-credits", a.purchase)
		})
	})
}

// fail writes err, a database that cannot be reached answering 503 rather than 500.
func fail(w http.ResponseWriter, r *http.Request, err error) {
	httpx.WriteError(w, r, store.Unavailable(err))
}

func userID(r *http.Request) (string, error) {
	c, ok := authn.FromContext(r.Context())
	if !ok || !store.ValidUserID(c.UserID) {
		return "", apperr.New(apperr.Unauthorized, "sign in first")
	}
	return c.UserID, nil
}

// BalanceDTO is the wire form of a balance (the same as the request-reply contract's).
func BalanceDTO(b credit.Balance) billingrpc.Balance {
	return billingrpc.Balance{
		Daily: b.Daily, Subscription: b.Subscription, Purchased: b.Purchased, Kickstart: b.Kickstart,
		Total: b.Total(), DailyResetsAt: b.DailyResetsAt.UTC().Format(time.RFC3339),
	}
}

func (a *API) balance(w http.ResponseWriter, r *http.Request) {
	user, err := userID(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	b, err := a.Store.Balance(r.Context(), user, a.Clock.Now())
	if err != nil {
		fail(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, BalanceDTO(b))
}

type ledgerEntryDTO struct {
	ID           string `json:"id"`
	UserID       string `json:"user_id"`
	CreditType   string `json:"credit_type"`
	Operation    string `json:"operation"`
	Type         string `json:"type"`
	Category     string `json:"category"`
	Amount       int    `json:"amount"`
	BalanceAfter int    `json:"balance_after"`
	Description  string `json:"description"`
	Reference    string `json:"reference"`
	CreatedAt    string `json:"created_at"`
}

func (a *API) history(w http.ResponseWriter, r *http.Request) {
	user, err := userID(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	page, err := httpx.ParsePage(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	entries, total, err := a.Store.History(r.Context(), user, page)
	if err != nil {
		fail(w, r, err)
		return
	}
	out := make([]ledgerEntryDTO, 0, len(entries))
	for _, e := range entries {
		typ := "grant"
		if e.Amount < 0 {
			typ = "deduct"
		}
		out = append(out, ledgerEntryDTO{
			ID: e.ID, UserID: e.UserID, CreditType: e.CreditType, Operation: e.Operation, Type: typ, Category: e.Category,
			Amount: e.Amount, BalanceAfter: e.BalanceAfter, Description: e.Description, Reference: e.Reference,
			CreatedAt: e.CreatedAt.UTC().Format(time.RFC3339),
		})
	}
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(out, page, total))
}

type featuresDTO struct {
	MaxSubtasks          int  `json:"max_subtasks"`
	MaxDescriptionLength int  `json:"max_description_length"`
	VoiceNotes           bool `json:"voice_notes"`
	MonthlyCredits       int  `json:"monthly_credits"`
}

type subscriptionDTO struct {
	Tier              string      `json:"tier"`
	Status            *string     `json:"status"`
	CurrentPeriodEnd  *string     `json:"current_period_end"`
	CancelAtPeriodEnd bool        `json:"cancel_at_period_end"`
	Features          featuresDTO `json:"features"`
}

func subscriptionView(sub subscription.Subscription, found bool) subscriptionDTO {
	tier := subscription.TierFree
	out := subscriptionDTO{}
	if found {
		tier = sub.Tier()
		status := string(sub.Status)
		end := sub.PeriodEnd.UTC().Format(time.RFC3339)
		out.Status, out.CurrentPeriodEnd, out.CancelAtPeriodEnd = &status, &end, sub.CancelAtPeriodEnd
	}
	f := subscription.FeaturesOf(tier)
	out.Tier = tier
	out.Features = featuresDTO{MaxSubtasks: f.MaxSubtasks, MaxDescriptionLength: f.MaxDescriptionLength, VoiceNotes: f.VoiceNotes, MonthlyCredits: f.MonthlyCredits}
	return out
}

func (a *API) subscription(w http.ResponseWriter, r *http.Request) {
	user, err := userID(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	sub, found, err := a.Store.Subscription(r.Context(), user)
	if err != nil {
		fail(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, subscriptionView(sub, found))
}

func (a *API) cancel(w http.ResponseWriter, r *http.Request) {
	user, err := userID(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := decodeOptional(r, &struct{}{}); err != nil {
		fail(w, r, err)
		return
	}
	sub, err := a.Store.CancelSubscription(r.Context(), user, a.Clock.Now())
	if err != nil {
		fail(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, subscriptionView(sub, true))
}

// decodeOptional decodes a body when there is one: these POSTs need no fields, and a
// request without a body is never refused for its Content-Type (API.md §1).
func decodeOptional(r *http.Request, dst any) error {
	body, err := httpx.ReadBody(r)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	if err := httpx.RequireJSON(r); err != nil {
		return err
	}
	return httpx.DecodeBytes(body, dst)
}

type checkoutDTO struct {
	CheckoutURL string `json:"checkout_url"`
	SessionID   string `json:"session_id"`
}

func (a *API) checkout(w http.ResponseWriter, r *http.Request) {
	user, err := userID(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := decodeOptional(r, &struct{}{}); err != nil {
		fail(w, r, err)
		return
	}
	s, err := a.Payments.Subscribe(r.Context(), user)
	if err != nil {
		fail(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, checkoutDTO(s))
}

func (a *API) purchase(w http.ResponseWriter, r *http.Request) {
	user, err := userID(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	var req struct {
		Amount *int `json:"amount"`
	}
	if err := httpx.Decode(r, &req); err != nil {
		fail(w, r, err)
		return
	}
	var v apperr.Validator
	v.Check(req.Amount != nil, "amount", "is required")
	v.Check(req.Amount == nil || (*req.Amount >= credit.MinPurchase && *req.Amount <= credit.MaxPurchase), "amount", "must be from 1 to 500")
	if err := v.Err(); err != nil {
		fail(w, r, err)
		return
	}
	s, err := a.Payments.BuyCredits(r.Context(), user, *req.Amount)
	if err != nil {
		fail(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, checkoutDTO(s))
}
