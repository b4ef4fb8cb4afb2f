package achievement

import "time"

// day is 24 hours; streak days are UTC calendar days, which have no DST.
const day = 24 * time.Hour

// Streak is a user's run of consecutive UTC days with at least one completion. LastDay is
// midnight UTC of the last day with a completion (zero: never completed anything).
// Current is as of LastDay; read it through CurrentAt, which knows whether the run is
// still alive today.
type Streak struct {
	Current int
	Longest int
	LastDay time.Time
}

// startOfDay is midnight UTC of t's day.
func startOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// RecordCompletion is s after a completion at at:
//   - the first completion ever, or the first after a day without one, starts at 1;
//   - a completion on the day after LastDay extends the run by one;
//   - another completion on LastDay changes nothing (days count, not completions);
//   - a completion dated before LastDay (a clock step back) changes nothing either, so a
//     run is never shortened by it.
//
// Longest never drops.
func RecordCompletion(s Streak, at time.Time) Streak {
	today := startOfDay(at)
	switch {
	case s.LastDay.IsZero():
		s.Current = 1
	case today.Equal(s.LastDay) || today.Before(s.LastDay):
		return s
	case today.Equal(s.LastDay.Add(day)):
		s.Current++
	default:
		s.Current = 1
	}
	s.LastDay = today
	if s.Current > s.Longest {
		s.Longest = s.Current
	}
	return s
}

// CurrentAt is the current streak as read at now: the stored run while its last day is
// today or yesterday (today may still extend it), and 0 once a whole UTC day has passed
// without a completion.
func CurrentAt(s Streak, now time.Time) int {
	if s.LastDay.IsZero() {
		return 0
	}
	today := startOfDay(now)
	if today.After(s.LastDay.Add(day)) {
		return 0
	}
	return s.Current
}
