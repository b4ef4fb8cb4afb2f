package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/events"
)

func id(m map[string]any) string { return m["id"].(string) }

// eventsOf collects the events published on the TASKS stream for subject.
func (e *env) eventsOf(t testing.TB, subject string) []events.Event {
	t.Helper()
	nc, err := nats.Connect(e.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "TASKS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	pending := int(info.NumPending)
	if pending == 0 {
		return nil
	}
	batch, err := cons.Fetch(pending, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		ev, err := events.Parse(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// eventCount polls until the TASKS stream holds n events of subject for taskID (and no
// more arrive within the poll).
func (e *env) waitEvents(t testing.TB, subject, subjectUser string, n int) []events.Event {
	t.Helper()
	// Every change the test made is committed; once the relay has published the whole
	// outbox, the stream holds every event there will be, so "exactly n" is meaningful.
	eventually(t, "outbox drained", func() bool {
		var pending int
		if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})
	var got []events.Event
	eventually(t, fmt.Sprintf("%d %s events", n, subject), func() bool {
		got = nil
		for _, ev := range e.eventsOf(t, subject) {
			if ev.Subject == subjectUser {
				got = append(got, ev)
			}
		}
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("%d %s events, want %d", len(got), subject, n)
	}
	return got
}

// TestScenario1TaskLifecycle is API.md §10 scenario 1; the absolute reminder is on the
// second task, so it is deleted with it and comes back with the recovery.
func TestScenario1TaskLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	doc := u.createTask(t, map[string]any{"title": "Write documentation"})

	r := u.do(t, "POST", "/api/v1/tasks/"+id(doc)+"/subtasks", map[string]any{"title": "Outline"})
	want(t, r, http.StatusCreated)
	sub := r.data(t)
	if sub["order_index"] != float64(0) || sub["source"] != "user" || sub["completed"] != false || sub["completed_at"] != nil {
		t.Fatalf("subtask %v", sub)
	}
	got := u.do(t, "GET", "/api/v1/tasks/"+id(doc), nil).data(t)
	if got["subtask_count"] != float64(1) || got["subtask_completed_count"] != float64(0) {
		t.Fatalf("counts %v", got)
	}

	r = u.do(t, "PATCH", "/api/v1/subtasks/"+id(sub), map[string]any{"completed": true})
	want(t, r, 200)
	if tk := r.json(t)["task"].(map[string]any); tk["completed"] != true || tk["completed_by"] != "auto" {
		t.Fatalf("task after last subtask %v", tk)
	}
	got = u.do(t, "GET", "/api/v1/tasks/"+id(doc), nil).data(t)
	if got["subtask_count"] != float64(1) || got["subtask_completed_count"] != float64(1) || got["completed"] != true ||
		got["completed_by"] != "auto" || got["version"] != float64(2) {
		t.Fatalf("after auto-complete %v", got)
	}
	// Un-completing the subtask leaves the task completed.
	want(t, u.do(t, "PATCH", "/api/v1/subtasks/"+id(sub), map[string]any{"completed": false}), 200)
	got = u.do(t, "GET", "/api/v1/tasks/"+id(doc), nil).data(t)
	if got["completed"] != true || got["subtask_completed_count"] != float64(0) {
		t.Fatalf("after un-completing a subtask %v", got)
	}

	second := u.createTask(t, map[string]any{"title": "Release", "priority": "high"})
	for _, title := range []string{"Tag", "Build", "Announce"} {
		want(t, u.do(t, "POST", "/api/v1/tasks/"+id(second)+"/subtasks", map[string]any{"title": title}), http.StatusCreated)
	}
	want(t, u.do(t, "PATCH", "/api/v1/subtasks/"+id(u.do(t, "GET", "/api/v1/tasks/"+id(second), nil).data(t)["subtasks"].([]any)[0].(map[string]any)),
		map[string]any{"completed": true}), 200)
	at := time.Now().UTC().Add(time.Hour).Truncate(time.Second).Format(time.RFC3339Nano)
	r = u.do(t, "POST", "/api/v1/tasks/"+id(second)+"/reminders", map[string]any{"type": "absolute", "scheduled_at": at})
	want(t, r, http.StatusCreated)
	rem := r.data(t)
	if rem["type"] != "absolute" || rem["scheduled_at"] != at || rem["fired"] != false || rem["task_id"] != id(second) {
		t.Fatalf("reminder %v", rem)
	}
	wantError(t, u.do(t, "POST", "/api/v1/tasks/"+id(second)+"/force-complete", map[string]any{}), 400, "VALIDATION_ERROR", "version")
	wantError(t, u.do(t, "POST", "/api/v1/tasks/"+id(second)+"/force-complete", map[string]any{"version": 7}), 409, "CONFLICT", "version")
	r = u.do(t, "POST", "/api/v1/tasks/"+id(second)+"/force-complete", map[string]any{"version": 1})
	want(t, r, 200)
	fc := r.data(t)
	ft := fc["task"].(map[string]any)
	if ft["completed"] != true || ft["completed_by"] != "force" || ft["subtask_completed_count"] != float64(3) || ft["version"] != float64(2) {
		t.Fatalf("force-complete %v", ft)
	}
	for _, s := range ft["subtasks"].([]any) {
		if s.(map[string]any)["completed"] != true {
			t.Fatalf("open subtask after force-complete: %v", s)
		}
	}
	if ua, ok := fc["unlocked_achievements"].([]any); !ok || len(ua) != 0 {
		t.Fatalf("unlocked_achievements %v", fc["unlocked_achievements"])
	}
	if _, ok := fc["streak"].(map[string]any); !ok {
		t.Fatalf("streak %v", fc["streak"])
	}

	r = u.do(t, "DELETE", "/api/v1/tasks/"+id(second), nil)
	want(t, r, 200)
	del := r.data(t)
	if del["deleted_id"] != id(second) || del["tombstone_id"] == "" || del["recoverable_until"] == nil {
		t.Fatalf("delete %v", del)
	}
	wantError(t, u.do(t, "GET", "/api/v1/tasks/"+id(second), nil), 404, "NOT_FOUND")
	items, _ := u.do(t, "GET", "/api/v1/tombstones", nil).list(t)
	if len(items) != 1 || items[0].(map[string]any)["entity_id"] != id(second) || items[0].(map[string]any)["title"] != "Release" {
		t.Fatalf("tombstones %v", items)
	}
	r = u.do(t, "POST", "/api/v1/tombstones/"+del["tombstone_id"].(string)+"/recover", nil)
	want(t, r, 200)
	rec := r.data(t)["task"].(map[string]any)
	if id(rec) != id(second) || rec["version"] != float64(1) || len(rec["subtasks"].([]any)) != 3 || rec["completed_by"] != "force" {
		t.Fatalf("recovered %v", rec)
	}
	if rems := rec["reminders"].([]any); len(rems) != 1 || id(rems[0].(map[string]any)) != id(rem) {
		t.Fatalf("recovered reminders %v", rec["reminders"])
	}
	back := u.do(t, "GET", "/api/v1/tasks/"+id(second), nil).data(t)
	if back["version"] != float64(1) || back["subtask_count"] != float64(3) {
		t.Fatalf("after recovery %v", back)
	}
	wantError(t, u.do(t, "POST", "/api/v1/tombstones/"+del["tombstone_id"].(string)+"/recover", nil), 404, "NOT_FOUND")

	// Each completion was emitted exactly once; recovery is not a completion.
	completed := e.waitEvents(t, "tasks.task.completed", u.ID, 2)
	by := map[string]bool{}
	for _, ev := range completed {
		by[ev.Type] = true
	}
	e.waitEvents(t, "tasks.task.created", u.ID, 2)
	e.waitEvents(t, "tasks.task.deleted", u.ID, 1)
	e.waitEvents(t, "tasks.task.recovered", u.ID, 1)
}

// TestScenario4OptimisticLocking: two clients update with version 1: one 200, one 409.
func TestScenario4OptimisticLocking(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	tk := u.createTask(t, map[string]any{"title": "shared"})
	var wg sync.WaitGroup
	res := make([]response, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = u.do(t, "PATCH", "/api/v1/tasks/"+id(tk), map[string]any{"title": fmt.Sprintf("client %d", i), "version": 1})
		}()
	}
	wg.Wait()
	ok, conflict := res[0], res[1]
	if ok.Status != 200 {
		ok, conflict = conflict, ok
	}
	want(t, ok, 200)
	if ok.data(t)["version"] != float64(2) {
		t.Fatalf("winner %s", ok.Body)
	}
	e409 := wantError(t, conflict, 409, "CONFLICT", "version")
	if d := e409["details"].([]any)[0].(map[string]any); d["message"] != "current version is 2" {
		t.Fatalf("details %v", d)
	}
	// Without a version the change applies to the current one.
	r := u.do(t, "PATCH", "/api/v1/tasks/"+id(tk), map[string]any{"hidden": true})
	want(t, r, 200)
	if r.data(t)["version"] != float64(3) {
		t.Fatalf("%s", r.Body)
	}
}

func TestPatchSemantics(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	due := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Second).Format(time.RFC3339)
	tk := u.createTask(t, map[string]any{"title": "p", "description": "d", "due_date": due, "estimated_duration": 30, "priority": "low"})
	if tk["due_date"] != due || tk["estimated_duration"] != float64(30) || tk["completed_by"] != "" || tk["completed_at"] != nil {
		t.Fatalf("created %v", tk)
	}
	path := "/api/v1/tasks/" + id(tk)

	// Nothing changes: no version bump.
	r := u.do(t, "PATCH", path, map[string]any{"title": "p", "priority": "low"})
	want(t, r, 200)
	if r.data(t)["version"] != float64(1) {
		t.Fatalf("%s", r.Body)
	}
	if ua, ok := r.json(t)["unlocked_achievements"].([]any); !ok || len(ua) != 0 {
		t.Fatalf("unlocked_achievements missing: %s", r.Body)
	}
	// Explicit null clears; absent fields stay.
	r = u.do(t, "PATCH", path, `{"description": null, "due_date": null, "estimated_duration": null}`)
	want(t, r, 200)
	d := r.data(t)
	if d["description"] != "" || d["due_date"] != nil || d["estimated_duration"] != nil || d["priority"] != "low" || d["version"] != float64(2) {
		t.Fatalf("after clear %v", d)
	}
	// PUT is an alias.
	r = u.do(t, "PUT", path, map[string]any{"completed": true})
	want(t, r, 200)
	d = r.data(t)
	if d["completed"] != true || d["completed_by"] != "manual" || d["completed_at"] == nil || d["version"] != float64(3) {
		t.Fatalf("after complete %v", d)
	}
	if !strings.HasSuffix(d["completed_at"].(string), "Z") || !strings.HasSuffix(d["created_at"].(string), "Z") {
		t.Fatalf("times must be UTC with Z: %v", d)
	}
	r = u.do(t, "PATCH", path, map[string]any{"completed": false})
	want(t, r, 200)
	if d = r.data(t); d["completed"] != false || d["completed_at"] != nil || d["completed_by"] != "" {
		t.Fatalf("after reopen %v", d)
	}
	// Archived: no completion, no retitle; other changes and unarchiving are fine.
	want(t, u.do(t, "PATCH", path, map[string]any{"archived": true}), 200)
	wantError(t, u.do(t, "PATCH", path, map[string]any{"completed": true}), 409, "ARCHIVED")
	wantError(t, u.do(t, "PATCH", path, map[string]any{"title": "new"}), 409, "ARCHIVED")
	wantError(t, u.do(t, "POST", path+"/force-complete", map[string]any{"version": 5}), 409, "ARCHIVED")
	want(t, u.do(t, "PATCH", path, map[string]any{"priority": "high"}), 200)
	r = u.do(t, "PATCH", path, map[string]any{"archived": false, "title": "new", "completed": true})
	want(t, r, 200)
	if d = r.data(t); d["title"] != "new" || d["completed"] != true || d["archived"] != false {
		t.Fatalf("%v", d)
	}
	// Bad input is 400 with one detail per field, never 500.
	wantError(t, u.do(t, "PATCH", path, `{"title": null, "completed": null, "priority": "urgent", "estimated_duration": 0, "due_date": "tomorrow"}`),
		400, "VALIDATION_ERROR", "title", "completed", "priority", "due_date")
	wantError(t, u.do(t, "PATCH", path, map[string]any{"estimated_duration": 721}), 400, "VALIDATION_ERROR", "estimated_duration")
	wantError(t, u.do(t, "PATCH", path, map[string]any{"due_date": time.Now().UTC().Add(31 * 24 * time.Hour).Format(time.RFC3339)}), 400, "VALIDATION_ERROR", "due_date")
	wantError(t, u.do(t, "PATCH", path, map[string]any{"colour": "red"}), 400, "VALIDATION_ERROR", "colour")
	wantError(t, u.do(t, "PATCH", path, `{"title": 5}`), 400, "VALIDATION_ERROR", "title")
	wantError(t, u.do(t, "PATCH", path, `{"title": "x"`), 400, "VALIDATION_ERROR", "body")
	wantError(t, u.do(t, "PATCH", path, map[string]any{"description": strings.Repeat("x", 1001)}), 400, "VALIDATION_ERROR", "description")
	// Completed, reopened, completed again: two completions, two events.
	e.waitEvents(t, "tasks.task.completed", u.ID, 2)
	pro := e.user(t, "pro")
	ptk := pro.createTask(t, map[string]any{"title": "pro", "description": strings.Repeat("x", 2000)})
	if len(ptk["description"].(string)) != 2000 {
		t.Fatal("pro description")
	}
	wantError(t, pro.do(t, "POST", "/api/v1/tasks", map[string]any{"title": "pro", "description": strings.Repeat("x", 2001)}), 400, "VALIDATION_ERROR", "description")
}

func TestListTasks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	other := e.user(t, "free")
	other.createTask(t, map[string]any{"title": "not mine 100%"})
	soon := time.Now().UTC().Add(24 * time.Hour).Format(time.RFC3339)
	later := time.Now().UTC().Add(10 * 24 * time.Hour).Format(time.RFC3339)
	a := u.createTask(t, map[string]any{"title": "Buy milk", "priority": "low", "due_date": soon})
	b := u.createTask(t, map[string]any{"title": "100% done_ok", "priority": "high", "due_date": later})
	c := u.createTask(t, map[string]any{"title": "hidden one"})
	d := u.createTask(t, map[string]any{"title": "Done milk"})
	want(t, u.do(t, "PATCH", "/api/v1/tasks/"+id(c), map[string]any{"hidden": true}), 200)
	want(t, u.do(t, "PATCH", "/api/v1/tasks/"+id(d), map[string]any{"completed": true}), 200)

	ids := func(path string) []string {
		t.Helper()
		r := u.do(t, "GET", path, nil)
		want(t, r, 200)
		items, _ := r.list(t)
		var out []string
		for _, it := range items {
			out = append(out, id(it.(map[string]any)))
		}
		return out
	}
	eq := func(got []string, want ...map[string]any) {
		t.Helper()
		var w []string
		for _, m := range want {
			w = append(w, id(m))
		}
		if strings.Join(got, ",") != strings.Join(w, ",") {
			t.Fatalf("got %v, want %v", got, w)
		}
	}
	eq(ids("/api/v1/tasks"), d, b, a)
	eq(ids("/api/v1/tasks?include_hidden=true"), d, c, b, a)
	eq(ids("/api/v1/tasks?completed=true"), d)
	eq(ids("/api/v1/tasks?completed=false"), b, a)
	eq(ids("/api/v1/tasks?priority=high"), b)
	eq(ids("/api/v1/tasks?due_before="+time.Now().UTC().Add(48*time.Hour).Format(time.RFC3339)), a)
	eq(ids("/api/v1/tasks?due_after="+time.Now().UTC().Add(48*time.Hour).Format(time.RFC3339)), b)
	eq(ids("/api/v1/tasks?q=MILK"), d, a)
	eq(ids("/api/v1/tasks?q=100%25"), b)
	eq(ids("/api/v1/tasks?q=e_o"), b)
	eq(ids("/api/v1/tasks?q=%25"), b)
	r := u.do(t, "GET", "/api/v1/tasks?limit=2&offset=1", nil)
	items, p := r.list(t)
	if len(items) != 2 || p["total"] != float64(3) || p["has_more"] != false || p["offset"] != float64(1) || p["limit"] != float64(2) {
		t.Fatalf("page %s", r.Body)
	}
	r = u.do(t, "GET", "/api/v1/tasks?limit=1", nil)
	if _, p = r.list(t); p["has_more"] != true {
		t.Fatalf("page %s", r.Body)
	}
	wantError(t, u.do(t, "GET", "/api/v1/tasks?limit=101", nil), 400, "VALIDATION_ERROR", "limit")
	wantError(t, u.do(t, "GET", "/api/v1/tasks?offset=-1", nil), 400, "VALIDATION_ERROR", "offset")
	wantError(t, u.do(t, "GET", "/api/v1/tasks?completed=maybe&priority=urgent&due_before=x", nil), 400, "VALIDATION_ERROR", "completed", "priority", "due_before")
}

// TestScenario6Limits is the first half of API.md §10 scenario 6, plus the concurrency rule:
// 20 concurrent creates at 49 tasks leave exactly 50.
func TestScenario6Limits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	for i := 0; i < 49; i++ {
		u.createTask(t, map[string]any{"title": fmt.Sprintf("task %d", i)})
	}
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = u.do(t, "POST", "/api/v1/tasks", map[string]any{"title": fmt.Sprintf("race %d", i)}).Status
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 409:
		default:
			t.Fatalf("status %d", s)
		}
	}
	if created != 1 {
		t.Fatalf("%d of 20 concurrent creates succeeded at 49 tasks, want 1", created)
	}
	var n int
	if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM tasks WHERE user_id = $1`, u.ID).Scan(&n); err != nil || n != 50 {
		t.Fatalf("tasks = %d (%v), want 50", n, err)
	}
	r := u.do(t, "POST", "/api/v1/tasks", map[string]any{"title": "51st"})
	e409 := wantError(t, r, 409, "LIMIT_EXCEEDED", "limit", "count", "achievement")
	details := e409["details"].([]any)
	if details[0].(map[string]any)["message"] != "50" || details[1].(map[string]any)["message"] != "50" {
		t.Fatalf("details %v", details)
	}
	// A delete frees a slot; recovering it while full is refused with the same check.
	all, _ := u.do(t, "GET", "/api/v1/tasks?limit=1", nil).list(t)
	del := u.do(t, "DELETE", "/api/v1/tasks/"+id(all[0].(map[string]any)), nil).data(t)
	u.createTask(t, map[string]any{"title": "fills the slot"})
	wantError(t, u.do(t, "POST", "/api/v1/tombstones/"+del["tombstone_id"].(string)+"/recover", nil), 409, "LIMIT_EXCEEDED", "limit")
	// Pro has no task limit.
	pro := e.user(t, "pro")
	want(t, pro.do(t, "POST", "/api/v1/tasks", map[string]any{"title": "pro"}), 201)
}
