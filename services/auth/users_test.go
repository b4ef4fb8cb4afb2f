package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/natsx"
	"github.com/perpetua-flow/backend/services/auth/internal/httpapi"
	"github.com/perpetua-flow/backend/services/auth/internal/natsapi"
)

func TestUsersMeGetAndPatch(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	tok := b.devLogin(newEmail())
	var got struct {
		Data httpapi.UserJSON `json:"data"`
	}
	r := b.do("GET", "/api/v1/users/me", tok.AccessToken, nil)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r.json(t, &got)
	if got.Data.ID != tok.User.ID || got.Data.GoogleID != "" || !strings.Contains(string(r.body), `"google_id":""`) {
		t.Fatalf("me %s", r.body)
	}

	tests := []struct {
		name   string
		body   any
		fields []string
	}{
		{"empty name", map[string]any{"name": ""}, []string{"name"}},
		{"101 chars", map[string]any{"name": strings.Repeat("a", 101)}, []string{"name"}},
		{"null name", map[string]any{"name": nil}, []string{"name"}},
		{"bad timezone", map[string]any{"timezone": "Mars/Olympus_Mons"}, []string{"timezone"}},
		{"both bad", map[string]any{"name": "", "timezone": "Nowhere"}, []string{"name", "timezone"}},
		{"wrong type", map[string]any{"name": 5}, []string{"name"}},
		{"unknown field", map[string]any{"email": "x@example.com"}, []string{"email"}},
	}
	for _, tt := range tests {
		r := b.do("PATCH", "/api/v1/users/me", tok.AccessToken, tt.body)
		if r.status != http.StatusBadRequest || r.errorCode() != "VALIDATION_ERROR" {
			t.Fatalf("%s: %d %s", tt.name, r.status, r.body)
		}
		if f := r.errorFields(); !slices.Equal(f, tt.fields) {
			t.Fatalf("%s: fields %v, want %v", tt.name, f, tt.fields)
		}
	}
	b.clock.Advance(time.Minute)
	r = b.do("PATCH", "/api/v1/users/me", tok.AccessToken, map[string]any{"name": strings.Repeat("é", 100), "timezone": "America/New_York"})
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r.json(t, &got)
	if got.Data.Name != strings.Repeat("é", 100) || got.Data.Timezone != "America/New_York" || !got.Data.UpdatedAt.After(tok.User.UpdatedAt) {
		t.Fatalf("patched %+v", got.Data)
	}
	// Only what is sent changes.
	b.do("PATCH", "/api/v1/users/me", tok.AccessToken, map[string]any{"name": "Ada"}).json(t, &got)
	if got.Data.Name != "Ada" || got.Data.Timezone != "America/New_York" {
		t.Fatalf("partial patch %+v", got.Data)
	}
	if r := b.do("PATCH", "/api/v1/users/me", tok.AccessToken, map[string]any{}); r.status != http.StatusOK {
		t.Fatalf("empty patch: %d", r.status)
	}
	if r := b.do("PATCH", "/api/v1/users/me", tok.AccessToken, nil); r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("no body: %d %s", r.status, r.body)
	}
	if r := b.do("GET", "/api/v1/users/me", "", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.status)
	}
}

func TestDeleteMeErasesAndEmitsDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	email := newEmail()
	tok := b.devLogin(email)
	other := b.devLogin(email) // a second device
	r := b.do("DELETE", "/api/v1/users/me", tok.AccessToken, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	ev := b.waitEvent(authevents.TypeUserDeleted, tok.User.ID)
	var data authevents.UserDeleted
	if err := ev.Decode(&data); err != nil || data.UserID != tok.User.ID || data.DeletedAt.IsZero() {
		t.Fatalf("event %+v %v", data, err)
	}
	if r := b.do("GET", "/api/v1/users/me", tok.AccessToken, nil); r.status != http.StatusNotFound {
		t.Fatalf("me after delete: %d", r.status)
	}
	for _, rt := range []string{tok.RefreshToken, other.RefreshToken} {
		if r := b.refresh(rt); r.status != http.StatusUnauthorized || r.errorCode() != "INVALID_REFRESH_TOKEN" {
			t.Fatalf("refresh after delete: %d %s", r.status, r.body)
		}
	}
	var sessions int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions WHERE user_id = $1`, tok.User.ID).Scan(&sessions); err != nil || sessions != 0 {
		t.Fatalf("sessions left %d %v", sessions, err)
	}
	// Repeating the DELETE answers the same and queues nothing more.
	if r := b.do("DELETE", "/api/v1/users/me", tok.AccessToken, nil); r.status != http.StatusAccepted {
		t.Fatalf("second delete: %d", r.status)
	}
	if n := b.outboxCount(authevents.TypeUserDeleted, tok.User.ID); n != 1 {
		t.Fatalf("%d deleted events", n)
	}
	// Signing in again with the address makes a new account.
	again := b.devLogin(email)
	if again.User.ID == tok.User.ID {
		t.Fatal("deleted account came back")
	}
}

// publishSubscription puts a billing fact on the BILLING stream, as billing's relay does.
func (b *bundle) publishSubscription(typ string, s billingevents.Subscription) {
	b.tb.Helper()
	ev, err := events.New(billingevents.Source, typ, s.UserID, s)
	if err != nil {
		b.tb.Fatal(err)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		b.tb.Fatal(err)
	}
	msg := nats.NewMsg(typ)
	msg.Data = body
	msg.Header.Set(nats.MsgIdHdr, ev.ID)
	if _, err := b.js.PublishMsg(context.Background(), msg); err != nil {
		b.tb.Fatal(err)
	}
}

func (b *bundle) tier(userID string) string {
	b.tb.Helper()
	var tier string
	if err := b.pool.QueryRow(context.Background(), `SELECT tier FROM users WHERE id = $1`, userID).Scan(&tier); err != nil {
		b.tb.Fatal(err)
	}
	return tier
}

func (b *bundle) inboxCount() int {
	b.tb.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM inbox`).Scan(&n); err != nil {
		b.tb.Fatal(err)
	}
	return n
}

func TestTierFollowsBillingEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	tok := b.devLogin(newEmail())
	uid := tok.User.ID
	t0 := b.clock.Now()
	b.publishSubscription(billingevents.TypeSubscriptionActivated, billingevents.Subscription{
		UserID: uid, SubscriptionID: "sub-1", Tier: "pro", Status: "active", Seq: 2, OccurredAt: t0,
	})
	eventually(t, "tier pro", func() bool { return b.tier(uid) == "pro" })

	// The next refreshed access token carries it.
	next := b.mustTokens(b.refresh(tok.RefreshToken))
	c, err := b.verifier().Verify(context.Background(), next.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tier != "pro" {
		t.Fatalf("tier in token %q, want pro", c.Tier)
	}

	// An older fact (lower seq) arriving late is ignored.
	b.publishSubscription(billingevents.TypeSubscriptionExpired, billingevents.Subscription{
		UserID: uid, SubscriptionID: "sub-0", Tier: "free", Status: "expired", Seq: 1, OccurredAt: t0.Add(-time.Hour),
	})
	eventually(t, "the stale fact processed", func() bool { return b.inboxCount() == 2 })
	if got := b.tier(uid); got != "pro" {
		t.Fatalf("stale expired fact applied: tier %s", got)
	}
	// A newer expiry applies.
	b.publishSubscription(billingevents.TypeSubscriptionExpired, billingevents.Subscription{
		UserID: uid, SubscriptionID: "sub-1", Tier: "free", Status: "expired", Seq: 3, OccurredAt: t0.Add(time.Hour),
	})
	eventually(t, "tier free", func() bool { return b.tier(uid) == "free" })
	// A fact about a user who does not exist is consumed without effect.
	b.publishSubscription(billingevents.TypeSubscriptionActivated, billingevents.Subscription{
		UserID: "0190b7a0-0000-7000-8000-000000000001", Tier: "pro", Seq: 1, OccurredAt: t0,
	})
	eventually(t, "unknown user's fact processed", func() bool { return b.inboxCount() == 4 })
	// A fact no retry can fix (not a user id) goes to the dead letters at once.
	b.publishSubscription(billingevents.TypeSubscriptionActivated, billingevents.Subscription{
		UserID: "not-a-uuid", Tier: "pro", Seq: 1, OccurredAt: t0,
	})
	dead := "deadletter." + natsapi.TierConsumer + "." + billingevents.TypeSubscriptionActivated
	eventually(t, "the bad fact dead-lettered", func() bool {
		s, err := b.js.Stream(context.Background(), natsx.StreamDeadLetter.Name)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(dead))
		return err == nil && info.State.Subjects[dead] == 1
	})
}
