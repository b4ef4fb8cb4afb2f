package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/events/aievents"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"

	"github.com/perpetua-flow/backend/services/tasks/internal/recurrence"
)

func (u *user) notificationsOfType(t testing.TB, typ string) []map[string]any {
	t.Helper()
	items, _ := u.do(t, "GET", "/api/v1/notifications?limit=100", nil).list(t)
	var out []map[string]any
	for _, it := range items {
		if n := it.(map[string]any); n["type"] == typ {
			out = append(out, n)
		}
	}
	return out
}

func unlockedIDs(t testing.TB, v any) []string {
	t.Helper()
	var out []string
	for _, a := range v.([]any) {
		out = append(out, a.(map[string]any)["id"].(string))
	}
	return out
}

func (u *user) complete(t testing.TB, taskID string) map[string]any {
	t.Helper()
	r := u.do(t, "PATCH", "/api/v1/tasks/"+taskID, map[string]any{"completed": true})
	want(t, r, 200)
	return r.json(t)
}

// TestRemindersFireOnce: an absolute reminder fires at its time, once: an in-app
// notification, tasks.reminder.fired and the reminder marked fired. Moving the due date
// moves relative reminders; a completed task's reminder does not fire; the rules of
// API.md §3 answer with the exact errors.
func TestRemindersFireOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	due := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Second)
	task := u.createTask(t, map[string]any{"title": "Write documentation", "due_date": due.Format(time.RFC3339)})
	tid := id(task)

	at := time.Now().UTC().Add(1500 * time.Millisecond)
	r := u.do(t, "POST", "/api/v1/tasks/"+tid+"/reminders", map[string]any{"type": "absolute", "scheduled_at": at.Format(time.RFC3339Nano), "method": "push"})
	want(t, r, 201)
	abs := r.data(t)
	if abs["fired"] != false || abs["method"] != "push" || abs["offset_minutes"] != nil {
		t.Fatalf("reminder %v", abs)
	}
	before := u.do(t, "POST", "/api/v1/reminders", map[string]any{"task_id": tid, "type": "before", "offset_minutes": -30}).data(t)
	if before["offset_minutes"] != float64(30) || before["scheduled_at"] != due.Add(-30*time.Minute).Format(time.RFC3339Nano) || before["method"] != "in_app" {
		t.Fatalf("before reminder %v", before)
	}

	wantError(t, u.do(t, "POST", "/api/v1/reminders", map[string]any{"type": "absolute", "scheduled_at": at.Format(time.RFC3339Nano)}), 400, "VALIDATION_ERROR", "task_id")
	list, pg := u.do(t, "GET", "/api/v1/tasks/"+tid+"/reminders", nil).list(t)
	if len(list) != 2 || pg["total"] != float64(2) || id(list[0].(map[string]any)) != id(abs) {
		t.Fatalf("reminders list %v %v", list, pg)
	}
	eventually(t, "the reminder notification", func() bool { return len(u.notificationsOfType(t, "reminder")) == 1 })
	e.waitEvents(t, tasksevents.TypeReminderFired, u.ID, 1)
	d := u.do(t, "GET", "/api/v1/tasks/"+tid, nil).data(t)
	rems := d["reminders"].([]any)
	if len(rems) != 2 || rems[0].(map[string]any)["fired"] != true || rems[0].(map[string]any)["fired_at"] == nil || rems[1].(map[string]any)["fired"] != false {
		t.Fatalf("reminders after firing %v", rems)
	}

	// Moving the due date moves the relative reminder, not the absolute one.
	newDue := due.Add(24 * time.Hour)
	want(t, u.do(t, "PATCH", "/api/v1/tasks/"+tid, map[string]any{"due_date": newDue.Format(time.RFC3339)}), 200)
	rems = u.do(t, "GET", "/api/v1/tasks/"+tid, nil).data(t)["reminders"].([]any)
	if rems[1].(map[string]any)["scheduled_at"] != newDue.Add(-30*time.Minute).Format(time.RFC3339Nano) {
		t.Fatalf("relative reminder not moved: %v", rems[1])
	}
	// Removing the due date unschedules it.
	want(t, u.do(t, "PATCH", "/api/v1/tasks/"+tid, map[string]any{"due_date": nil}), 200)
	rems = u.do(t, "GET", "/api/v1/tasks/"+tid, nil).data(t)["reminders"].([]any)
	if rems[1].(map[string]any)["scheduled_at"] != nil {
		t.Fatalf("relative reminder kept a time without a due date: %v", rems[1])
	}

	// Errors: relative without a due date, past absolute, bad type, the 6th reminder,
	// another user's task or reminder.
	wantError(t, u.do(t, "POST", "/api/v1/tasks/"+tid+"/reminders", map[string]any{"type": "after", "offset_minutes": 5}), 400, "VALIDATION_ERROR", "due_date")
	wantError(t, u.do(t, "POST", "/api/v1/tasks/"+tid+"/reminders", map[string]any{"type": "absolute", "scheduled_at": "2020-01-01T00:00:00Z"}), 400, "VALIDATION_ERROR", "scheduled_at")
	wantError(t, u.do(t, "POST", "/api/v1/tasks/"+tid+"/reminders", map[string]any{"type": "soon", "method": "sms"}), 400, "VALIDATION_ERROR", "type", "method")
	later := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	for range 3 {
		want(t, u.do(t, "POST", "/api/v1/tasks/"+tid+"/reminders", map[string]any{"type": "absolute", "scheduled_at": later}), 201)
	}
	wantError(t, u.do(t, "POST", "/api/v1/tasks/"+tid+"/reminders", map[string]any{"type": "absolute", "scheduled_at": later}), 409, "LIMIT_EXCEEDED", "limit", "count")
	other := e.user(t, "free")
	wantError(t, other.do(t, "POST", "/api/v1/tasks/"+tid+"/reminders", map[string]any{"type": "absolute", "scheduled_at": later}), 404, "NOT_FOUND")
	wantError(t, other.do(t, "DELETE", "/api/v1/reminders/"+id(abs), nil), 404, "NOT_FOUND")

	// A reminder of a completed task does not fire.
	t2 := u.createTask(t, map[string]any{"title": "done soon"})
	soon := time.Now().UTC().Add(1200 * time.Millisecond).Format(time.RFC3339Nano)
	rem2 := u.do(t, "POST", "/api/v1/tasks/"+id(t2)+"/reminders", map[string]any{"type": "absolute", "scheduled_at": soon}).data(t)
	u.complete(t, id(t2))
	// A third reminder due after t2's proves the jobs ran past t2's time.
	t3 := u.createTask(t, map[string]any{"title": "marker"})
	marker := time.Now().UTC().Add(2500 * time.Millisecond).Format(time.RFC3339Nano)
	want(t, u.do(t, "POST", "/api/v1/tasks/"+id(t3)+"/reminders", map[string]any{"type": "absolute", "scheduled_at": marker}), 201)
	eventually(t, "the marker reminder", func() bool { return len(u.notificationsOfType(t, "reminder")) == 2 })
	for _, n := range u.notificationsOfType(t, "reminder") {
		if n["task_id"] == id(t2) {
			t.Fatalf("a completed task's reminder fired: %v", n)
		}
	}
	var fired bool
	if err := e.Pool.QueryRow(context.Background(), `SELECT fired FROM reminders WHERE id = $1`, id(rem2)).Scan(&fired); err != nil || fired {
		t.Fatalf("completed task's reminder fired=%v (%v)", fired, err)
	}

	// PATCH moves a reminder (a new version); DELETE removes it.
	r = u.do(t, "PATCH", "/api/v1/reminders/"+id(before), map[string]any{"type": "absolute", "scheduled_at": later, "method": "push"})
	want(t, r, 200)
	if p := r.data(t); p["type"] != "absolute" || p["offset_minutes"] != nil || p["method"] != "push" {
		t.Fatalf("patched %v", p)
	}
	r = u.do(t, "DELETE", "/api/v1/reminders/"+id(before), nil)
	want(t, r, 200)
	if r.data(t)["deleted_id"] != id(before) {
		t.Fatalf("delete answer %s", r.Body)
	}
}

// TestRecoveredTaskNeverFiresPastReminders: a deleted task's reminders come back with it;
// one whose time passed while the task was deleted never fires, a future one still does.
func TestRecoveredTaskNeverFiresPastReminders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	task := u.createTask(t, map[string]any{"title": "deleted with reminders"})
	past := time.Now().UTC().Add(1 * time.Second).Format(time.RFC3339Nano)
	future := time.Now().UTC().Add(4 * time.Second).Format(time.RFC3339Nano)
	want(t, u.do(t, "POST", "/api/v1/tasks/"+id(task)+"/reminders", map[string]any{"type": "absolute", "scheduled_at": past}), 201)
	want(t, u.do(t, "POST", "/api/v1/tasks/"+id(task)+"/reminders", map[string]any{"type": "absolute", "scheduled_at": future}), 201)
	tomb := u.do(t, "DELETE", "/api/v1/tasks/"+id(task), nil).data(t)
	// Recover once the first reminder's time has passed (while the task was deleted).
	pastT, _ := time.Parse(time.RFC3339Nano, past)
	eventually(t, "the first reminder's time to pass", func() bool { return time.Now().After(pastT.Add(100 * time.Millisecond)) })
	r := u.do(t, "POST", "/api/v1/tombstones/"+tomb["tombstone_id"].(string)+"/recover", nil)
	want(t, r, 200)
	rems := r.data(t)["task"].(map[string]any)["reminders"].([]any)
	if len(rems) != 2 {
		t.Fatalf("recovered reminders %v", rems)
	}
	eventually(t, "the future reminder", func() bool { return len(u.notificationsOfType(t, "reminder")) >= 1 })
	ns := u.notificationsOfType(t, "reminder")
	var firedPast bool
	if err := e.Pool.QueryRow(context.Background(), `SELECT fired FROM reminders WHERE task_id = $1 AND scheduled_at = $2`, id(task), pastT).Scan(&firedPast); err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || firedPast {
		t.Fatalf("%d reminder notifications, past fired %v", len(ns), firedPast)
	}
}

// seedStreak sets the user's stats as if they had completed lifetime tasks with a run of
// days ending on lastDay.
func (e *env) seedStats(t testing.TB, userID string, lifetime, current, longest int, lastDay time.Time) {
	t.Helper()
	_, err := e.Pool.Exec(context.Background(), `INSERT INTO user_stats (user_id, lifetime_completed, current_streak, longest_streak,
		last_completion_day, updated_at) VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (user_id) DO UPDATE SET lifetime_completed = $2, current_streak = $3, longest_streak = $4, last_completion_day = $5`,
		userID, lifetime, current, longest, lastDay)
	if err != nil {
		t.Fatal(err)
	}
}

// TestScenario3Achievements is API.md §10 scenario 3: 4 completions and a 6-day streak,
// then one completion today → tasks_5 and streak_7 (max_tasks 65, daily credits 13);
// skip a day → current streak 0, longest 7; 20 more → tasks_25. Each unlock is announced
// once: in the answer, as tasks.achievement.unlocked and as a notification.
func TestScenario3Achievements(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	e.seedStats(t, u.ID, 4, 6, 6, today.Add(-24*time.Hour))

	task := u.createTask(t, map[string]any{"title": "the fifth"})
	ans := u.complete(t, id(task))
	if got := strings.Join(unlockedIDs(t, ans["unlocked_achievements"]), ","); got != "tasks_5,streak_7" {
		t.Fatalf("unlocked %q: %v", got, ans)
	}
	first := ans["unlocked_achievements"].([]any)[0].(map[string]any)
	if p := first["perk"].(map[string]any); p["type"] != "max_tasks" || p["value"] != float64(15) || first["name"] == "" || first["description"] == "" {
		t.Fatalf("unlocked achievement %v", first)
	}
	me := u.do(t, "GET", "/api/v1/achievements/me", nil).data(t)
	lim := me["effective_limits"].(map[string]any)
	stats := me["stats"].(map[string]any)
	if lim["max_tasks"] != float64(65) || lim["daily_ai_credits"] != float64(13) || lim["max_notes"] != float64(20) || lim["max_subtasks"] != float64(10) {
		t.Fatalf("effective limits %v", lim)
	}
	if stats["lifetime_tasks_completed"] != float64(5) || stats["current_streak"] != float64(7) || stats["longest_streak"] != float64(7) {
		t.Fatalf("stats %v", stats)
	}
	if got := fmt.Sprint(me["unlocked"]); got != "[tasks_5 streak_7]" {
		t.Fatalf("unlocked %s", got)
	}
	evs := e.waitEvents(t, tasksevents.TypeAchievementUnlocked, u.ID, 2)
	var d tasksevents.AchievementUnlocked
	if err := evs[1].Decode(&d); err != nil || d.AchievementID != "streak_7" || d.PerkType != "daily_ai_credits" || d.PerkValue != 3 {
		t.Fatalf("event %+v %v", d, err)
	}
	if n := u.notificationsOfType(t, "achievement"); len(n) != 2 {
		t.Fatalf("%d achievement notifications", len(n))
	}

	// Un-completing and completing again is neither a second unlock nor a second count.
	for range 3 {
		want(t, u.do(t, "PATCH", "/api/v1/tasks/"+id(task), map[string]any{"completed": false}), 200)
		if again := u.complete(t, id(task)); len(again["unlocked_achievements"].([]any)) != 0 {
			t.Fatalf("unlocked again: %v", again)
		}
	}
	if st := u.do(t, "GET", "/api/v1/achievements/me", nil).data(t)["stats"].(map[string]any); st["lifetime_tasks_completed"] != float64(5) {
		t.Fatalf("re-completions counted: %v", st)
	}

	// Skip a day: the last completion was the day before yesterday.
	_, err := e.Pool.Exec(context.Background(), `UPDATE user_stats SET last_completion_day = $2 WHERE user_id = $1`, u.ID, today.Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stats = u.do(t, "GET", "/api/v1/achievements/me", nil).data(t)["stats"].(map[string]any)
	if stats["current_streak"] != float64(0) || stats["longest_streak"] != float64(7) {
		t.Fatalf("after a skipped day %v", stats)
	}

	// 20 more completions (5 so far): tasks_25 at the last, exactly once.
	var unlocks []string
	for i := range 20 {
		tk := u.createTask(t, map[string]any{"title": fmt.Sprintf("more %d", i)})
		unlocks = append(unlocks, unlockedIDs(t, u.complete(t, id(tk))["unlocked_achievements"])...)
	}
	if strings.Join(unlocks, ",") != "tasks_25" {
		t.Fatalf("unlocks over 20 more: %v", unlocks)
	}
	me = u.do(t, "GET", "/api/v1/achievements/me", nil).data(t)
	if me["effective_limits"].(map[string]any)["max_tasks"] != float64(90) || me["stats"].(map[string]any)["longest_streak"] != float64(7) {
		t.Fatalf("after tasks_25 %v", me)
	}
	// The catalogue.
	cat := u.do(t, "GET", "/api/v1/achievements", nil).json(t)["data"].([]any)
	if len(cat) != 11 || cat[5].(map[string]any)["id"] != "streak_7" || cat[5].(map[string]any)["perk_type"] != "daily_ai_credits" {
		t.Fatalf("catalogue %v", cat)
	}
}

// TestScenario6AchievementRaisesLimit is the second half of API.md §10 scenario 6: after
// tasks_5 (+15) tasks 51–65 succeed and the 66th is 409. The completions come by every
// path: manual, the last subtask (auto) and force; each counts exactly once.
func TestScenario6AchievementRaisesLimit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	var ids []string
	for i := range 50 {
		ids = append(ids, id(u.createTask(t, map[string]any{"title": fmt.Sprintf("task %d", i)})))
	}
	e409 := wantError(t, u.do(t, "POST", "/api/v1/tasks", map[string]any{"title": "51st"}), 409, "LIMIT_EXCEEDED", "achievement")
	if !strings.Contains(fmt.Sprint(e409["details"]), "tasks_5") {
		t.Fatalf("details do not name tasks_5: %v", e409["details"])
	}
	u.complete(t, ids[0])
	u.complete(t, ids[1])
	// auto: the task's only subtask completed.
	st := u.do(t, "POST", "/api/v1/tasks/"+ids[2]+"/subtasks", map[string]any{"title": "step"}).data(t)
	r := u.do(t, "PATCH", "/api/v1/subtasks/"+id(st), map[string]any{"completed": true})
	want(t, r, 200)
	// force, twice on different tasks; the fifth completion unlocks tasks_5.
	for _, tid := range ids[3:5] {
		r = u.do(t, "POST", "/api/v1/tasks/"+tid+"/force-complete", map[string]any{"version": 1})
		want(t, r, 200)
	}
	d := r.data(t)
	if got := strings.Join(unlockedIDs(t, d["unlocked_achievements"]), ","); got != "tasks_5" {
		t.Fatalf("force-complete unlocked %q: %s", got, r.Body)
	}
	if s := d["streak"].(map[string]any); s["current"] != float64(1) || s["longest"] != float64(1) {
		t.Fatalf("streak %v", s)
	}
	for i := 51; i <= 65; i++ {
		want(t, u.do(t, "POST", "/api/v1/tasks", map[string]any{"title": fmt.Sprintf("task %d", i)}), 201)
	}
	e409 = wantError(t, u.do(t, "POST", "/api/v1/tasks", map[string]any{"title": "66th"}), 409, "LIMIT_EXCEEDED")
	if e409["details"].([]any)[0].(map[string]any)["message"] != "65" {
		t.Fatalf("66th: %v", e409["details"])
	}
	if me := u.do(t, "GET", "/api/v1/achievements/me", nil).data(t); me["stats"].(map[string]any)["lifetime_tasks_completed"] != float64(5) {
		t.Fatalf("completions counted %v", me["stats"])
	}
	e.waitEvents(t, tasksevents.TypeTaskCompleted, u.ID, 5)
}

// TestScenario7Recurrence is API.md §10 scenario 7: a template FREQ=WEEKLY;BYDAY=MO,WE,FR
// (DTSTART = its creation) has next_due at the first occurrence after creation;
// instantiate makes a task due then; completing it makes the following one, in the same
// transaction. Deleting the template keeps its instances.
func TestScenario7Recurrence(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	r := u.do(t, "POST", "/api/v1/templates", map[string]any{"title": "Team sync", "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,FR",
		"subtasks": []string{"agenda", "notes"}, "priority": "high"})
	want(t, r, 201)
	tpl := r.data(t)
	created, _ := time.Parse(time.RFC3339Nano, tpl["created_at"].(string))
	rule, err := recurrence.Parse("FREQ=WEEKLY;BYDAY=MO,WE,FR", created)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := rule.Next(created)
	second, _ := rule.Next(first)
	third, _ := rule.Next(second)
	if tpl["next_due"] != first.Format(time.RFC3339Nano) || tpl["rrule_text"] != "weekly on Monday, Wednesday and Friday" || tpl["active"] != true {
		t.Fatalf("template %v (first occurrence %v)", tpl, first)
	}
	// Creating a template creates no task.
	if items, _ := u.do(t, "GET", "/api/v1/tasks", nil).list(t); len(items) != 0 {
		t.Fatalf("tasks after creating a template: %d", len(items))
	}
	r = u.do(t, "POST", "/api/v1/templates/"+id(tpl)+"/instantiate", nil)
	want(t, r, 201)
	inst := r.data(t)
	if inst["due_date"] != first.Format(time.RFC3339Nano) || inst["template_id"] != id(tpl) || len(inst["subtasks"].([]any)) != 2 || inst["priority"] != "high" {
		t.Fatalf("instance %v", inst)
	}
	if got := u.do(t, "GET", "/api/v1/templates/"+id(tpl), nil).data(t)["next_due"]; got != second.Format(time.RFC3339Nano) {
		t.Fatalf("next_due after instantiate %v, want %v", got, second)
	}
	// Complete the instance (force: it has open subtasks): the next one is due at the
	// following occurrence.
	want(t, u.do(t, "POST", "/api/v1/tasks/"+id(inst)+"/force-complete", map[string]any{"version": 1}), 200)
	items, _ := u.do(t, "GET", "/api/v1/tasks?completed=false", nil).list(t)
	if len(items) != 1 || items[0].(map[string]any)["due_date"] != second.Format(time.RFC3339Nano) || items[0].(map[string]any)["template_id"] != id(tpl) {
		t.Fatalf("open instances after completing the first: %v", items)
	}
	if got := u.do(t, "GET", "/api/v1/templates/"+id(tpl), nil).data(t)["next_due"]; got != third.Format(time.RFC3339Nano) {
		t.Fatalf("next_due after completion %v, want %v", got, third)
	}
	// Invalid rules are 400 on rrule; another user's template is 404.
	wantError(t, u.do(t, "POST", "/api/v1/templates", map[string]any{"title": "x", "rrule": "FREQ=HOURLY"}), 400, "VALIDATION_ERROR", "rrule")
	wantError(t, u.do(t, "POST", "/api/v1/templates", map[string]any{"title": "x", "rrule": "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30"}), 400, "VALIDATION_ERROR", "rrule")
	wantError(t, e.user(t, "free").do(t, "GET", "/api/v1/templates/"+id(tpl), nil), 404, "NOT_FOUND")
	// PATCH with a stale version is 409; a rule change restarts next_due.
	wantError(t, u.do(t, "PATCH", "/api/v1/templates/"+id(tpl), map[string]any{"title": "y", "version": 1}), 409, "CONFLICT", "version")
	p := u.do(t, "PATCH", "/api/v1/templates/"+id(tpl), map[string]any{"rrule": "FREQ=DAILY;COUNT=2"}).data(t)
	if p["rrule"] != "FREQ=DAILY;COUNT=2" || p["rrule_text"] != "daily, 2 times" {
		t.Fatalf("patched %v", p)
	}
	// Deleting the template keeps its instances, detached.
	want(t, u.do(t, "DELETE", "/api/v1/templates/"+id(tpl), nil), 200)
	items, _ = u.do(t, "GET", "/api/v1/tasks", nil).list(t)
	if len(items) != 2 || items[0].(map[string]any)["template_id"] != nil || items[1].(map[string]any)["template_id"] != nil {
		t.Fatalf("instances after deleting the template: %v", items)
	}
	list, pg := u.do(t, "GET", "/api/v1/templates", nil).list(t)
	if len(list) != 0 || pg["total"] != float64(0) {
		t.Fatalf("templates %v", list)
	}
}

// TestFocus: one session per user, server-measured, added to the task on stop; a
// completion while the session is open is a focus completion.
func TestFocus(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	a := u.createTask(t, map[string]any{"title": "deep work", "estimated_duration": 60})
	b := u.createTask(t, map[string]any{"title": "other"})
	if d := u.do(t, "GET", "/api/v1/focus/active", nil).json(t); d["data"] != nil {
		t.Fatalf("active before start: %v", d)
	}
	r := u.do(t, "POST", "/api/v1/focus/start", map[string]any{"task_id": id(a)})
	want(t, r, 201)
	s := r.data(t)
	wantError(t, u.do(t, "POST", "/api/v1/focus/start", map[string]any{"task_id": id(b)}), 409, "FOCUS_SESSION_ACTIVE")
	wantError(t, u.do(t, "POST", "/api/v1/focus/start", map[string]any{}), 400, "VALIDATION_ERROR", "task_id")
	if act := u.do(t, "GET", "/api/v1/focus/active", nil).data(t); act["id"] != s["id"] || act["ended_at"] != nil {
		t.Fatalf("active %v", act)
	}
	// Another user is not blocked, and cannot focus on this user's task.
	o := e.user(t, "free")
	wantError(t, o.do(t, "POST", "/api/v1/focus/start", map[string]any{"task_id": id(a)}), 404, "NOT_FOUND")
	// Pretend the session started 40 minutes ago (the server measures, the test cannot wait).
	if _, err := e.Pool.Exec(context.Background(), `UPDATE focus_sessions SET started_at = started_at - interval '40 minutes' WHERE id = $1`, s["id"]); err != nil {
		t.Fatal(err)
	}
	r = u.do(t, "POST", "/api/v1/focus/stop", nil)
	want(t, r, 200)
	stopped := r.data(t)
	secs := stopped["elapsed_seconds"].(float64)
	if secs < 2400 || secs > 2460 || stopped["ended_by"] != "user" || stopped["task"].(map[string]any)["focus_time_seconds"] != secs {
		t.Fatalf("stopped %v", stopped)
	}
	wantError(t, u.do(t, "POST", "/api/v1/focus/stop", nil), 404, "NOT_FOUND")
	// 40 of 60 minutes is over half: completing it is a focus completion.
	u.complete(t, id(a))
	// A session open at completion counts too.
	want(t, u.do(t, "POST", "/api/v1/focus/start", map[string]any{"task_id": id(b)}), 201)
	u.complete(t, id(b))
	want(t, u.do(t, "POST", "/api/v1/focus/stop", nil), 200)
	if st := u.do(t, "GET", "/api/v1/achievements/me", nil).data(t)["stats"].(map[string]any); st["focus_completions"] != float64(2) {
		t.Fatalf("focus completions %v", st)
	}
	// A completed task cannot be focused on.
	wantError(t, u.do(t, "POST", "/api/v1/focus/start", map[string]any{"task_id": id(a)}), 409, "CONFLICT")
}

// TestFocusAutoClose: a session left open is closed by its job with the maximum time.
func TestFocusAutoClose(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	a := u.createTask(t, map[string]any{"title": "forgotten"})
	s := u.do(t, "POST", "/api/v1/focus/start", map[string]any{"task_id": id(a)}).data(t)
	// Move the session 4 hours back and its job to now, as if the time had passed.
	ctx := context.Background()
	if _, err := e.Pool.Exec(ctx, `UPDATE focus_sessions SET started_at = started_at - interval '4 hours 5 minutes' WHERE id = $1`, s["id"]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pool.Exec(ctx, `UPDATE river_job SET scheduled_at = now() WHERE kind = 'tasks.focus.close' AND args->>'session_id' = $1`, s["id"]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the automatic close", func() bool {
		return u.do(t, "GET", "/api/v1/focus/active", nil).json(t)["data"] == nil
	})
	got := u.do(t, "GET", "/api/v1/tasks/"+id(a), nil).data(t)
	if got["focus_time_seconds"] != float64(4*3600) {
		t.Fatalf("focus time %v, want 4 h", got["focus_time_seconds"])
	}
	var by string
	if err := e.Pool.QueryRow(ctx, `SELECT ended_by FROM focus_sessions WHERE id = $1`, s["id"]).Scan(&by); err != nil || by != "auto" {
		t.Fatalf("ended_by %q %v", by, err)
	}
}

// TestCalendarFeed: a per-user secret serves an RFC 5545 feed of tasks with due dates and
// active templates with their RRULE; rotating or revoking the secret stops the old URL.
func TestCalendarFeed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	due := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Second)
	task := u.createTask(t, map[string]any{"title": "Pay rent, then; celebrate", "due_date": due.Format(time.RFC3339), "priority": "high"})
	u.createTask(t, map[string]any{"title": "no due date"})
	want(t, u.do(t, "POST", "/api/v1/templates", map[string]any{"title": "Standup", "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=30"}), 201)

	r := u.do(t, "POST", "/api/v1/calendar/token", nil)
	want(t, r, 201)
	tok := r.data(t)
	if !strings.HasSuffix(tok["url"].(string), "token="+tok["token"].(string)) {
		t.Fatalf("token answer %v", tok)
	}
	r = e.raw(t, "GET", "/api/v1/calendar.ics?token="+tok["token"].(string), "", nil)
	want(t, r, 200)
	body := string(r.Body)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/calendar") {
		t.Fatalf("content type %q", ct)
	}
	for _, s := range []string{"BEGIN:VCALENDAR\r\n", "UID:" + id(task) + "@perpetua\r\n", "DUE:" + due.Format("20060102T150405Z") + "\r\n",
		`SUMMARY:Pay rent\, then\; celebrate`, "PRIORITY:1\r\n", "STATUS:NEEDS-ACTION\r\n", "RRULE:FREQ=WEEKLY;COUNT=30;BYDAY=MO,WE,FR\r\n", "SUMMARY:Standup\r\n"} {
		if !strings.Contains(body, s) {
			t.Fatalf("feed lacks %q:\n%s", s, body)
		}
	}
	if strings.Contains(body, "no due date") {
		t.Fatalf("a task without a due date is in the feed")
	}
	// Rotate: the old token is dead. Revoke: the new one too.
	tok2 := u.do(t, "POST", "/api/v1/calendar/token", nil).data(t)
	wantError(t, e.raw(t, "GET", "/api/v1/calendar.ics?token="+tok["token"].(string), "", nil), 404, "NOT_FOUND")
	want(t, e.raw(t, "GET", "/api/v1/calendar.ics?token="+tok2["token"].(string), "", nil), 200)
	want(t, u.do(t, "DELETE", "/api/v1/calendar/token", nil), 200)
	wantError(t, e.raw(t, "GET", "/api/v1/calendar.ics?token="+tok2["token"].(string), "", nil), 404, "NOT_FOUND")
	wantError(t, e.raw(t, "GET", "/api/v1/calendar.ics", "", nil), 404, "NOT_FOUND")
	// The token is stored hashed.
	var n int
	if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM calendar_tokens WHERE token_sha256 = convert_to($1, 'UTF8')`, tok2["token"]).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a raw token is stored (%d, %v)", n, err)
	}
}

// TestNotesConvertedUnlocksNotes10: ai.note.converted counts toward notes_10, once per
// event even when redelivered; the perk raises the note limit.
func TestNotesConvertedUnlocksNotes10(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	var last = e.publish(t, aievents.TypeNoteConverted, u.ID, aievents.NoteConverted{NoteID: uuid.NewString(), UserID: u.ID, OccurredAt: time.Now().UTC()})
	for range 9 {
		last = e.publish(t, aievents.TypeNoteConverted, u.ID, aievents.NoteConverted{NoteID: uuid.NewString(), UserID: u.ID, OccurredAt: time.Now().UTC()})
	}
	e.redeliver(t, last)
	eventually(t, "notes_10", func() bool {
		me := u.do(t, "GET", "/api/v1/achievements/me", nil).data(t)
		return fmt.Sprint(me["unlocked"]) == "[notes_10]"
	})
	me := u.do(t, "GET", "/api/v1/achievements/me", nil).data(t)
	if me["stats"].(map[string]any)["notes_converted"] != float64(10) || me["effective_limits"].(map[string]any)["max_notes"] != float64(30) {
		t.Fatalf("after 10 conversions %v", me)
	}
	_ = http.StatusOK
}
