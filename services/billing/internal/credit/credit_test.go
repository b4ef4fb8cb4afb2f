package credit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 31, 22, 0, 0, 0, time.UTC)

func TestPlanOrder(t *testing.T) {
	t.Parallel()
	tomorrow := NextMidnight(t0)
	grants := []Grant{
		{ID: "kick", Kind: Kickstart, Amount: 5, Remaining: 5, CreatedAt: t0.Add(-48 * time.Hour)},
		{ID: "buy-new", Kind: Purchased, Amount: 3, Remaining: 3, CreatedAt: t0.Add(-time.Hour)},
		{ID: "buy-old", Kind: Purchased, Amount: 3, Remaining: 3, CreatedAt: t0.Add(-2 * time.Hour)},
		{ID: "sub", Kind: Subscription, Amount: 50, Remaining: 2, CreatedAt: t0.Add(-3 * time.Hour)},
		{ID: "daily", Kind: Daily, Amount: 10, Remaining: 1, ExpiresAt: tomorrow, CreatedAt: t0},
		{ID: "daily-gone", Kind: Daily, Amount: 10, Remaining: 10, ExpiresAt: t0, CreatedAt: t0.Add(-24 * time.Hour)},
		{ID: "sub-soon", Kind: Subscription, Amount: 1, Remaining: 1, ExpiresAt: tomorrow, CreatedAt: t0},
	}
	tests := []struct {
		name   string
		amount int
		want   []Take
		err    error
	}{
		{name: "daily first", amount: 1, want: []Take{{"daily", Daily, 1}}},
		{name: "expiring subscription before the open-ended one", amount: 3, want: []Take{{"daily", Daily, 1}, {"sub-soon", Subscription, 1}, {"sub", Subscription, 1}}},
		{name: "oldest purchase first", amount: 6, want: []Take{{"daily", Daily, 1}, {"sub-soon", Subscription, 1}, {"sub", Subscription, 2}, {"buy-old", Purchased, 2}}},
		{name: "kickstart last", amount: 12, want: []Take{{"daily", Daily, 1}, {"sub-soon", Subscription, 1}, {"sub", Subscription, 2}, {"buy-old", Purchased, 3}, {"buy-new", Purchased, 3}, {"kick", Kickstart, 2}}},
		{name: "everything", amount: 15, want: []Take{{"daily", Daily, 1}, {"sub-soon", Subscription, 1}, {"sub", Subscription, 2}, {"buy-old", Purchased, 3}, {"buy-new", Purchased, 3}, {"kick", Kickstart, 5}}},
		{name: "expired grants do not count", amount: 16, err: ErrInsufficient},
		{name: "nothing", amount: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Plan(grants, tt.amount, t0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("takes = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBalanceOf(t *testing.T) {
	t.Parallel()
	grants := []Grant{
		{Kind: Daily, Remaining: 10, ExpiresAt: NextMidnight(t0)},
		{Kind: Daily, Remaining: 10, ExpiresAt: StartOfDay(t0)},
		{Kind: Subscription, Remaining: 50},
		{Kind: Purchased, Remaining: 7},
		{Kind: Kickstart, Remaining: 3},
	}
	b := BalanceOf(grants, t0)
	want := Balance{Daily: 10, Subscription: 50, Purchased: 7, Kickstart: 3, DailyResetsAt: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
	if b != want || b.Total() != 70 {
		t.Fatalf("balance = %+v (total %d), want %+v", b, b.Total(), want)
	}
	// At midnight the day's grant is gone.
	if got := BalanceOf(grants, NextMidnight(t0)).Daily; got != 0 {
		t.Fatalf("daily after midnight = %d", got)
	}
}

func TestDailyGrantDue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		created, now time.Time
		want         bool
	}{
		{"sign-up day", t0, t0.Add(time.Hour), false},
		{"next UTC day", t0, NextMidnight(t0), true},
		{"created exactly at midnight: that day did not start after sign-up", StartOfDay(t0), t0, false},
		{"month end crossed", time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 1, 0, time.UTC), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := DailyGrantDue(tt.created, tt.now); got != tt.want {
				t.Fatalf("DailyGrantDue = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAmounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		got, want int
	}{
		{"daily without perks", DailyGrantAmount(0), 10},
		{"daily with streak_7 perk", DailyGrantAmount(3), 13},
		{"carryover below cap", Carryover(20), 20},
		{"carryover capped", Carryover(80), 50},
		{"carryover of nothing", Carryover(-1), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestPurchaseAllowed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		bought, amount int
		want           bool
	}{
		{"first purchase", 0, 500, true},
		{"zero", 0, 0, false},
		{"over one purchase", 0, 501, false},
		{"fills the month", 499, 1, true},
		{"over the month", 499, 2, false},
	}
	for _, tt := range tests {
		if got := PurchaseAllowed(tt.bought, tt.amount); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if StartOfMonth(time.Date(2026, 2, 28, 23, 0, 0, 0, time.UTC)) != time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC) {
		t.Error("StartOfMonth")
	}
}

// TestPlanProperty spends random amounts from random grants and checks that a plan never
// takes more than a grant holds, never touches an unusable grant, pays exactly the amount,
// and respects the kind order.
func TestPlanProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		var grants []Grant
		for j := range rng.IntN(8) {
			g := Grant{ID: fmt.Sprint(j), Kind: Kinds[rng.IntN(len(Kinds))], Amount: 1 + rng.IntN(20), CreatedAt: t0.Add(time.Duration(rng.IntN(100)) * time.Hour)}
			g.Remaining = rng.IntN(g.Amount + 1)
			if rng.IntN(2) == 0 {
				g.ExpiresAt = t0.Add(time.Duration(rng.IntN(48)-24) * time.Hour)
			}
			grants = append(grants, g)
		}
		amount := rng.IntN(40)
		bal := BalanceOf(grants, t0).Total()
		takes, err := Plan(grants, amount, t0)
		if amount > bal {
			if !errors.Is(err, ErrInsufficient) || takes != nil {
				t.Fatalf("case %d: amount %d > balance %d: err %v takes %v", i, amount, bal, err, takes)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		sum, lastRank := 0, -1
		for _, tk := range takes {
			g := grants[slices.IndexFunc(grants, func(g Grant) bool { return g.ID == tk.GrantID })]
			if !g.Usable(t0) || tk.Amount <= 0 || tk.Amount > g.Remaining {
				t.Fatalf("case %d: bad take %+v of %+v", i, tk, g)
			}
			if tk.Kind.Rank() < lastRank {
				t.Fatalf("case %d: kind order broken: %v", i, takes)
			}
			lastRank = tk.Kind.Rank()
			sum += tk.Amount
		}
		if sum != amount {
			t.Fatalf("case %d: took %d, want %d", i, sum, amount)
		}
	}
}
