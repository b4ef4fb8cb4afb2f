package subscription

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)

func TestAddPeriod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		from, to time.Time
	}{
		{"plain", time.Date(2026, 3, 15, 8, 0, 0, 0, time.UTC), time.Date(2026, 4, 15, 8, 0, 0, 0, time.UTC)},
		{"january 31 to the end of february", t0, time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC)},
		{"leap year", time.Date(2028, 1, 30, 0, 0, 0, 0, time.UTC), time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"year end", time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := AddPeriod(tt.from); !got.Equal(tt.to) {
				t.Fatalf("AddPeriod(%v) = %v, want %v", tt.from, got, tt.to)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	var s Subscription
	if s.Live() || s.Tier() != TierFree {
		t.Fatal("a zero subscription gives Pro")
	}
	s.Activate(t0)
	if s.Status != Active || s.Tier() != TierPro || s.Seq != 1 {
		t.Fatalf("activate: %+v", s)
	}
	steps := []struct {
		name   string
		apply  func() bool
		status Status
		seq    int64
	}{
		{"first failure", func() bool { return s.PaymentFailed(t0) }, PastDue, 2},
		{"second failure", func() bool { return s.PaymentFailed(t0) }, PastDue, 3},
		{"third failure starts grace", func() bool { return s.PaymentFailed(t0) }, Grace, 4},
		{"grace not over", func() bool { return !s.ExpireDue(t0.Add(GracePeriod - time.Second)) }, Grace, 4},
		{"a captured renewal returns to active", func() bool { return s.Renew(AddPeriod(s.PeriodEnd)) }, Active, 5},
		{"the same renewal again changes nothing", func() bool { return !s.Renew(s.PeriodEnd) }, Active, 5},
		{"cancel", s.Cancel, Cancelled, 6},
		{"cancel twice", func() bool { return !s.Cancel() }, Cancelled, 6},
		{"still pro before the period ends", func() bool { return !s.ExpireDue(s.PeriodEnd.Add(-time.Second)) && s.Tier() == TierPro }, Cancelled, 6},
		{"expired at period end", func() bool { return s.ExpireDue(s.PeriodEnd) }, Expired, 7},
		{"no renewal once expired", func() bool { return !s.Renew(AddPeriod(s.PeriodEnd)) }, Expired, 7},
	}
	for _, st := range steps {
		if !st.apply() || s.Status != st.status || s.Seq != st.seq {
			t.Fatalf("%s: %+v", st.name, s)
		}
	}
	if s.Tier() != TierFree {
		t.Fatal("expired subscription is still pro")
	}
}

func TestGraceExpires(t *testing.T) {
	t.Parallel()
	var s Subscription
	s.Activate(t0)
	for range 4 {
		s.PaymentFailed(t0)
	}
	if s.GraceEndsAt != t0.Add(GracePeriod) {
		t.Fatalf("a fourth failure moved the grace end: %v", s.GraceEndsAt)
	}
	if !s.ExpireDue(t0.Add(GracePeriod)) || s.Tier() != TierFree {
		t.Fatalf("grace did not expire: %+v", s)
	}
	if FeaturesOf(TierPro).MonthlyCredits != 50 || FeaturesOf(TierFree).VoiceNotes {
		t.Fatal("features")
	}
}
