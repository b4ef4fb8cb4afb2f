// Package credit owns the rules of AI credits: the four kinds and the order they are spent
// in, the amounts of each grant, when a daily grant is due and when it expires, how much a
// subscription carries over, and the monthly purchase cap. It is pure: the store loads
// grants, asks this package what to do, and writes the answer in one transaction.
package credit

import (
	"cmp"
	"errors"
	"slices"
	"time"
)

// Kind is the kind of a credit grant. The kinds are spent in the order of Kinds.
type Kind string

// The credit kinds of API.md §5.
const (
	Daily        Kind = "daily"
	Subscription Kind = "subscription"
	Purchased    Kind = "purchased"
	Kickstart    Kind = "kickstart"
)

// Kinds in consumption order: daily credits vanish at midnight so they go first, then the
// subscription's (capped at renewal), then what the user paid for, then the one-off gift.
var Kinds = []Kind{Daily, Subscription, Purchased, Kickstart}

// Business numbers of API.md §5.
const (
	// KickstartAmount is granted once when the account is created; it never expires.
	KickstartAmount = 5
	// DailyAmount is granted for every UTC day that starts after sign-up, before perks.
	DailyAmount = 10
	// SubscriptionAmount is granted when Pro starts and at every renewal.
	SubscriptionAmount = 50
	// CarryoverCap bounds the unused subscription credits kept at a renewal.
	CarryoverCap = 50
	// MinPurchase and MaxPurchase bound one purchase.
	MinPurchase = 1
	MaxPurchase = 500
	// MonthlyPurchaseCap bounds the credits bought per UTC calendar month.
	MonthlyPurchaseCap = 500
)

// ErrInsufficient means the usable grants do not cover the amount.
var ErrInsufficient = errors.New("credit: insufficient credits")

// Rank is a kind's place in the consumption order (unknown kinds last).
func (k Kind) Rank() int {
	if i := slices.Index(Kinds, k); i >= 0 {
		return i
	}
	return len(Kinds)
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool { return slices.Contains(Kinds, k) }

// Category is the history's category of a grant of this kind (API.md §5 calls purchased
// credits "purchase").
func (k Kind) Category() string {
	if k == Purchased {
		return "purchase"
	}
	return string(k)
}

// Grant is one batch of credits with what is left of it.
type Grant struct {
	ID        string
	Kind      Kind
	Amount    int
	Remaining int
	// ExpiresAt is zero for credits that never expire.
	ExpiresAt time.Time
	CreatedAt time.Time
}

// Expired reports whether g can no longer be spent at now.
func (g Grant) Expired(now time.Time) bool {
	return !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt)
}

// Usable reports whether g has credits that can be spent at now.
func (g Grant) Usable(now time.Time) bool { return g.Remaining > 0 && !g.Expired(now) }

// Compare orders grants for consumption: by kind, then the soonest expiry first (those
// that never expire last), then the oldest, then by id so the order is total.
func Compare(a, b Grant) int {
	if c := cmp.Compare(a.Kind.Rank(), b.Kind.Rank()); c != 0 {
		return c
	}
	switch {
	case a.ExpiresAt.IsZero() && !b.ExpiresAt.IsZero():
		return 1
	case !a.ExpiresAt.IsZero() && b.ExpiresAt.IsZero():
		return -1
	}
	if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Take is the part of one grant a consume spends.
type Take struct {
	GrantID string
	Kind    Kind
	Amount  int
}

// Plan says which grants pay for amount at now, in consumption order. It returns
// ErrInsufficient (and no takes) when the usable grants do not cover amount.
func Plan(grants []Grant, amount int, now time.Time) ([]Take, error) {
	if amount <= 0 {
		return nil, nil
	}
	usable := make([]Grant, 0, len(grants))
	total := 0
	for _, g := range grants {
		if g.Usable(now) {
			usable = append(usable, g)
			total += g.Remaining
		}
	}
	if total < amount {
		return nil, ErrInsufficient
	}
	slices.SortFunc(usable, Compare)
	var takes []Take
	left := amount
	for _, g := range usable {
		n := min(left, g.Remaining)
		takes = append(takes, Take{GrantID: g.ID, Kind: g.Kind, Amount: n})
		left -= n
		if left == 0 {
			break
		}
	}
	return takes, nil
}

// ByKind sums takes per kind, in consumption order (one history row per kind touched).
func ByKind(takes []Take) []Take {
	var out []Take
	for _, k := range Kinds {
		n := 0
		for _, t := range takes {
			if t.Kind == k {
				n += t.Amount
			}
		}
		if n > 0 {
			out = append(out, Take{Kind: k, Amount: n})
		}
	}
	return out
}

// Balance is what a user can spend now, per kind.
type Balance struct {
	Daily, Subscription, Purchased, Kickstart int
	// DailyResetsAt is the next UTC midnight, when today's daily credits expire.
	DailyResetsAt time.Time
}

// Total is the sum of every kind.
func (b Balance) Total() int { return b.Daily + b.Subscription + b.Purchased + b.Kickstart }

// Of is the balance of one kind.
func (b Balance) Of(k Kind) int {
	switch k {
	case Daily:
		return b.Daily
	case Subscription:
		return b.Subscription
	case Purchased:
		return b.Purchased
	case Kickstart:
		return b.Kickstart
	}
	return 0
}

// BalanceOf sums the usable grants at now.
func BalanceOf(grants []Grant, now time.Time) Balance {
	b := Balance{DailyResetsAt: NextMidnight(now)}
	for _, g := range grants {
		if !g.Usable(now) {
			continue
		}
		switch g.Kind {
		case Daily:
			b.Daily += g.Remaining
		case Subscription:
			b.Subscription += g.Remaining
		case Purchased:
			b.Purchased += g.Remaining
		case Kickstart:
			b.Kickstart += g.Remaining
		}
	}
	return b
}

// StartOfDay is midnight UTC of t's day.
func StartOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// NextMidnight is the UTC midnight after t: when a daily grant made at t expires.
func NextMidnight(t time.Time) time.Time { return StartOfDay(t).AddDate(0, 0, 1) }

// StartOfMonth is the first instant of t's UTC calendar month.
func StartOfMonth(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// DailyGrantDue reports whether the day containing now earns a daily grant for an account
// created at createdAt: only days that start after sign-up do.
func DailyGrantDue(createdAt, now time.Time) bool {
	return StartOfDay(now).After(createdAt)
}

// DailyGrantAmount is the daily grant with the user's daily_ai_credits perks.
func DailyGrantAmount(perks int) int { return DailyAmount + max(perks, 0) }

// Carryover is how many unused subscription credits survive a renewal.
func Carryover(unused int) int { return min(max(unused, 0), CarryoverCap) }

// PurchaseAllowed reports whether buying amount more credits keeps the month's purchases
// (boughtThisMonth, including purchases still being paid) within MonthlyPurchaseCap.
func PurchaseAllowed(boughtThisMonth, amount int) bool {
	return amount >= MinPurchase && amount <= MaxPurchase && boughtThisMonth+amount <= MonthlyPurchaseCap
}

// Prices of what can be bought (minor units of Currency).
const (
	Currency = "USD"
	// PricePerCreditMinor is the price of one purchased credit (USD 0.05).
	PricePerCreditMinor = 5
)
