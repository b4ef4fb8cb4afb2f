package task

import (
	"fmt"
	"strconv"

	"github.com/perpetua-flow/backend/libs/apperr"

	"github.com/perpetua-flow/backend/services/tasks/internal/achievement"
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

// Catalogue is every achievement, in display order, as package achievement defines it
// (thresholds and perks live there, once); limits use it to say which achievements
// would raise a limit.
var Catalogue = func() []Achievement {
	var out []Achievement
	for _, a := range achievement.Catalogue() {
		out = append(out, Achievement{ID: string(a.ID), Name: a.Name, Description: a.Description, Category: string(a.Category),
			Threshold: a.Threshold, PerkType: PerkType(a.Perk.Type), PerkValue: a.Perk.Value})
	}
	return out
}()

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
