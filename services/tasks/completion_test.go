package main

import (
	"sync"
	"testing"
)

// TestCompletionExactlyOnceUnderConcurrency: ten clients completing one task at once,
// and two clients completing its last two open subtasks at once, each produce exactly one
// completion and one tasks.task.completed.
func TestCompletionExactlyOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	tk := u.createTask(t, map[string]any{"title": "race"})
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want(t, u.do(t, "PATCH", "/api/v1/tasks/"+id(tk), map[string]any{"completed": true}), 200)
		}()
	}
	wg.Wait()
	if v := u.do(t, "GET", "/api/v1/tasks/"+id(tk), nil).data(t)["version"]; v != float64(2) {
		t.Fatalf("version %v, want 2: one change", v)
	}

	parent := u.createTask(t, map[string]any{"title": "parent"})
	var subs []string
	for _, title := range []string{"a", "b"} {
		r := u.do(t, "POST", "/api/v1/tasks/"+id(parent)+"/subtasks", map[string]any{"title": title})
		want(t, r, 201)
		subs = append(subs, id(r.data(t)))
	}
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want(t, u.do(t, "PATCH", "/api/v1/subtasks/"+s, map[string]any{"completed": true}), 200)
		}()
	}
	wg.Wait()
	got := u.do(t, "GET", "/api/v1/tasks/"+id(parent), nil).data(t)
	if got["completed"] != true || got["completed_by"] != "auto" || got["subtask_completed_count"] != float64(2) {
		t.Fatalf("%v", got)
	}
	e.waitEvents(t, "tasks.task.completed", u.ID, 2)
}
