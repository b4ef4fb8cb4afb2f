package achievement

import "time"

// Focus rules (API.md §3 "Focus").
const (
	// FocusCompletionPercent is the share of a task's estimate that its focus time must
	// reach for its completion to count as a focus completion.
	FocusCompletionPercent = 50
	// FocusSessionMaxDuration is how long a session may stay open; a job closes it then,
	// crediting exactly this much time.
	FocusSessionMaxDuration = 4 * time.Hour
)

// BaseDailyAICredits is the daily AI credit grant before perks, for every tier (API.md §5).
// Billing owns the grant (its credit.DailyAmount); this copy only feeds the
// effective_limits shown by GET /achievements/me, which adds the streak perks to it.
const BaseDailyAICredits = 10

// IsFocusCompletion reports whether completing a task counts as a focus completion: it
// is completed while its focus session is open, or its accumulated focus time reaches
// FocusCompletionPercent of its estimate. A task without an estimate (or a non-positive
// one) counts only through an open session, since half of nothing is not focus.
func IsFocusCompletion(focusSeconds int, estimateMinutes *int, sessionOpen bool) bool {
	if sessionOpen {
		return true
	}
	if estimateMinutes == nil || *estimateMinutes <= 0 || focusSeconds <= 0 {
		return false
	}
	// Integer arithmetic, no rounding: seconds*100 >= minutes*60*percent.
	return int64(focusSeconds)*100 >= int64(*estimateMinutes)*60*FocusCompletionPercent
}

// FocusElapsed is the seconds a session started at start and stopped at stop adds to its
// task: never negative (a clock step back) and never more than FocusSessionMaxDuration.
func FocusElapsed(start, stop time.Time) int {
	d := stop.Sub(start)
	if d < 0 {
		d = 0
	}
	if d > FocusSessionMaxDuration {
		d = FocusSessionMaxDuration
	}
	return int(d / time.Second)
}
