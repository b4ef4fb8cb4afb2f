package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

// TestAppendTaskMatchesMarshal holds AppendTask to what encoding/json makes of the
// wire.Task, byte for byte, for every kind of field value and string.
func TestAppendTaskMatchesMarshal(t *testing.T) {
	t.Parallel()
	due := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("X", 3*3600))
	done := time.Date(2026, 3, 5, 0, 0, 0, 1, time.UTC)
	est, tmpl := 90, "0c5b1a2e-4f0a-4bb1-9d7e-0e5c7f3a1b2c"
	full := task.Task{
		ID: "5f1d7c3e-2a4b-4c6d-8e9f-0a1b2c3d4e5f", UserID: "u-1", Title: "title", Description: "d",
		Priority: task.High, DueDate: &due, EstimatedDuration: &est, FocusTimeSeconds: 1500, Completed: true,
		CompletedAt: &done, CompletedBy: task.ByForce, Hidden: true, Archived: true, TemplateID: &tmpl,
		SubtaskCount: 5, SubtaskCompletedCount: -3, Version: 1 << 40,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local), UpdatedAt: due,
	}
	tests := []struct {
		name string
		task task.Task
	}{
		{name: "zero", task: task.Task{}},
		{name: "every field set", task: full},
	}
	for _, s := range []string{
		"", "plain ascii", `quote " and backslash \`, "<script>&amp;</script>", "tab\tnewline\n\x00\x1f\x7f",
		"café ✓ 日本語 🎉", "line\u2028para\u2029", "bad \xff utf-8 \xc3", "\ufffd replacement", "ends with \xe2\x82",
	} {
		tk := full
		tk.Title, tk.Description, tk.ID = s, s+s, s
		tests = append(tests, struct {
			name string
			task task.Task
		}{name: "string " + s, task: tk})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(wire.FromTask(tt.task))
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte("prefix")
			got := wire.AppendTask(prefix, tt.task)
			if string(got[:len(prefix)]) != "prefix" || string(got[len(prefix):]) != string(want) {
				t.Errorf("AppendTask:\n got %s\nwant %s", got[len(prefix):], want)
			}
		})
	}
}

// TestAppendFullDetailMatchesMarshal holds AppendFullDetail to encoding/json's output
// for a task with and without subtasks and reminders.
func TestAppendFullDetailMatchesMarshal(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("X", -3600))
	off := 15
	subs := []task.Subtask{
		{ID: "s1", TaskID: "t", UserID: "u", Title: "step <1> \u2028", Completed: true, CompletedAt: &at, OrderIndex: 0, Source: task.SourceAI, CreatedAt: at, UpdatedAt: at},
		{ID: "s2", TaskID: "t", UserID: "u", Title: "step 2", OrderIndex: 1, Source: task.SourceUser, CreatedAt: at, UpdatedAt: at},
	}
	rems := []reminder.Reminder{
		{ID: "r1", TaskID: "t", UserID: "u", Type: reminder.Before, OffsetMinutes: &off, ScheduledAt: &at, Method: reminder.InApp, Version: 2, CreatedAt: at, UpdatedAt: at},
		{ID: "r2", TaskID: "t", UserID: "u", Type: reminder.Absolute, Method: reminder.Push, Fired: true, FiredAt: &at, CreatedAt: at, UpdatedAt: at},
	}
	tk := task.Task{ID: "t", UserID: "u", Title: "x & y", Priority: task.Low, CreatedAt: at, UpdatedAt: at}
	tests := []struct {
		name string
		subs []task.Subtask
		rems []reminder.Reminder
	}{
		{name: "none (nil)"},
		{name: "none (empty)", subs: []task.Subtask{}, rems: []reminder.Reminder{}},
		{name: "both", subs: subs, rems: rems},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(wire.FromFullDetail(tk, tt.subs, tt.rems))
			if err != nil {
				t.Fatal(err)
			}
			if got := wire.AppendFullDetail(nil, tk, tt.subs, tt.rems); string(got) != string(want) {
				t.Errorf("AppendFullDetail:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// FuzzAppendString keeps AppendTask's string encoding identical to encoding/json's.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "<&>", "\u2028", "\xff", "é", "\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tk := task.Task{Title: s}
		want, err := json.Marshal(wire.FromTask(tk))
		if err != nil {
			t.Fatal(err)
		}
		if got := wire.AppendTask(nil, tk); string(got) != string(want) {
			t.Errorf("AppendTask(%q):\n got %s\nwant %s", s, got, want)
		}
	})
}

// benchTasks is a GET /tasks page: 25 tasks as BenchmarkListTasks makes them.
func benchTasks() []task.Task {
	now := time.Now()
	ts := make([]task.Task, 25)
	for i := range ts {
		ts[i] = task.Task{ID: "5f1d7c3e-2a4b-4c6d-8e9f-0a1b2c3d4e5f", UserID: "0c5b1a2e-4f0a-4bb1-9d7e-0e5c7f3a1b2c",
			Title: "bench 42", Description: "a task of a usual size", Priority: task.Medium, Version: 1,
			CreatedAt: now, UpdatedAt: now}
	}
	return ts
}

// BenchmarkAppendTask and BenchmarkMarshalTask compare the two encodings of a page.
func BenchmarkAppendTask(b *testing.B) {
	ts := benchTasks()
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = buf[:0]
		for _, t := range ts {
			buf = wire.AppendTask(buf, t)
		}
	}
}

func BenchmarkMarshalTask(b *testing.B) {
	ts := benchTasks()
	b.ReportAllocs()
	for b.Loop() {
		out := make([]wire.Task, 0, len(ts))
		for _, t := range ts {
			out = append(out, wire.FromTask(t))
		}
		if _, err := json.Marshal(out); err != nil {
			b.Fatal(err)
		}
	}
}
