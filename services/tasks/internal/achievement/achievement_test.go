package achievement_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/services/tasks/internal/achievement"
)

// TestCatalogueMatchesContract pins every id, category, threshold and perk to the table
// of API.md §3, so a change of the catalogue shows up here and in review.
func TestCatalogueMatchesContract(t *testing.T) {
	t.Parallel()
	type row struct {
		id        achievement.ID
		category  achievement.Category
		threshold int
		perk      achievement.PerkType
		value     int
	}
	want := []row{
		{"tasks_5", "tasks", 5, "max_tasks", 15},
		{"tasks_25", "tasks", 25, "max_tasks", 25},
		{"tasks_50", "tasks", 50, "max_tasks", 50},
		{"tasks_100", "tasks", 100, "max_tasks", 100},
		{"tasks_500", "tasks", 500, "max_tasks", 200},
		{"streak_7", "streaks", 7, "daily_ai_credits", 3},
		{"streak_30", "streaks", 30, "daily_ai_credits", 5},
		{"streak_100", "streaks", 100, "daily_ai_credits", 10},
		{"focus_10", "focus", 10, "max_tasks", 5},
		{"focus_50", "focus", 50, "max_tasks", 10},
		{"notes_10", "notes", 10, "max_notes", 10},
	}
	var got []row
	for _, a := range achievement.Catalogue() {
		if a.Name == "" || a.Message == "" || a.Description == "" {
			t.Errorf("%s: empty name, description or message", a.ID)
		}
		got = append(got, row{a.ID, a.Category, a.Threshold, a.Perk.Type, a.Perk.Value})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("catalogue\n got %v\nwant %v", got, want)
	}
	// The copy is the caller's: changing it leaves the catalogue alone.
	c := achievement.Catalogue()
	c[0].Threshold = 1
	if a, _ := achievement.Lookup(achievement.Tasks5); a.Threshold != 5 {
		t.Fatalf("Catalogue returned the shared slice")
	}
	if _, ok := achievement.Lookup("nope"); ok {
		t.Fatalf("Lookup of an unknown id succeeded")
	}
}

// TestEvaluateEachThreshold checks every achievement one below, at and above its
// threshold, alone and already unlocked.
func TestEvaluateEachThreshold(t *testing.T) {
	t.Parallel()
	statsWith := func(c achievement.Category, v int) achievement.Stats {
		switch c {
		case achievement.CategoryTasks:
			return achievement.Stats{LifetimeCompleted: v}
		case achievement.CategoryStreaks:
			// The current streak alone unlocks nothing: only the longest counts.
			return achievement.Stats{LongestStreak: v}
		case achievement.CategoryFocus:
			return achievement.Stats{FocusCompletions: v}
		default:
			return achievement.Stats{NotesConverted: v}
		}
	}
	for _, a := range achievement.Catalogue() {
		// Everything of the category below a is already unlocked, so only a can be new.
		below := achievement.Set{}
		for _, b := range achievement.Catalogue() {
			if b.Category == a.Category && b.Threshold < a.Threshold {
				below[b.ID] = true
			}
		}
		tests := []struct {
			name     string
			value    int
			unlocked achievement.Set
			want     []achievement.ID
		}{
			{"one below", a.Threshold - 1, below, nil},
			{"at", a.Threshold, below, []achievement.ID{a.ID}},
			{"at, already unlocked", a.Threshold, union(below, achievement.NewSet(a.ID)), nil},
		}
		for _, tc := range tests {
			t.Run(string(a.ID)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				got := ids(achievement.Evaluate(statsWith(a.Category, tc.value), tc.unlocked))
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Evaluate = %v, want %v", got, tc.want)
				}
			})
		}
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		stats    achievement.Stats
		unlocked achievement.Set
		want     []achievement.ID
	}{
		{"nothing yet", achievement.Stats{}, nil, nil},
		{"current streak does not count", achievement.Stats{CurrentStreak: 30, LongestStreak: 6}, nil, nil},
		{"several at once, catalogue order", achievement.Stats{LifetimeCompleted: 60, LongestStreak: 31, FocusCompletions: 10, NotesConverted: 10}, nil,
			[]achievement.ID{"tasks_5", "tasks_25", "tasks_50", "streak_7", "streak_30", "focus_10", "notes_10"}},
		{"a missed unlock is caught up", achievement.Stats{LifetimeCompleted: 26}, achievement.NewSet("tasks_25"), []achievement.ID{"tasks_5"}},
		{"everything unlocked", achievement.Stats{LifetimeCompleted: 1000, LongestStreak: 1000, FocusCompletions: 1000, NotesConverted: 1000},
			allIDs(), nil},
		{"unknown stored id is ignored", achievement.Stats{LifetimeCompleted: 5}, achievement.NewSet("legacy_1"), []achievement.ID{"tasks_5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ids(achievement.Evaluate(tc.stats, tc.unlocked)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Evaluate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPerksAndWouldRaise(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		unlocked  achievement.Set
		perks     achievement.Perks
		maxTasks  []achievement.ID
		maxNotes  []achievement.ID
		aiCredits []achievement.ID
	}{
		{"none", nil, achievement.Perks{},
			[]achievement.ID{"tasks_5", "tasks_25", "tasks_50", "tasks_100", "tasks_500", "focus_10", "focus_50"},
			[]achievement.ID{"notes_10"},
			[]achievement.ID{"streak_7", "streak_30", "streak_100"}},
		{"tasks_5", achievement.NewSet("tasks_5"), achievement.Perks{MaxTasks: 15},
			[]achievement.ID{"tasks_25", "tasks_50", "tasks_100", "tasks_500", "focus_10", "focus_50"},
			[]achievement.ID{"notes_10"},
			[]achievement.ID{"streak_7", "streak_30", "streak_100"}},
		{"all", allIDs(), achievement.Perks{MaxTasks: 15 + 25 + 50 + 100 + 200 + 5 + 10, MaxNotes: 10, DailyAICredits: 18}, nil, nil, nil},
		{"unknown id adds nothing", achievement.NewSet("legacy_1", "streak_7"), achievement.Perks{DailyAICredits: 3},
			[]achievement.ID{"tasks_5", "tasks_25", "tasks_50", "tasks_100", "tasks_500", "focus_10", "focus_50"},
			[]achievement.ID{"notes_10"},
			[]achievement.ID{"streak_30", "streak_100"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := achievement.SumPerks(tc.unlocked); got != tc.perks {
				t.Errorf("SumPerks = %+v, want %+v", got, tc.perks)
			}
			for _, c := range []struct {
				kind achievement.PerkType
				want []achievement.ID
			}{{achievement.PerkMaxTasks, tc.maxTasks}, {achievement.PerkMaxNotes, tc.maxNotes}, {achievement.PerkDailyAICredits, tc.aiCredits}} {
				if got := ids(achievement.WouldRaise(c.kind, tc.unlocked)); !reflect.DeepEqual(got, c.want) {
					t.Errorf("WouldRaise(%s) = %v, want %v", c.kind, got, c.want)
				}
			}
		})
	}
}

func TestProgressAndSetIDs(t *testing.T) {
	t.Parallel()
	stats := achievement.Stats{LifetimeCompleted: 7, CurrentStreak: 0, LongestStreak: 9, FocusCompletions: 2, NotesConverted: 0}
	unlocked := achievement.NewSet("streak_7", "tasks_5", "legacy_b", "legacy_a")
	got := achievement.ProgressOf(stats, unlocked)
	if len(got) != len(achievement.Catalogue()) {
		t.Fatalf("ProgressOf has %d rows", len(got))
	}
	want := map[achievement.ID]struct {
		current  int
		unlocked bool
	}{"tasks_5": {7, true}, "tasks_25": {7, false}, "streak_7": {9, true}, "streak_30": {9, false}, "focus_10": {2, false}, "notes_10": {0, false}}
	for _, p := range got {
		if w, ok := want[p.ID]; ok && (p.Current != w.current || p.Unlocked != w.unlocked) {
			t.Errorf("%s: current %d unlocked %v, want %d %v", p.ID, p.Current, p.Unlocked, w.current, w.unlocked)
		}
	}
	if got, want := unlocked.IDs(), []achievement.ID{"tasks_5", "streak_7", "legacy_a", "legacy_b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("IDs = %v, want %v", got, want)
	}
}

func TestFocusCompletion(t *testing.T) {
	t.Parallel()
	minutes := func(m int) *int { return &m }
	tests := []struct {
		name     string
		seconds  int
		estimate *int
		open     bool
		want     bool
	}{
		{"open session, no estimate", 0, nil, true, true},
		{"open session, no focus time yet", 0, minutes(60), true, true},
		{"no estimate, closed", 7200, nil, false, false},
		{"zero estimate", 7200, minutes(0), false, false},
		{"no focus time", 0, minutes(60), false, false},
		{"one second below half", 1799, minutes(60), false, false},
		{"exactly half", 1800, minutes(60), false, true},
		{"odd estimate, half is 30.5 min", 1829, minutes(61), false, false},
		{"odd estimate, exactly half", 1830, minutes(61), false, true},
		{"more than the estimate", 10000, minutes(1), false, true},
		{"largest estimate", 720 * 30, minutes(720), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := achievement.IsFocusCompletion(tc.seconds, tc.estimate, tc.open); got != tc.want {
				t.Fatalf("IsFocusCompletion(%d, %v, %v) = %v, want %v", tc.seconds, tc.estimate, tc.open, got, tc.want)
			}
		})
	}
}

func TestFocusElapsed(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		stop time.Time
		want int
	}{
		{"across midnight and the year end", start.Add(90 * time.Minute), 5400},
		{"clock stepped back", start.Add(-time.Minute), 0},
		{"capped at four hours", start.Add(5 * time.Hour), 4 * 3600},
		{"sub-second dropped", start.Add(1500 * time.Millisecond), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := achievement.FocusElapsed(start, tc.stop); got != tc.want {
				t.Fatalf("FocusElapsed = %d, want %d", got, tc.want)
			}
		})
	}
}

func ids(as []achievement.Achievement) []achievement.ID {
	var out []achievement.ID
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func allIDs() achievement.Set {
	s := achievement.Set{}
	for _, a := range achievement.Catalogue() {
		s[a.ID] = true
	}
	return s
}

func union(a, b achievement.Set) achievement.Set {
	out := achievement.Set{}
	for id := range a {
		out[id] = true
	}
	for id := range b {
		out[id] = true
	}
	return out
}
