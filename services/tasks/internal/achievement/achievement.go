// Package achievement owns the motivational rules of API.md §3: the achievement catalogue
// with its thresholds and perks, the evaluation that unlocks each achievement exactly
// once, the perk sums that raise a user's limits, the streak of consecutive UTC days with
// a completion, and the focus-completion rule. Everything is a pure function of its
// arguments (time is passed in), so the rules are table-tested without a database and
// cross UTC midnight and month ends deterministically.
package achievement

import "sort"

// ID names one achievement; the ids are part of the public contract (API responses,
// tasks.achievement.unlocked events, billing's daily-credit perks).
type ID string

// The catalogue's ids.
const (
	Tasks5    ID = "tasks_5"
	Tasks25   ID = "tasks_25"
	Tasks50   ID = "tasks_50"
	Tasks100  ID = "tasks_100"
	Tasks500  ID = "tasks_500"
	Streak7   ID = "streak_7"
	Streak30  ID = "streak_30"
	Streak100 ID = "streak_100"
	Focus10   ID = "focus_10"
	Focus50   ID = "focus_50"
	Notes10   ID = "notes_10"
)

// Category groups achievements by what they count.
type Category string

// Categories (API.md §3).
const (
	CategoryTasks   Category = "tasks"
	CategoryStreaks Category = "streaks"
	CategoryFocus   Category = "focus"
	CategoryNotes   Category = "notes"
)

// PerkType is the limit an achievement raises.
type PerkType string

// Perk types. DailyAICredits is granted by billing (it consumes
// tasks.achievement.unlocked); the other two raise this service's own limits.
const (
	PerkMaxTasks       PerkType = "max_tasks"
	PerkMaxNotes       PerkType = "max_notes"
	PerkDailyAICredits PerkType = "daily_ai_credits"
)

// Perk is what unlocking an achievement adds to a limit, for good: perks stack and are
// never taken back.
type Perk struct {
	Type  PerkType
	Value int
}

// Achievement is one entry of the catalogue. Threshold is compared with the Stats field
// its Category counts (see Stats.Of).
type Achievement struct {
	ID   ID
	Name string
	// Description says how to earn it ("Complete 5 tasks"); Message is what the user
	// reads when it unlocks.
	Description string
	Message     string
	Category    Category
	Threshold   int
	Perk        Perk
}

// Thresholds and perk values of API.md §3, one named constant each.
const (
	Tasks5Threshold    = 5
	Tasks25Threshold   = 25
	Tasks50Threshold   = 50
	Tasks100Threshold  = 100
	Tasks500Threshold  = 500
	Streak7Threshold   = 7
	Streak30Threshold  = 30
	Streak100Threshold = 100
	Focus10Threshold   = 10
	Focus50Threshold   = 50
	Notes10Threshold   = 10

	Tasks5MaxTasks          = 15
	Tasks25MaxTasks         = 25
	Tasks50MaxTasks         = 50
	Tasks100MaxTasks        = 100
	Tasks500MaxTasks        = 200
	Streak7DailyAICredits   = 3
	Streak30DailyAICredits  = 5
	Streak100DailyAICredits = 10
	Focus10MaxTasks         = 5
	Focus50MaxTasks         = 10
	Notes10MaxNotes         = 10
)

// catalogue is every achievement in display order (category, then threshold). It is
// unexported so no caller can change it; Catalogue hands out a copy.
var catalogue = []Achievement{
	{Tasks5, "Getting Started", "Complete 5 tasks", "You completed 5 tasks. Your task limit grows by 15.", CategoryTasks, Tasks5Threshold, Perk{PerkMaxTasks, Tasks5MaxTasks}},
	{Tasks25, "Productive", "Complete 25 tasks", "You completed 25 tasks. Your task limit grows by 25.", CategoryTasks, Tasks25Threshold, Perk{PerkMaxTasks, Tasks25MaxTasks}},
	{Tasks50, "Achiever", "Complete 50 tasks", "You completed 50 tasks. Your task limit grows by 50.", CategoryTasks, Tasks50Threshold, Perk{PerkMaxTasks, Tasks50MaxTasks}},
	{Tasks100, "Centurion", "Complete 100 tasks", "You completed 100 tasks. Your task limit grows by 100.", CategoryTasks, Tasks100Threshold, Perk{PerkMaxTasks, Tasks100MaxTasks}},
	{Tasks500, "Legend", "Complete 500 tasks", "You completed 500 tasks. Your task limit grows by 200.", CategoryTasks, Tasks500Threshold, Perk{PerkMaxTasks, Tasks500MaxTasks}},
	{Streak7, "Week Streak", "Keep a 7-day streak", "You completed tasks 7 days in a row. You get 3 more AI credits every day.", CategoryStreaks, Streak7Threshold, Perk{PerkDailyAICredits, Streak7DailyAICredits}},
	{Streak30, "Month Streak", "Keep a 30-day streak", "You completed tasks 30 days in a row. You get 5 more AI credits every day.", CategoryStreaks, Streak30Threshold, Perk{PerkDailyAICredits, Streak30DailyAICredits}},
	{Streak100, "Unstoppable", "Keep a 100-day streak", "You completed tasks 100 days in a row. You get 10 more AI credits every day.", CategoryStreaks, Streak100Threshold, Perk{PerkDailyAICredits, Streak100DailyAICredits}},
	{Focus10, "Focused", "Complete 10 tasks with focus", "You completed 10 tasks with focus. Your task limit grows by 5.", CategoryFocus, Focus10Threshold, Perk{PerkMaxTasks, Focus10MaxTasks}},
	{Focus50, "Deep Worker", "Complete 50 tasks with focus", "You completed 50 tasks with focus. Your task limit grows by 10.", CategoryFocus, Focus50Threshold, Perk{PerkMaxTasks, Focus50MaxTasks}},
	{Notes10, "Note Taker", "Convert 10 notes to tasks", "You turned 10 notes into tasks. Your note limit grows by 10.", CategoryNotes, Notes10Threshold, Perk{PerkMaxNotes, Notes10MaxNotes}},
}

// Catalogue is every achievement in display order (a copy; callers may keep it).
func Catalogue() []Achievement {
	return append([]Achievement(nil), catalogue...)
}

// Lookup is the achievement with id; ok is false for an id not in the catalogue (an id
// stored by a newer version, say), which callers skip rather than fail on.
func Lookup(id ID) (Achievement, bool) {
	for _, a := range catalogue {
		if a.ID == id {
			return a, true
		}
	}
	return Achievement{}, false
}

// Stats is what the achievements count, per user. LongestStreak (not the current one) is
// what streak achievements compare, so an unlock never depends on when it is read.
type Stats struct {
	LifetimeCompleted int // completions ever; recovery of a deleted task does not undo or add any
	CurrentStreak     int
	LongestStreak     int
	FocusCompletions  int
	NotesConverted    int
}

// Of is the value of s that category c compares with its thresholds.
func (s Stats) Of(c Category) int {
	switch c {
	case CategoryTasks:
		return s.LifetimeCompleted
	case CategoryStreaks:
		return s.LongestStreak
	case CategoryFocus:
		return s.FocusCompletions
	case CategoryNotes:
		return s.NotesConverted
	}
	return 0
}

// Set is a user's unlocked achievement ids.
type Set map[ID]bool

// NewSet is a Set of ids (unknown ids included; they are ignored by Perks and Evaluate).
func NewSet(ids ...ID) Set {
	s := make(Set, len(ids))
	for _, id := range ids {
		s[id] = true
	}
	return s
}

// IDs is the set's ids in catalogue order, then unknown ids sorted, for stable answers.
func (s Set) IDs() []ID {
	out := make([]ID, 0, len(s))
	for _, a := range catalogue {
		if s[a.ID] {
			out = append(out, a.ID)
		}
	}
	var unknown []ID
	for id, ok := range s {
		if _, known := Lookup(id); ok && !known {
			unknown = append(unknown, id)
		}
	}
	sort.Slice(unknown, func(i, j int) bool { return unknown[i] < unknown[j] })
	return append(out, unknown...)
}

// Evaluate is the achievements that stats reaches and that are not yet in unlocked, in
// catalogue order. The unlocked set (stored with a unique key per user and id) is what
// makes an unlock happen exactly once: evaluating the same stats again returns nothing
// new, and an achievement missed earlier (stats that predate the catalogue) is caught up
// on the next completion instead of being lost. The caller stores the result in the same
// transaction as the completion that produced stats.
func Evaluate(stats Stats, unlocked Set) []Achievement {
	var out []Achievement
	for _, a := range catalogue {
		if !unlocked[a.ID] && stats.Of(a.Category) >= a.Threshold {
			out = append(out, a)
		}
	}
	return out
}

// Perks is the sum of the perks of the unlocked achievements, by limit.
type Perks struct {
	MaxTasks       int
	MaxNotes       int
	DailyAICredits int
}

// SumPerks adds up the perks of unlocked (ids not in the catalogue add nothing).
func SumPerks(unlocked Set) Perks {
	var p Perks
	for _, a := range catalogue {
		if !unlocked[a.ID] {
			continue
		}
		switch a.Perk.Type {
		case PerkMaxTasks:
			p.MaxTasks += a.Perk.Value
		case PerkMaxNotes:
			p.MaxNotes += a.Perk.Value
		case PerkDailyAICredits:
			p.DailyAICredits += a.Perk.Value
		}
	}
	return p
}

// WouldRaise is the achievements not yet unlocked whose perk raises limit, in catalogue
// order: what a 409 LIMIT_EXCEEDED lists so the user knows how to earn more room.
func WouldRaise(limit PerkType, unlocked Set) []Achievement {
	var out []Achievement
	for _, a := range catalogue {
		if a.Perk.Type == limit && !unlocked[a.ID] {
			out = append(out, a)
		}
	}
	return out
}

// Progress is one line of GET /achievements/me.
type Progress struct {
	Achievement
	Current  int // the counted value, uncapped (a 9-day longest streak shows 9 of 7)
	Unlocked bool
}

// ProgressOf is every achievement of the catalogue with how far stats is towards it.
func ProgressOf(stats Stats, unlocked Set) []Progress {
	out := make([]Progress, 0, len(catalogue))
	for _, a := range catalogue {
		out = append(out, Progress{Achievement: a, Current: stats.Of(a.Category), Unlocked: unlocked[a.ID]})
	}
	return out
}
