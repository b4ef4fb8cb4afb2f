package task

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"
)

var now = time.Date(2026, 3, 31, 23, 30, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func TestNewTaskValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     NewTask
		tier   Tier
		fields []string
	}{
		{"ok defaults", NewTask{Title: " a "}, Free, nil},
		{"blank title", NewTask{Title: "   "}, Free, []string{"title"}},
		{"long title", NewTask{Title: strings.Repeat("é", TitleMaxLen+1)}, Free, []string{"title"}},
		{"max title", NewTask{Title: strings.Repeat("é", TitleMaxLen)}, Free, nil},
		{"free description", NewTask{Title: "a", Description: strings.Repeat("x", DescriptionMaxLenFree+1)}, Free, []string{"description"}},
		{"pro description", NewTask{Title: "a", Description: strings.Repeat("x", DescriptionMaxLenFree+1)}, Pro, nil},
		{"pro description too long", NewTask{Title: "a", Description: strings.Repeat("x", DescriptionMaxLenPro+1)}, Pro, []string{"description"}},
		{"bad priority", NewTask{Title: "a", Priority: "urgent"}, Free, []string{"priority"}},
		{"due at 30 days", NewTask{Title: "a", DueDate: ptr(now.Add(DueDateMaxAhead))}, Free, nil},
		{"due past 30 days", NewTask{Title: "a", DueDate: ptr(now.Add(DueDateMaxAhead + time.Second))}, Free, []string{"due_date"}},
		{"estimate 0", NewTask{Title: "a", EstimatedDuration: ptr(0)}, Free, []string{"estimated_duration"}},
		{"estimate 721", NewTask{Title: "a", EstimatedDuration: ptr(721)}, Free, []string{"estimated_duration"}},
		{"estimate 720", NewTask{Title: "a", EstimatedDuration: ptr(720)}, Free, nil},
		{"all bad", NewTask{Title: "", Priority: "x", EstimatedDuration: ptr(-1)}, Free, []string{"title", "priority", "estimated_duration"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := tc.in.Validate(tc.tier, now)
			if len(tc.fields) == 0 {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				if out.Priority == "" || out.Title != strings.TrimSpace(tc.in.Title) {
					t.Fatalf("not normalised: %+v", out)
				}
				return
			}
			e, ok := apperr.As(err)
			if !ok || e.Code != apperr.Validation {
				t.Fatalf("want VALIDATION_ERROR, got %v", err)
			}
			if len(e.Details) != len(tc.fields) {
				t.Fatalf("details %v, want fields %v", e.Details, tc.fields)
			}
			for i, f := range tc.fields {
				if e.Details[i].Field != f {
					t.Fatalf("detail %d = %s, want %s", i, e.Details[i].Field, f)
				}
			}
		})
	}
}

func baseTask() Task {
	return Task{ID: "t", UserID: "u", Title: "T", Priority: Medium, Version: 3, CreatedAt: now, UpdatedAt: now}
}

func TestApplyPatchRules(t *testing.T) {
	t.Parallel()
	archived := baseTask()
	archived.Archived = true
	t.Run("stale version", func(t *testing.T) {
		_, err := ApplyPatch(baseTask(), Patch{Version: ptr(2), Title: ptr("x")}, Free, now)
		e, _ := apperr.As(err)
		if e == nil || e.Code != apperr.Conflict || e.Details[0].Field != "version" || e.Details[0].Message != "current version is 3" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("archived cannot complete", func(t *testing.T) {
		_, err := ApplyPatch(archived, Patch{Completed: ptr(true)}, Free, now)
		if apperr.CodeOf(err) != apperr.Archived {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("archived cannot retitle", func(t *testing.T) {
		_, err := ApplyPatch(archived, Patch{Title: ptr("new")}, Free, now)
		if apperr.CodeOf(err) != apperr.Archived {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unarchive and retitle at once", func(t *testing.T) {
		res, err := ApplyPatch(archived, Patch{Title: ptr("new"), Archived: ptr(false), Completed: ptr(true)}, Free, now)
		if err != nil || !res.Completed || res.Task.Title != "new" || res.Task.CompletedBy != ByManual {
			t.Fatalf("got %+v %v", res, err)
		}
	})
	t.Run("archived may change priority and be hidden", func(t *testing.T) {
		res, err := ApplyPatch(archived, Patch{Priority: ptr(High), Hidden: ptr(true), Title: ptr("T")}, Free, now)
		if err != nil || !res.Changed || res.Task.Version != 4 {
			t.Fatalf("got %+v %v", res, err)
		}
	})
	t.Run("no change no bump", func(t *testing.T) {
		res, err := ApplyPatch(baseTask(), Patch{Title: ptr(" T "), Completed: ptr(false)}, Free, now)
		if err != nil || res.Changed || res.Task.Version != 3 {
			t.Fatalf("got %+v %v", res, err)
		}
	})
	t.Run("null clears", func(t *testing.T) {
		cur := baseTask()
		cur.Description, cur.DueDate, cur.EstimatedDuration = "d", ptr(now), ptr(5)
		res, err := ApplyPatch(cur, Patch{Description: Clear[string](), DueDate: Clear[time.Time](), EstimatedDuration: Clear[int]()}, Free, now)
		if err != nil || res.Task.Description != "" || res.Task.DueDate != nil || res.Task.EstimatedDuration != nil || res.Task.Version != 4 {
			t.Fatalf("got %+v %v", res, err)
		}
	})
	t.Run("uncomplete clears completion", func(t *testing.T) {
		cur := baseTask()
		cur = markCompleted(cur, ByForce, now)
		res, err := ApplyPatch(cur, Patch{Completed: ptr(false)}, Free, now)
		if err != nil || res.Task.Completed || res.Task.CompletedAt != nil || res.Task.CompletedBy != "" || res.Completed {
			t.Fatalf("got %+v %v", res, err)
		}
	})
}

// TestApplyPatchProperties drives ApplyPatch with random patches and checks the
// invariants of API.md §3 on every step.
func TestApplyPatchProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	titles := []string{"a", " b ", "", "   ", strings.Repeat("x", 201), "T"}
	for run := 0; run < 200; run++ {
		cur := baseTask()
		for step := 0; step < 30; step++ {
			var p Patch
			if rng.IntN(3) == 0 {
				p.Title = ptr(titles[rng.IntN(len(titles))])
			}
			switch rng.IntN(4) {
			case 0:
				p.Description = Clear[string]()
			case 1:
				p.Description = SetTo(strings.Repeat("d", rng.IntN(1200)))
			}
			switch rng.IntN(4) {
			case 0:
				p.DueDate = Clear[time.Time]()
			case 1:
				p.DueDate = SetTo(now.Add(time.Duration(rng.IntN(40*24)) * time.Hour))
			}
			switch rng.IntN(4) {
			case 0:
				p.EstimatedDuration = Clear[int]()
			case 1:
				p.EstimatedDuration = SetTo(rng.IntN(800) - 10)
			}
			if rng.IntN(3) == 0 {
				p.Completed = ptr(rng.IntN(2) == 0)
			}
			if rng.IntN(4) == 0 {
				p.Archived = ptr(rng.IntN(2) == 0)
			}
			if rng.IntN(4) == 0 {
				p.Hidden = ptr(rng.IntN(2) == 0)
			}
			if rng.IntN(4) == 0 {
				p.Version = ptr(cur.Version - rng.IntN(2))
			}
			res, err := ApplyPatch(cur, p, Free, now)
			if err != nil {
				// A refused patch must say why with a known code and leave nothing changed.
				if c := apperr.CodeOf(err); c != apperr.Validation && c != apperr.Conflict && c != apperr.Archived {
					t.Fatalf("unexpected code %s", c)
				}
				if p.Version != nil && *p.Version != cur.Version && apperr.CodeOf(err) != apperr.Conflict {
					t.Fatalf("stale version must be CONFLICT first, got %v", err)
				}
				continue
			}
			next := res.Task
			if res.Changed != (next.Version == cur.Version+1) || (!res.Changed && next.Version != cur.Version) {
				t.Fatalf("version %d → %d with changed=%v", cur.Version, next.Version, res.Changed)
			}
			if !p.Description.Set && next.Description != cur.Description ||
				!p.DueDate.Set && !sameTime(next.DueDate, cur.DueDate) ||
				!p.EstimatedDuration.Set && !sameInt(next.EstimatedDuration, cur.EstimatedDuration) {
				t.Fatal("an absent field changed")
			}
			if p.Description.Set && p.Description.Value == nil && next.Description != "" ||
				p.DueDate.Set && p.DueDate.Value == nil && next.DueDate != nil ||
				p.EstimatedDuration.Set && p.EstimatedDuration.Value == nil && next.EstimatedDuration != nil {
				t.Fatal("null did not clear")
			}
			if next.Completed != (next.CompletedAt != nil) || next.Completed != (next.CompletedBy != "") {
				t.Fatalf("completion fields disagree: %+v", next)
			}
			if res.Completed != (!cur.Completed && next.Completed) {
				t.Fatal("Completed must report exactly the open → completed transition")
			}
			if cur.Archived && next.Archived && (next.Title != cur.Title || res.Completed) {
				t.Fatal("an archived task was retitled or completed")
			}
			if l := len([]rune(next.Title)); l < 1 || l > TitleMaxLen || strings.TrimSpace(next.Title) != next.Title {
				t.Fatalf("bad title %q", next.Title)
			}
			cur = next
		}
	}
}

func TestComplete(t *testing.T) {
	t.Parallel()
	next, done, err := Complete(baseTask(), ByAuto, now)
	if err != nil || !done || next.CompletedBy != ByAuto || next.Version != 4 {
		t.Fatalf("got %+v %v %v", next, done, err)
	}
	again, done, err := Complete(next, ByForce, now)
	if err != nil || done || again.Version != 4 || again.CompletedBy != ByAuto {
		t.Fatal("completing twice must be a no-op")
	}
	a := baseTask()
	a.Archived = true
	if _, _, err := Complete(a, ByForce, now); apperr.CodeOf(err) != apperr.Archived {
		t.Fatalf("got %v", err)
	}
}

func TestReorder(t *testing.T) {
	t.Parallel()
	cur := []string{"a", "b", "c"}
	if out, err := Reorder(cur, []string{"c", "a", "b"}); err != nil || strings.Join(out, "") != "cab" {
		t.Fatal(out, err)
	}
	for _, bad := range [][]string{{"a", "b"}, {"a", "b", "b"}, {"a", "b", "x"}, {"a", "b", "c", "a"}, {}} {
		if _, err := Reorder(cur, bad); apperr.CodeOf(err) != apperr.Validation {
			t.Fatalf("%v: got %v", bad, err)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	l := EffectiveLimits(Free, nil)
	if *l.MaxTasks != 50 || l.MaxSubtasks != 10 || l.MaxNotes != 20 {
		t.Fatalf("%+v", l)
	}
	l = EffectiveLimits(Pro, []string{"notes_10", "tasks_5"})
	if l.MaxTasks != nil || l.MaxSubtasks != 20 || l.MaxNotes != 60 {
		t.Fatalf("%+v", l)
	}
	l = EffectiveLimits(Free, []string{"tasks_5", "focus_10"})
	if *l.MaxTasks != 70 {
		t.Fatalf("%+v", l)
	}
	e, _ := apperr.As(ErrLimit(ResourceTasks, 50, 50, []string{"tasks_5"}))
	if e.Code != apperr.LimitExceeded || e.Details[0].Field != "limit" || e.Details[1].Field != "count" {
		t.Fatalf("%+v", e)
	}
	for _, d := range e.Details[2:] {
		if d.Field != "achievement" || strings.HasPrefix(d.Message, "tasks_5:") {
			t.Fatalf("unlocked or wrong detail %+v", d)
		}
	}
	if len(e.Details) != 2+6 { // tasks_25..tasks_500, focus_10, focus_50
		t.Fatalf("details %+v", e.Details)
	}
}

func TestNewNoteValidate(t *testing.T) {
	t.Parallel()
	d := ptr(60)
	tests := []struct {
		name string
		in   NewNote
		tier Tier
		code apperr.Code
	}{
		{"text", NewNote{Content: "hi"}, Free, ""},
		{"empty text", NewNote{Content: " "}, Free, apperr.Validation},
		{"too long", NewNote{Content: strings.Repeat("x", NoteContentMaxLen+1)}, Free, apperr.Validation},
		{"voice free", NewNote{VoiceURL: "https://a.example/x.m4a", VoiceDurationSeconds: d}, Free, apperr.ProTierRequired},
		{"voice pro empty content", NewNote{VoiceURL: "https://a.example/x.m4a", VoiceDurationSeconds: d}, Pro, ""},
		{"voice http", NewNote{VoiceURL: "http://a.example/x.m4a", VoiceDurationSeconds: d}, Pro, apperr.Validation},
		{"voice relative", NewNote{VoiceURL: "/x.m4a", VoiceDurationSeconds: d}, Pro, apperr.Validation},
		{"voice long url", NewNote{VoiceURL: "https://a.example/" + strings.Repeat("x", VoiceURLMaxLen), VoiceDurationSeconds: d}, Pro, apperr.Validation},
		{"voice no duration", NewNote{VoiceURL: "https://a.example/x.m4a"}, Pro, apperr.Validation},
		{"voice too long", NewNote{VoiceURL: "https://a.example/x.m4a", VoiceDurationSeconds: ptr(301)}, Pro, apperr.AudioDurationExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.in.Validate(tc.tier)
			if tc.code == "" && err != nil || tc.code != "" && apperr.CodeOf(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

func TestApplyNotePatch(t *testing.T) {
	t.Parallel()
	n := Note{Content: "c", Archived: true, Version: 2}
	if _, _, err := ApplyNotePatch(n, NotePatch{Content: ptr("d")}, now); apperr.CodeOf(err) != apperr.Archived {
		t.Fatalf("got %v", err)
	}
	next, changed, err := ApplyNotePatch(n, NotePatch{Archived: ptr(false)}, now)
	if err != nil || !changed || next.Archived || next.Version != 3 {
		t.Fatalf("got %+v %v", next, err)
	}
	next, changed, err = ApplyNotePatch(n, NotePatch{Archived: ptr(false), Content: ptr("d")}, now)
	if err != nil || !changed || next.Content != "d" {
		t.Fatalf("got %+v %v", next, err)
	}
	if _, _, err := ApplyNotePatch(Note{Content: "c"}, NotePatch{Content: ptr("")}, now); apperr.CodeOf(err) != apperr.Validation {
		t.Fatalf("empty content of a text note: %v", err)
	}
	if _, _, err := ApplyNotePatch(Note{Content: "c", VoiceURL: "https://x"}, NotePatch{Content: ptr("")}, now); err != nil {
		t.Fatalf("a voice note may be emptied: %v", err)
	}
	if _, _, err := ApplyNotePatch(n, NotePatch{Version: ptr(1), Archived: ptr(false)}, now); apperr.CodeOf(err) != apperr.Conflict {
		t.Fatalf("stale: %v", err)
	}
}

func TestApplyTranscription(t *testing.T) {
	t.Parallel()
	n := Note{VoiceURL: "https://x", TranscriptionStatus: TranscriptionPending, Version: 1}
	if got := ApplyTranscription(n, " hello ", true, now); got.Content != "hello" || got.TranscriptionStatus != TranscriptionCompleted || got.Version != 2 {
		t.Fatalf("%+v", got)
	}
	n.Content = "mine"
	if got := ApplyTranscription(n, "hello", true, now); got.Content != "mine\n\nhello" {
		t.Fatalf("%+v", got)
	}
	if got := ApplyTranscription(n, "", false, now); got.Content != "mine" || got.TranscriptionStatus != TranscriptionFailed {
		t.Fatalf("%+v", got)
	}
}
