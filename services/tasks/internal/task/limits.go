package task

import (
	"fmt"
	"strconv"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Base limits of API.md §3 ("Limits"). Pro has no task limit.
const (
	MaxTasksFree    = 50
	MaxSubtasksFree = 10
	MaxSubtasksPro  = 20
	MaxNotesFree    = 20
	MaxNotesPro     = 50
)

// PerkType is what an achievement raises.
type PerkType string

// Perk types.
const (
	PerkMaxTasks     PerkType = "max_tasks"
	PerkMaxNotes     PerkType = "max_notes"
	PerkDailyCredits PerkType = "daily_ai_credits"
	CategoryTasks             = "tasks"
	CategoryStreaks           = "streaks"
	CategoryFocus             = "focus"
	CategoryNotes             = "notes"
)

// Achievement is one entry of the catalogue (API.md §3).
type Achievement struct {
	ID          string
	Name        string
	Description string
	Category    string
	Threshold   int
	PerkType    PerkType
	PerkValue   int
}

// Catalogue is every achievement, in display order. Unlocking them is issue 6; limits
// already use it to say which achievements would raise a limit.
var Catalogue = []Achievement{
	{ID: "tasks_5", Name: "Getting Started", Description: "Complete 5 tasks", Category: CategoryTasks, Threshold: 5, PerkType: PerkMaxTasks, PerkValue: 15},
	{ID: "tasks_25", Name: "Productive", Description: "Complete 25 tasks", Category: CategoryTasks, Threshold: 25, PerkType: PerkMaxTasks, PerkValue: 25},
	{ID: "tasks_50", Name: "Achiever", Description: "Complete 50 tasks", Category: CategoryTasks, Threshold: 50, PerkType: PerkMaxTasks, PerkValue: 50},
	{ID: "tasks_100", Name: "Centurion", Description: "Complete 100 tasks", Category: CategoryTasks, Threshold: 100, PerkType: PerkMaxTasks, PerkValue: 100},
	{ID: "tasks_500", Name: "Legend", Description: "Complete 500 tasks", Category: CategoryTasks, Threshold: 500, PerkType: PerkMaxTasks, PerkValue: 200},
	{ID: "streak_7", Name: "Week Streak", Description: "Keep a 7-day streak", Category: CategoryStreaks, Threshold: 7, PerkType: PerkDailyCredits, PerkValue: 3},
	{ID: "streak_30", Name: "Month Streak", Description: "Keep a 30-day streak", Category: CategoryStreaks, Threshold: 30, PerkType: PerkDailyCredits, PerkValue: 5},
	{ID: "streak_100", Name: "Unstoppable", Description: "Keep a 100-day streak", Category: CategoryStreaks, Threshold: 100, PerkType: PerkDailyCredits, PerkValue: 10},
	{ID: "focus_10", Name: "Focused", Description: "Complete 10 tasks with focus", Category: CategoryFocus, Threshold: 10, PerkType: PerkMaxTasks, PerkValue: 5},
	{ID: "focus_50", Name: "Deep Worker", Description: "Complete 50 tasks with focus", Category: CategoryFocus, Threshold: 50, PerkType: PerkMaxTasks, PerkValue: 10},
	{ID: "notes_10", Name: "Note Taker", Description: "Convert 10 notes to tasks", Category: CategoryNotes, Threshold: 10, PerkType: PerkMaxNotes, PerkValue: 10},
}

// Perks sums the perks of the unlocked achievement ids by type.
func Perks(unlocked []string) map[PerkType]int {
	sum := map[PerkType]int{}
	has := map[string]bool{}
	for _, id := range unlocked {
		has[id] = true
	}
	for _, a := range Catalogue {
		if has[a.ID] {
			sum[a.PerkType] += a.PerkValue
		}
	}
	return sum
}

// Limits are a user's effective limits. MaxTasks nil means unlimited (Pro).
type Limits struct {
	MaxTasks    *int
	MaxSubtasks int
	MaxNotes    int
}

// EffectiveLimits is base (by tier) plus the perks of the unlocked achievements.
func EffectiveLimits(tier Tier, unlocked []string) Limits {
	perks := Perks(unlocked)
	l := Limits{MaxSubtasks: MaxSubtasksFree, MaxNotes: MaxNotesFree + perks[PerkMaxNotes]}
	if tier == Pro {
		l.MaxSubtasks = MaxSubtasksPro
		l.MaxNotes = MaxNotesPro + perks[PerkMaxNotes]
		return l
	}
	n := MaxTasksFree + perks[PerkMaxTasks]
	l.MaxTasks = &n
	return l
}

// Resource names a limited resource.
type Resource string

// Limited resources.
const (
	ResourceTasks    Resource = "tasks"
	ResourceSubtasks Resource = "subtasks"
	ResourceNotes    Resource = "notes"
)

// ErrLimit is 409 LIMIT_EXCEEDED with the limit, the current count and the achievements
// (not yet unlocked) whose perks would raise it.
func ErrLimit(r Resource, limit, count int, unlocked []string) error {
	details := []apperr.Detail{
		apperr.Field("limit", strconv.Itoa(limit)),
		apperr.Field("count", strconv.Itoa(count)),
	}
	var perk PerkType
	switch r {
	case ResourceTasks:
		perk = PerkMaxTasks
	case ResourceNotes:
		perk = PerkMaxNotes
	}
	has := map[string]bool{}
	for _, id := range unlocked {
		has[id] = true
	}
	for _, a := range Catalogue {
		if perk != "" && a.PerkType == perk && !has[a.ID] {
			details = append(details, apperr.Field("achievement", fmt.Sprintf("%s: %s raises %s by %d", a.ID, a.Description, perk, a.PerkValue)))
		}
	}
	return apperr.New(apperr.LimitExceeded, fmt.Sprintf("%s limit of %d reached", r, limit), details...)
}
