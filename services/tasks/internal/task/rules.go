package task

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Change is one optional field of a PATCH: Set when the field was sent; a nil Value with
// Set means an explicit null (clear).
type Change[T any] struct {
	Set   bool
	Value *T
}

// SetTo is a Change to v.
func SetTo[T any](v T) Change[T] { return Change[T]{Set: true, Value: &v} }

// Clear is a Change to null.
func Clear[T any]() Change[T] { return Change[T]{Set: true} }

// NewTask is what a client sends to create a task.
type NewTask struct {
	Title             string
	Description       string
	Priority          Priority // "" means the default
	DueDate           *time.Time
	EstimatedDuration *int
}

// DescriptionMaxLen is the description limit of a tier.
func DescriptionMaxLen(t Tier) int {
	if t == Pro {
		return DescriptionMaxLenPro
	}
	return DescriptionMaxLenFree
}

// Validate checks n against the rules of API.md §3 and returns it normalised (trimmed
// title, default priority, UTC times). All bad fields are reported at once.
func (n NewTask) Validate(tier Tier, now time.Time) (NewTask, error) {
	var v apperr.Validator
	n.Title = strings.TrimSpace(n.Title)
	checkTitle(&v, "title", n.Title, TitleMaxLen)
	checkDescription(&v, n.Description, tier)
	if n.Priority == "" {
		n.Priority = Medium
	}
	v.Check(n.Priority.Valid(), "priority", "must be low, medium or high")
	if n.DueDate != nil {
		d := n.DueDate.UTC()
		n.DueDate = &d
		checkDueDate(&v, d, now)
	}
	if n.EstimatedDuration != nil {
		checkEstimate(&v, *n.EstimatedDuration)
	}
	return n, v.Err()
}

func checkTitle(v *apperr.Validator, field, title string, max int) {
	n := utf8.RuneCountInString(title)
	v.Check(n >= 1, field, "must not be blank")
	v.Check(n <= max, field, fmt.Sprintf("must be at most %d characters", max))
}

func checkDescription(v *apperr.Validator, d string, tier Tier) {
	max := DescriptionMaxLen(tier)
	v.Check(utf8.RuneCountInString(d) <= max, "description", fmt.Sprintf("must be at most %d characters on the %s tier", max, tier))
}

func checkDueDate(v *apperr.Validator, d, now time.Time) {
	v.Check(!d.After(now.Add(DueDateMaxAhead)), "due_date", "must be at most 30 days from now")
}

func checkEstimate(v *apperr.Validator, m int) {
	v.Check(m >= EstimatedDurationMin && m <= EstimatedDurationMax, "estimated_duration",
		fmt.Sprintf("must be from %d to %d minutes", EstimatedDurationMin, EstimatedDurationMax))
}

// Patch is a PATCH of a task: nil or unset fields stay as they are.
type Patch struct {
	Title             *string
	Description       Change[string] // null clears to ""
	Priority          *Priority
	DueDate           Change[time.Time]
	EstimatedDuration Change[int]
	Completed         *bool
	Hidden            *bool
	Archived          *bool
	// Version, when given, must equal the task's current version.
	Version *int
}

// PatchResult is the task after a patch and what happened to it.
type PatchResult struct {
	Task Task
	// Changed is false when the patch changed nothing (no version bump, no event).
	Changed bool
	// Completed is true when this patch completed the task (exactly one completion).
	Completed bool
}

// ErrArchived is the answer to completing or retitling an archived task.
func ErrArchived(what string) error {
	return apperr.New(apperr.Archived, what)
}

// ErrStale is the 409 of optimistic locking, carrying the current version.
func ErrStale(current int) error {
	return apperr.New(apperr.Conflict, "the task was changed by someone else; reload it",
		apperr.Field("version", fmt.Sprintf("current version is %d", current)))
}

// CheckVersion is optimistic locking: a given version must be the current one.
func CheckVersion(given *int, current int) error {
	if given != nil && *given != current {
		return ErrStale(current)
	}
	return nil
}

// ApplyPatch applies p to cur under the rules of API.md §3: validation, optimistic
// locking, archived tasks cannot be completed or retitled (unless the same patch
// unarchives them), explicit null clears, and a version bump only when something changed.
func ApplyPatch(cur Task, p Patch, tier Tier, now time.Time) (PatchResult, error) {
	if err := CheckVersion(p.Version, cur.Version); err != nil {
		return PatchResult{}, err
	}
	var v apperr.Validator
	next := cur
	if p.Title != nil {
		t := strings.TrimSpace(*p.Title)
		checkTitle(&v, "title", t, TitleMaxLen)
		next.Title = t
	}
	if p.Description.Set {
		next.Description = ""
		if p.Description.Value != nil {
			next.Description = *p.Description.Value
			if next.Description != cur.Description {
				checkDescription(&v, next.Description, tier)
			}
		}
	}
	if p.Priority != nil {
		v.Check(p.Priority.Valid(), "priority", "must be low, medium or high")
		next.Priority = *p.Priority
	}
	if p.DueDate.Set {
		next.DueDate = nil
		if p.DueDate.Value != nil {
			d := p.DueDate.Value.UTC()
			if cur.DueDate == nil || !cur.DueDate.Equal(d) {
				checkDueDate(&v, d, now)
			}
			next.DueDate = &d
		}
	}
	if p.EstimatedDuration.Set {
		next.EstimatedDuration = nil
		if p.EstimatedDuration.Value != nil {
			m := *p.EstimatedDuration.Value
			checkEstimate(&v, m)
			next.EstimatedDuration = &m
		}
	}
	if p.Hidden != nil {
		next.Hidden = *p.Hidden
	}
	if p.Archived != nil {
		next.Archived = *p.Archived
	}
	if err := v.Err(); err != nil {
		return PatchResult{}, err
	}
	// "While archived" is the state the patch leaves the task in, except that a patch may
	// unarchive and edit at once; archiving and completing at once completes first.
	stillArchived := cur.Archived && next.Archived
	if stillArchived && next.Title != cur.Title {
		return PatchResult{}, ErrArchived("an archived task cannot be retitled; unarchive it first")
	}
	res := PatchResult{}
	if p.Completed != nil && *p.Completed != cur.Completed {
		if *p.Completed {
			if stillArchived {
				return PatchResult{}, ErrArchived("an archived task cannot be completed; unarchive it first")
			}
			next = markCompleted(next, ByManual, now)
			res.Completed = true
		} else {
			next.Completed, next.CompletedAt, next.CompletedBy = false, nil, ""
		}
	}
	res.Changed = !sameContent(cur, next)
	if res.Changed {
		next.Version = cur.Version + 1
		next.UpdatedAt = now
	}
	res.Task = next
	return res, nil
}

// Complete is the one state transition to completed, used by every path (manual, auto,
// force, AI). It fails for an archived task; completing a completed task is a no-op
// (done == false), so a completion is counted exactly once.
func Complete(t Task, by CompletedBy, now time.Time) (next Task, done bool, err error) {
	if t.Completed {
		return t, false, nil
	}
	if t.Archived {
		return t, false, ErrArchived("an archived task cannot be completed; unarchive it first")
	}
	next = markCompleted(t, by, now)
	next.Version = t.Version + 1
	next.UpdatedAt = now
	return next, true, nil
}

func markCompleted(t Task, by CompletedBy, now time.Time) Task {
	t.Completed = true
	at := now
	t.CompletedAt = &at
	t.CompletedBy = by
	return t
}

func sameContent(a, b Task) bool {
	return a.Title == b.Title && a.Description == b.Description && a.Priority == b.Priority &&
		sameTime(a.DueDate, b.DueDate) && sameInt(a.EstimatedDuration, b.EstimatedDuration) &&
		a.Completed == b.Completed && a.Hidden == b.Hidden && a.Archived == b.Archived
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func sameInt(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// ValidateSubtaskTitle trims and checks a subtask title.
func ValidateSubtaskTitle(title string) (string, error) {
	var v apperr.Validator
	t := strings.TrimSpace(title)
	checkTitle(&v, "title", t, SubtaskTitleMaxLen)
	return t, v.Err()
}

// Reorder checks that ids names every one of current exactly once and returns it as the
// new order; anything else is a 400.
func Reorder(current []string, ids []string) ([]string, error) {
	if len(ids) != len(current) {
		return nil, apperr.Invalid(apperr.Field("subtask_ids", fmt.Sprintf("must list all %d subtasks of the task exactly once", len(current))))
	}
	known := make(map[string]bool, len(current))
	for _, id := range current {
		known[id] = true
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !known[id] {
			return nil, apperr.Invalid(apperr.Field("subtask_ids", "contains an id that is not a subtask of this task: "+id))
		}
		if seen[id] {
			return nil, apperr.Invalid(apperr.Field("subtask_ids", "lists a subtask twice: "+id))
		}
		seen[id] = true
	}
	return ids, nil
}

// NewNote is what a client sends to create a note.
type NewNote struct {
	Content              string
	VoiceURL             string
	VoiceDurationSeconds *int
}

// Validate checks a new note: content ≤ 2000 and not empty unless it is a voice note;
// voice notes are Pro only and need an absolute https URL and a duration.
func (n NewNote) Validate(tier Tier) (NewNote, error) {
	voice := n.VoiceURL != "" || n.VoiceDurationSeconds != nil
	if voice && tier != Pro {
		return n, apperr.New(apperr.ProTierRequired, "voice notes need the Pro tier")
	}
	var v apperr.Validator
	checkNoteContent(&v, n.Content, voice)
	if voice {
		v.Check(n.VoiceURL != "", "voice_url", "is required with voice_duration_seconds")
		if n.VoiceURL != "" {
			if err := ValidateAudioURL(n.VoiceURL); err != nil {
				v.Add("voice_url", err.Error())
			}
		}
		v.Check(n.VoiceDurationSeconds != nil, "voice_duration_seconds", "is required with voice_url")
		if d := n.VoiceDurationSeconds; d != nil {
			v.Check(*d >= 1, "voice_duration_seconds", "must be at least 1")
			if *d > VoiceDurationMaxSecond {
				if err := v.Err(); err != nil {
					return n, err
				}
				return n, apperr.New(apperr.AudioDurationExceeded, fmt.Sprintf("a voice note may be at most %d seconds", VoiceDurationMaxSecond),
					apperr.Field("voice_duration_seconds", fmt.Sprintf("must be at most %d", VoiceDurationMaxSecond)))
			}
		}
	}
	return n, v.Err()
}

func checkNoteContent(v *apperr.Validator, content string, voice bool) {
	v.Check(utf8.RuneCountInString(content) <= NoteContentMaxLen, "content", fmt.Sprintf("must be at most %d characters", NoteContentMaxLen))
	v.Check(voice || strings.TrimSpace(content) != "", "content", "must not be empty (only a voice note may have empty content)")
}

// ValidateAudioURL accepts an absolute https URL of at most 2048 characters (API.md §4).
func ValidateAudioURL(s string) error {
	if len(s) > VoiceURLMaxLen {
		return fmt.Errorf("must be at most %d characters", VoiceURLMaxLen)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("must be an absolute https URL")
	}
	return nil
}

// NotePatch is a PATCH of a note.
type NotePatch struct {
	Content  *string
	Archived *bool
	Version  *int
}

// ApplyNotePatch applies p: content edits are refused while the note stays archived
// (409 ARCHIVED), unarchiving is always allowed.
func ApplyNotePatch(cur Note, p NotePatch, now time.Time) (Note, bool, error) {
	if p.Version != nil && *p.Version != cur.Version {
		return cur, false, apperr.New(apperr.Conflict, "the note was changed by someone else; reload it",
			apperr.Field("version", fmt.Sprintf("current version is %d", cur.Version)))
	}
	next := cur
	if p.Archived != nil {
		next.Archived = *p.Archived
	}
	if p.Content != nil && *p.Content != cur.Content {
		if cur.Archived && next.Archived {
			return cur, false, apperr.New(apperr.Archived, "an archived note cannot be edited; unarchive it first")
		}
		var v apperr.Validator
		checkNoteContent(&v, *p.Content, cur.IsVoice())
		if err := v.Err(); err != nil {
			return cur, false, err
		}
		next.Content = *p.Content
	}
	changed := next.Content != cur.Content || next.Archived != cur.Archived
	if changed {
		next.Version = cur.Version + 1
		next.UpdatedAt = now
	}
	return next, changed, nil
}

// ApplyTranscription stores a finished transcription on a voice note: the text becomes
// the content (appended when the user already wrote something), cut to the content limit.
func ApplyTranscription(cur Note, text string, ok bool, now time.Time) Note {
	next := cur
	if ok {
		next.TranscriptionStatus = TranscriptionCompleted
		text = strings.TrimSpace(text)
		switch {
		case text == "":
		case strings.TrimSpace(cur.Content) == "":
			next.Content = text
		default:
			next.Content = cur.Content + "\n\n" + text
		}
		if utf8.RuneCountInString(next.Content) > NoteContentMaxLen {
			next.Content = string([]rune(next.Content)[:NoteContentMaxLen])
		}
	} else {
		next.TranscriptionStatus = TranscriptionFailed
	}
	next.Version = cur.Version + 1
	next.UpdatedAt = now
	return next
}

// TombstoneTitle is what GET /tombstones shows of a deleted note.
func TombstoneTitle(s string) string {
	const max = 80
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > max {
		return string([]rune(s)[:max]) + "…"
	}
	return s
}
