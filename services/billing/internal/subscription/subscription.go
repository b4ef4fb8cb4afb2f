// Package subscription owns the Pro subscription's lifecycle (API.md §5): active →
// past_due (1st–2nd failed payment) → grace (3rd, 3 days) → expired; a captured payment
// returns to active; a cancel keeps Pro until the period ends. It also owns what each tier
// offers. It is pure: the store loads a Subscription, calls a method, and saves it.
package subscription

import "time"

// Status of a subscription.
type Status string

// The statuses of API.md §5.
const (
	Active    Status = "active"
	PastDue   Status = "past_due"
	Grace     Status = "grace"
	Cancelled Status = "cancelled"
	Expired   Status = "expired"
)

// Tiers.
const (
	TierFree = "free"
	TierPro  = "pro"
)

// Lifecycle numbers of API.md §5.
const (
	// PastDueFailures is how many failed payments leave the subscription past_due; the
	// next one starts the grace period.
	PastDueFailures = 2
	// GracePeriod is how long Pro lasts after the third failed payment.
	GracePeriod = 3 * 24 * time.Hour
	// PeriodMonths is the length of one billing period.
	PeriodMonths = 1
)

// Features is what a tier offers (API.md §3 and §5).
type Features struct {
	MaxSubtasks          int
	MaxDescriptionLength int
	VoiceNotes           bool
	MonthlyCredits       int
}

// Tier features.
var (
	FreeFeatures = Features{MaxSubtasks: 10, MaxDescriptionLength: 1000, VoiceNotes: false, MonthlyCredits: 0}
	ProFeatures  = Features{MaxSubtasks: 20, MaxDescriptionLength: 2000, VoiceNotes: true, MonthlyCredits: 50}
)

// FeaturesOf is the features of tier.
func FeaturesOf(tier string) Features {
	if tier == TierPro {
		return ProFeatures
	}
	return FreeFeatures
}

// Subscription is one user's Pro subscription (one per user; a resubscription after
// expiry reuses it with a new period).
type Subscription struct {
	ID     string
	UserID string
	// ProviderID is Checkout.com's subscription id once a provider event named one.
	ProviderID        string
	Status            Status
	PeriodStart       time.Time
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool
	FailedPayments    int
	// GraceEndsAt is set while in grace.
	GraceEndsAt time.Time
	// Seq orders the changes (billing.subscription.* events carry it).
	Seq int64
}

// Live reports whether the subscription still gives Pro (a new checkout is refused).
func (s Subscription) Live() bool { return s.Status != Expired && s.Status != "" }

// Tier is the tier the subscription gives.
func (s Subscription) Tier() string {
	if s.Live() {
		return TierPro
	}
	return TierFree
}

// AddPeriod is t plus one billing period, clamped to the end of a shorter month (Jan 31 →
// Feb 28), so periods never skip a month.
func AddPeriod(t time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	first := time.Date(y, m+PeriodMonths, 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// Activate starts (or restarts after expiry) a subscription at now.
func (s *Subscription) Activate(now time.Time) {
	s.Status = Active
	s.PeriodStart = now
	s.PeriodEnd = AddPeriod(now)
	s.CancelAtPeriodEnd = false
	s.FailedPayments = 0
	s.GraceEndsAt = time.Time{}
	s.Seq++
}

// Renew moves to the period ending at end and returns to active. A renewal whose period
// does not end later than the current one (a duplicate or late event) changes nothing and
// returns false, so a renewal can never be applied twice.
func (s *Subscription) Renew(end time.Time) bool {
	if !end.After(s.PeriodEnd.Add(RenewalTolerance)) || !s.Live() {
		return false
	}
	s.PeriodStart = s.PeriodEnd
	s.PeriodEnd = end
	s.Status = Active
	s.CancelAtPeriodEnd = false
	s.FailedPayments = 0
	s.GraceEndsAt = time.Time{}
	s.Seq++
	return true
}

// PaymentFailed records a failed renewal payment at now: past_due for the first two,
// grace (ending GracePeriod later) from the third. It returns whether anything changed.
func (s *Subscription) PaymentFailed(now time.Time) bool {
	if !s.Live() {
		return false
	}
	s.FailedPayments++
	switch {
	case s.FailedPayments <= PastDueFailures:
		s.Status = PastDue
	case s.Status != Grace:
		s.Status = Grace
		s.GraceEndsAt = now.Add(GracePeriod)
	}
	s.Seq++
	return true
}

// Cancel marks the subscription to end with its period; Pro stays until then. It returns
// false when there is nothing to cancel or it is already cancelled.
func (s *Subscription) Cancel() bool {
	if !s.Live() || s.Status == Cancelled {
		return false
	}
	s.Status = Cancelled
	s.CancelAtPeriodEnd = true
	s.Seq++
	return true
}

// ExpireDue ends a subscription whose grace period or cancelled period is over at now.
func (s *Subscription) ExpireDue(now time.Time) bool {
	due := (s.Status == Grace && !now.Before(s.GraceEndsAt)) ||
		(s.Status == Cancelled && !now.Before(s.PeriodEnd))
	if !due {
		return false
	}
	s.Status = Expired
	s.Seq++
	return true
}

// ProPriceMinor is the monthly price of Pro in minor units of the credit currency (USD 9.99).
const ProPriceMinor = 999

// RenewalWindow: a captured subscription payment renews only when the paid period ends
// within this window; earlier, the period is already paid for (the renewal arrived first
// as a subscription_renewed event), so a second capture must not extend it again.
const RenewalWindow = 7 * 24 * time.Hour

// RenewalTolerance: a renewal must move the period end by more than this, so two notices
// of one renewal (a capture and a subscription_renewed, a few seconds apart) count once.
const RenewalTolerance = 24 * time.Hour

// RenewalDue reports whether a captured subscription payment at now pays for a new period.
func (s Subscription) RenewalDue(now time.Time) bool {
	return s.Live() && s.PeriodEnd.Sub(now) <= RenewalWindow
}
