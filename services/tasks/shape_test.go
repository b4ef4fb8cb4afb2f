package main

import (
	"slices"
	"strings"
	"testing"
)

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func wantKeys(t *testing.T, what string, m map[string]any, want string) {
	t.Helper()
	w := strings.Fields(want)
	slices.Sort(w)
	if got := keys(m); !slices.Equal(got, w) {
		t.Fatalf("%s keys\n got %v\nwant %v", what, got, w)
	}
}

// TestResponseShapes pins the fields of every resource to API.md §3 (plus the documented
// additions: version on notes, seq on notifications), so a contract change shows here.
func TestResponseShapes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "pro")
	const taskKeys = `id user_id title description priority due_date estimated_duration focus_time_seconds
		completed completed_at completed_by hidden archived template_id subtask_count subtask_completed_count
		version created_at updated_at`
	tk := u.createTask(t, map[string]any{"title": "shape"})
	wantKeys(t, "created task", tk, taskKeys+" subtasks reminders")
	got := u.do(t, "GET", "/api/v1/tasks/"+id(tk), nil).data(t)
	wantKeys(t, "task", got, taskKeys+" subtasks reminders")
	items, _ := u.do(t, "GET", "/api/v1/tasks", nil).list(t)
	wantKeys(t, "listed task", items[0].(map[string]any), taskKeys)
	r := u.do(t, "PATCH", "/api/v1/tasks/"+id(tk), map[string]any{"priority": "high"})
	wantKeys(t, "PATCH answer", r.json(t), "data unlocked_achievements")

	sub := u.do(t, "POST", "/api/v1/tasks/"+id(tk)+"/subtasks", map[string]any{"title": "s"}).data(t)
	wantKeys(t, "subtask", sub, "id task_id title completed completed_at order_index source created_at updated_at")
	r = u.do(t, "PATCH", "/api/v1/subtasks/"+id(sub), map[string]any{"completed": true})
	wantKeys(t, "subtask PATCH answer", r.json(t), "data task unlocked_achievements")

	fc := u.do(t, "POST", "/api/v1/tasks/"+id(u.createTask(t, map[string]any{"title": "f"}))+"/force-complete", map[string]any{"version": 1}).data(t)
	wantKeys(t, "force-complete", fc, "task unlocked_achievements streak")
	wantKeys(t, "streak", fc["streak"].(map[string]any), "current longest")

	note := u.do(t, "POST", "/api/v1/notes", map[string]any{"content": "n"}).data(t)
	wantKeys(t, "note", note, "id user_id content archived voice_url voice_duration_seconds transcription_status version created_at updated_at")

	del := u.do(t, "DELETE", "/api/v1/tasks/"+id(tk), nil).data(t)
	wantKeys(t, "delete", del, "deleted_id tombstone_id recoverable_until")
	tombs, p := u.do(t, "GET", "/api/v1/tombstones", nil).list(t)
	wantKeys(t, "pagination", p, "offset limit total has_more")
	wantKeys(t, "tombstone", tombs[0].(map[string]any), "id entity_type entity_id title deleted_at recoverable_until")
	acts, _ := u.do(t, "GET", "/api/v1/activity", nil).list(t)
	wantKeys(t, "activity", acts[0].(map[string]any), "id user_id entity_type entity_id action source details created_at")
	rec := u.do(t, "POST", "/api/v1/tombstones/"+del["tombstone_id"].(string)+"/recover", nil).data(t)
	wantKeys(t, "recover", rec, "entity_type task")
}
