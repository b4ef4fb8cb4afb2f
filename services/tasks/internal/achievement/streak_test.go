package achievement_test

import (
	"testing"
	"time"

	"github.com/perpetua-flow/backend/services/tasks/internal/achievement"
)

func utc(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

func midnight(y int, m time.Month, d int) time.Time { return utc(y, m, d, 0, 0, 0) }

// TestRecordCompletion walks sequences of completions across UTC midnight, month ends,
// February of common and leap years and the year end.
func TestRecordCompletion(t *testing.T) {
	t.Parallel()
	est := time.FixedZone("EST", -5*3600)
	tests := []struct {
		name  string
		start achievement.Streak
		at    []time.Time
		want  achievement.Streak
	}{
		{"first completion ever", achievement.Streak{}, []time.Time{utc(2026, 11, 26, 13, 0, 0)},
			achievement.Streak{1, 1, midnight(2026, 11, 26)}},
		{"twice the same day", achievement.Streak{}, []time.Time{utc(2026, 11, 26, 0, 0, 0), utc(2026, 11, 26, 23, 59, 59)},
			achievement.Streak{1, 1, midnight(2026, 11, 26)}},
		{"one second apart across midnight", achievement.Streak{}, []time.Time{utc(2026, 11, 26, 23, 59, 59), utc(2026, 11, 27, 0, 0, 0)},
			achievement.Streak{2, 2, midnight(2026, 11, 27)}},
		{"almost two days apart, still consecutive days", achievement.Streak{}, []time.Time{utc(2026, 11, 26, 0, 0, 0), utc(2026, 11, 27, 23, 59, 59)},
			achievement.Streak{2, 2, midnight(2026, 11, 27)}},
		{"a skipped day resets to 1", achievement.Streak{}, []time.Time{utc(2026, 11, 26, 23, 59, 59), utc(2026, 11, 28, 0, 0, 0)},
			achievement.Streak{1, 1, midnight(2026, 11, 28)}},
		{"month end, 30 days", achievement.Streak{}, []time.Time{utc(2026, 11, 30, 22, 0, 0), utc(2026, 12, 1, 1, 0, 0)},
			achievement.Streak{2, 2, midnight(2026, 12, 1)}},
		{"month end, 31 days", achievement.Streak{}, []time.Time{utc(2027, 1, 31, 12, 0, 0), utc(2027, 2, 1, 12, 0, 0)},
			achievement.Streak{2, 2, midnight(2027, 2, 1)}},
		{"february of a common year", achievement.Streak{}, []time.Time{utc(2027, 2, 28, 12, 0, 0), utc(2027, 3, 1, 12, 0, 0)},
			achievement.Streak{2, 2, midnight(2027, 3, 1)}},
		{"february of a leap year has a 29th", achievement.Streak{}, []time.Time{utc(2028, 2, 28, 12, 0, 0), utc(2028, 3, 1, 12, 0, 0)},
			achievement.Streak{1, 1, midnight(2028, 3, 1)}},
		{"february 29th continues", achievement.Streak{}, []time.Time{utc(2028, 2, 28, 12, 0, 0), utc(2028, 2, 29, 12, 0, 0), utc(2028, 3, 1, 12, 0, 0)},
			achievement.Streak{3, 3, midnight(2028, 3, 1)}},
		{"year end", achievement.Streak{}, []time.Time{utc(2026, 12, 31, 23, 30, 0), utc(2027, 1, 1, 0, 30, 0)},
			achievement.Streak{2, 2, midnight(2027, 1, 1)}},
		{"days are UTC days whatever the zone", achievement.Streak{}, []time.Time{time.Date(2026, 11, 26, 20, 0, 0, 0, est), time.Date(2026, 11, 26, 21, 0, 0, 0, est)},
			// 01:00 UTC on the 27th and 02:00 UTC on the 27th: one UTC day.
			achievement.Streak{1, 1, midnight(2026, 11, 27)}},
		{"extends a stored run", achievement.Streak{6, 6, midnight(2026, 11, 25)}, []time.Time{utc(2026, 11, 26, 9, 0, 0)},
			achievement.Streak{7, 7, midnight(2026, 11, 26)}},
		{"a reset keeps the longest", achievement.Streak{9, 12, midnight(2026, 11, 20)}, []time.Time{utc(2026, 11, 26, 9, 0, 0)},
			achievement.Streak{1, 12, midnight(2026, 11, 26)}},
		{"a new run passes the old longest", achievement.Streak{3, 3, midnight(2026, 11, 1)},
			[]time.Time{utc(2026, 11, 3, 1, 0, 0), utc(2026, 11, 4, 1, 0, 0), utc(2026, 11, 5, 1, 0, 0), utc(2026, 11, 6, 1, 0, 0)},
			achievement.Streak{4, 4, midnight(2026, 11, 6)}},
		{"a completion dated before the last day changes nothing", achievement.Streak{5, 5, midnight(2026, 11, 26)}, []time.Time{utc(2026, 11, 24, 9, 0, 0)},
			achievement.Streak{5, 5, midnight(2026, 11, 26)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.start
			for _, at := range tc.at {
				next := achievement.RecordCompletion(s, at)
				if next.Longest < s.Longest {
					t.Fatalf("longest dropped from %d to %d", s.Longest, next.Longest)
				}
				s = next
			}
			if s.Current != tc.want.Current || s.Longest != tc.want.Longest || !s.LastDay.Equal(tc.want.LastDay) {
				t.Fatalf("streak = %+v, want %+v", s, tc.want)
			}
		})
	}
}

// TestCurrentAt reads the current streak at moments around the UTC midnights after the
// last completion day.
func TestCurrentAt(t *testing.T) {
	t.Parallel()
	// Last completion on the last day of February (common year).
	s := achievement.Streak{Current: 4, Longest: 8, LastDay: midnight(2027, 2, 28)}
	tests := []struct {
		name string
		s    achievement.Streak
		now  time.Time
		want int
	}{
		{"never completed", achievement.Streak{}, utc(2027, 3, 1, 0, 0, 0), 0},
		{"same day", s, utc(2027, 2, 28, 23, 59, 59), 4},
		{"next day, which may still extend it", s, utc(2027, 3, 1, 0, 0, 0), 4},
		{"last second of the next day", s, utc(2027, 3, 1, 23, 59, 59), 4},
		{"a whole day passed without one", s, utc(2027, 3, 2, 0, 0, 0), 0},
		{"long after", s, utc(2027, 6, 1, 12, 0, 0), 0},
		{"clock behind the last day", s, utc(2027, 2, 27, 12, 0, 0), 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := achievement.CurrentAt(tc.s, tc.now); got != tc.want {
				t.Fatalf("CurrentAt(%v) = %d, want %d", tc.now, got, tc.want)
			}
		})
	}
}

// user is what the service keeps per user, driven the way the completion path drives it:
// record the completion, then evaluate against the unlocked set and add the new ones.
type user struct {
	completed int
	streak    achievement.Streak
	unlocked  achievement.Set
}

func (u *user) complete(at time.Time) []achievement.ID {
	u.completed++
	u.streak = achievement.RecordCompletion(u.streak, at)
	stats := achievement.Stats{LifetimeCompleted: u.completed, CurrentStreak: u.streak.Current, LongestStreak: u.streak.Longest}
	got := achievement.Evaluate(stats, u.unlocked)
	for _, a := range got {
		u.unlocked[a.ID] = true
	}
	return ids(got)
}

// TestScenario3 is API.md §10 scenario 3 on the domain rules: 4 completions and a 6-day
// streak, then one completion today unlocks tasks_5 and streak_7 (effective max_tasks 65,
// daily credits 13); skipping a day reads the current streak as 0 and keeps the longest at
// 7; 20 more completions unlock tasks_25. The days cross the end of February.
func TestScenario3(t *testing.T) {
	t.Parallel()
	u := &user{unlocked: achievement.Set{}}
	today := utc(2027, 3, 2, 10, 0, 0)
	// Four lifetime completions cannot make a 6-day run by themselves, so the scenario
	// starts from stored state: 4 completions, a run of 6 days ending yesterday (Mar 1,
	// after the end of February).
	u.completed = 4
	u.streak = achievement.Streak{Current: 6, Longest: 6, LastDay: midnight(2027, 3, 1)}

	if got := u.complete(today); !equalIDs(got, "tasks_5", "streak_7") {
		t.Fatalf("unlocked %v, want tasks_5 and streak_7", got)
	}
	perks := achievement.SumPerks(u.unlocked)
	if got := 50 + perks.MaxTasks; got != 65 {
		t.Errorf("effective max_tasks = %d, want 65", got)
	}
	if got := achievement.BaseDailyAICredits + perks.DailyAICredits; got != 13 {
		t.Errorf("daily credits = %d, want 13", got)
	}
	// The same day again unlocks nothing more and keeps the streak.
	if got := u.complete(today.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("second completion today unlocked %v", got)
	}

	// Skip a day: on Mar 4 the whole of Mar 3 passed without a completion.
	skip := utc(2027, 3, 4, 0, 0, 1)
	if got := achievement.CurrentAt(u.streak, skip); got != 0 {
		t.Errorf("current streak after a skipped day = %d, want 0", got)
	}
	if u.streak.Longest != 7 {
		t.Errorf("longest = %d, want 7", u.streak.Longest)
	}

	// 20 more completions (the user has 6 now): tasks_25 at the 25th, exactly once.
	var unlocks []achievement.ID
	for i := range 20 {
		unlocks = append(unlocks, u.complete(skip.Add(time.Duration(i)*time.Minute))...)
	}
	if !equalIDs(unlocks, "tasks_25") || u.completed != 26 {
		t.Fatalf("after 20 more (%d in all) unlocked %v, want tasks_25 once", u.completed, unlocks)
	}
	if u.streak.Current != 1 || u.streak.Longest != 7 {
		t.Fatalf("streak after the gap = %+v, want current 1, longest 7", u.streak)
	}
	if got := 50 + achievement.SumPerks(u.unlocked).MaxTasks; got != 90 {
		t.Fatalf("effective max_tasks = %d, want 90", got)
	}
}

func equalIDs(got []achievement.ID, want ...achievement.ID) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
