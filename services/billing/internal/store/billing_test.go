package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/services/billing/internal/checkout"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
	"github.com/perpetua-flow/backend/services/billing/internal/subscription"
)

func (f *fixture) captured(user, kind string, amount int) checkout.Event {
	return checkout.Event{ID: "evt_" + uuid.NewString(), Type: checkout.TypePaymentCaptured, CreatedOn: f.clock.Now(),
		Data: checkout.EventData{ID: "pay_" + uuid.NewString(), Amount: 999, Currency: "USD",
			Metadata: checkout.Metadata{UserID: user, Kind: kind, Amount: amount}}}
}

func (f *fixture) applyWebhook(t testing.TB, ev checkout.Event) string {
	t.Helper()
	out, err := f.store.ApplyWebhook(f.ctx, ev, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) subscription(t testing.TB, user string) subscription.Subscription {
	t.Helper()
	sub, _, err := f.store.Subscription(f.ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func (f *fixture) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWebhookActsOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	ev := f.captured(user, checkout.KindSubscription, 1)
	outcomes := map[string]int{}
	for range 5 {
		outcomes[f.applyWebhook(t, ev)]++
	}
	if outcomes["activated"] != 1 || outcomes[store.OutcomeDuplicate] != 4 {
		t.Fatalf("outcomes = %v", outcomes)
	}
	// The same payment announced by another event id still pays once.
	again := ev
	again.ID = "evt_" + uuid.NewString()
	if out := f.applyWebhook(t, again); out != "ignored: payment already captured" {
		t.Fatalf("second event of one payment: %q", out)
	}
	wantBalance(t, f, user, credit.Balance{Subscription: 50})
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE type = 'billing.subscription.activated' AND payload->>'subject' = $1`, user); n != 1 {
		t.Fatalf("%d activation events", n)
	}
}

func TestWebhooksOutOfOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()

	// A renewal for a subscription billing does not know: recorded, ignored.
	end := f.clock.Now().AddDate(0, 1, 0)
	renewal := checkout.Event{ID: "evt_" + uuid.NewString(), Type: checkout.TypeSubscriptionRenewed,
		Data: checkout.EventData{SubscriptionID: "sub_1", CurrentPeriodEnd: &end, Metadata: checkout.Metadata{UserID: user}}}
	if out := f.applyWebhook(t, renewal); out != "ignored: unknown subscription" {
		t.Fatalf("renewal first: %q", out)
	}
	capture := f.captured(user, checkout.KindSubscription, 1)
	if out := f.applyWebhook(t, capture); out != "activated" {
		t.Fatalf("capture: %q", out)
	}
	// A decline of the captured payment, arriving late, changes nothing.
	decline := capture
	decline.ID, decline.Type = "evt_"+uuid.NewString(), checkout.TypePaymentDeclined
	if out := f.applyWebhook(t, decline); out != "ignored: decline after capture" {
		t.Fatalf("decline after capture: %q", out)
	}
	sub := f.subscription(t, user)
	if sub.Status != subscription.Active {
		t.Fatalf("status %s", sub.Status)
	}

	// Near the period end: the provider's renewal notice and the renewal payment both
	// arrive; the period moves once and one month of credits is granted (30 carried).
	mustConsume(t, f, user, 20)
	f.clock.Set(sub.PeriodEnd.Add(-time.Hour))
	newEnd := subscription.AddPeriod(sub.PeriodEnd)
	renewal = checkout.Event{ID: "evt_" + uuid.NewString(), Type: checkout.TypeSubscriptionRenewed,
		Data: checkout.EventData{SubscriptionID: "sub_1", CurrentPeriodEnd: &newEnd, Metadata: checkout.Metadata{UserID: user}}}
	if out := f.applyWebhook(t, renewal); out != "renewed" {
		t.Fatalf("renewal: %q", out)
	}
	if out := f.applyWebhook(t, f.captured(user, checkout.KindSubscription, 1)); out != "ignored: period already paid" {
		t.Fatalf("renewal capture after the notice: %q", out)
	}
	late := renewal
	late.ID = "evt_" + uuid.NewString()
	late.Data.CurrentPeriodEnd = &sub.PeriodEnd
	if out := f.applyWebhook(t, late); out != "ignored: period already renewed" {
		t.Fatalf("stale renewal: %q", out)
	}
	wantBalance(t, f, user, credit.Balance{Daily: 10, Subscription: 80})
	if got := f.subscription(t, user).PeriodEnd; !got.Equal(newEnd) {
		t.Fatalf("period end %v, want %v", got, newEnd)
	}
	// Carryover is capped: 80 unused → 50 carried + 50 new.
	f.clock.Set(newEnd.Add(-time.Hour))
	if out := f.applyWebhook(t, f.captured(user, checkout.KindSubscription, 1)); out != "renewed" {
		t.Fatalf("renewal by capture: %q", out)
	}
	wantBalance(t, f, user, credit.Balance{Daily: 10, Subscription: 100})
}

func TestSubscriptionLifecycle(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	f.applyWebhook(t, f.captured(user, checkout.KindSubscription, 1))
	want := []subscription.Status{subscription.PastDue, subscription.PastDue, subscription.Grace}
	for i, st := range want {
		ev := f.captured(user, checkout.KindSubscription, 1)
		ev.Type = checkout.TypePaymentDeclined
		f.applyWebhook(t, ev)
		if got := f.subscription(t, user).Status; got != st {
			t.Fatalf("after decline %d: %s, want %s", i+1, got, st)
		}
	}
	f.clock.Advance(subscription.GracePeriod - time.Minute)
	if n, err := f.store.ExpireSubscriptions(f.ctx, f.clock.Now(), 100); err != nil || n != 0 {
		t.Fatalf("expired early: %d %v", n, err)
	}
	f.clock.Advance(time.Minute)
	if n, err := f.store.ExpireSubscriptions(f.ctx, f.clock.Now(), 100); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	if sub := f.subscription(t, user); sub.Status != subscription.Expired || sub.Tier() != subscription.TierFree {
		t.Fatalf("after grace: %+v", sub)
	}
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE type = 'billing.subscription.expired' AND payload->'data'->>'user_id' = $1`, user); n != 1 {
		t.Fatalf("%d expired events", n)
	}

	// Subscribe again, cancel: Pro until the period ends, then expired.
	f.applyWebhook(t, f.captured(user, checkout.KindSubscription, 1))
	if _, err := f.store.CancelSubscription(f.ctx, user, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	sub := f.subscription(t, user)
	if sub.Status != subscription.Cancelled || !sub.CancelAtPeriodEnd || sub.Tier() != subscription.TierPro {
		t.Fatalf("cancelled: %+v", sub)
	}
	f.clock.Set(sub.PeriodEnd)
	if n, err := f.store.ExpireSubscriptions(f.ctx, f.clock.Now(), 100); err != nil || n != 1 {
		t.Fatalf("expire cancelled: %d %v", n, err)
	}
	if _, err := f.store.CancelSubscription(f.ctx, user, f.clock.Now()); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("cancel without a subscription: %v", err)
	}
}

func TestPurchaseCap(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	start := func(n int) error {
		return f.store.StartPayment(f.ctx, store.Payment{ID: uuid.NewString(), UserID: user, Kind: checkout.KindCredits, Credits: n, Currency: "USD"}, f.clock.Now())
	}
	if err := start(300); err != nil {
		t.Fatal(err)
	}
	if err := start(200); err != nil {
		t.Fatal(err)
	}
	if err := start(1); apperr.CodeOf(err) != apperr.LimitExceeded {
		t.Fatalf("501st credit of the month: %v", err)
	}
	// A new UTC month (start is January 31).
	f.clock.Set(credit.NextMidnight(f.clock.Now()))
	if err := start(500); err != nil {
		t.Fatal(err)
	}
	// Pro checkout twice.
	sub := store.Payment{ID: uuid.NewString(), UserID: user, Kind: checkout.KindSubscription, Currency: "USD"}
	if err := f.store.StartPayment(f.ctx, sub, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.applyWebhook(t, checkout.Event{ID: "evt_" + uuid.NewString(), Type: checkout.TypePaymentCaptured,
		Data: checkout.EventData{ID: "pay_" + uuid.NewString(), Reference: sub.ID}})
	sub.ID = uuid.NewString()
	if err := f.store.StartPayment(f.ctx, sub, f.clock.Now()); apperr.CodeOf(err) != apperr.AlreadySubscribed {
		t.Fatalf("second checkout: %v", err)
	}
}
