package e2e_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/e2e/stack"
)

// API.md §10 scenario 6 in full, through the gateway: 50 tasks, the 51st refused; five
// completions unlock tasks_5 (+15), tasks 51–65 succeed and the 66th is refused; the unlock
// reaches billing as an event.
func testScenarioLimitsWithPerk(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	ids := make([]string, 0, 65)
	for i := range 50 {
		var tk task
		u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": fmt.Sprintf("task %d", i)}, nil).Data(t, &tk)
		ids = append(ids, tk.ID)
	}
	if r := u.Do("POST", "/api/v1/tasks", map[string]any{"title": "51st"}, nil); r.Status != 409 || r.ErrorCode() != "LIMIT_EXCEEDED" {
		t.Fatalf("51st before the perk: %d %s", r.Status, r.Body)
	}
	var unlocked []struct {
		ID string `json:"id"`
	}
	for _, id := range ids[:5] {
		var resp struct {
			Unlocked []struct {
				ID string `json:"id"`
			} `json:"unlocked_achievements"`
		}
		u.Must(200, "PATCH", "/api/v1/tasks/"+id, map[string]any{"completed": true}, nil).JSON(t, &resp)
		unlocked = append(unlocked, resp.Unlocked...)
	}
	if len(unlocked) != 1 || unlocked[0].ID != "tasks_5" {
		t.Fatalf("unlocked over five completions = %+v, want exactly tasks_5 in the fifth answer", unlocked)
	}
	var me struct {
		Limits struct {
			MaxTasks *int `json:"max_tasks"`
		} `json:"effective_limits"`
	}
	u.Must(200, "GET", "/api/v1/achievements/me", nil, nil).Data(t, &me)
	if me.Limits.MaxTasks == nil || *me.Limits.MaxTasks != 65 {
		t.Fatalf("effective max_tasks = %v, want 65", me.Limits.MaxTasks)
	}
	for i := 51; i <= 65; i++ {
		u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": fmt.Sprintf("task %d", i)}, nil)
	}
	if r := u.Do("POST", "/api/v1/tasks", map[string]any{"title": "66th"}, nil); r.Status != 409 || r.ErrorCode() != "LIMIT_EXCEEDED" {
		t.Fatalf("66th: %d %s", r.Status, r.Body)
	}
	// The unlock is announced as a notification.
	stack.Eventually(t, 10*time.Second, func() error {
		var l struct {
			Data []struct{ Type string } `json:"data"`
		}
		u.Must(http.StatusOK, "GET", "/api/v1/notifications", nil, nil).JSON(t, &l)
		for _, n := range l.Data {
			if n.Type == "achievement" {
				return nil
			}
		}
		return stack.Errorf("no achievement notification in %+v", l.Data)
	})
}

// API.md §10 scenario 7: a template FREQ=WEEKLY;BYDAY=MO,WE,FR creates no task; its first
// instance is due at the first occurrence after creation; completing it creates the next.
func testScenarioRecurrence(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	var tpl struct {
		ID       string  `json:"id"`
		NextDue  *string `json:"next_due"`
		RRuleTxt string  `json:"rrule_text"`
	}
	created := time.Now().UTC()
	u.Must(201, "POST", "/api/v1/templates", map[string]any{"title": "Standup notes", "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,FR", "subtasks": []string{"Yesterday", "Today"}}, nil).Data(t, &tpl)
	if tpl.NextDue == nil || tpl.RRuleTxt == "" {
		t.Fatalf("template = %+v", tpl)
	}
	if n := countTasks(t, u); n != 0 {
		t.Fatalf("creating a template created %d tasks", n)
	}
	first, err := time.Parse(time.RFC3339, *tpl.NextDue)
	if err != nil {
		t.Fatal(err)
	}
	if !first.After(created) || first.Sub(created) > 3*24*time.Hour || !monWedFri(first) {
		t.Fatalf("first due %v is not the first Mon/Wed/Fri occurrence after %v", first, created)
	}
	var inst struct {
		ID       string  `json:"id"`
		DueDate  *string `json:"due_date"`
		Subtasks []struct{ Title string }
	}
	u.Must(201, "POST", "/api/v1/templates/"+tpl.ID+"/instantiate", nil, nil).Data(t, &inst)
	if inst.DueDate == nil || *inst.DueDate != *tpl.NextDue {
		t.Fatalf("instance due %v, want %s", inst.DueDate, *tpl.NextDue)
	}
	u.Must(200, "PATCH", "/api/v1/tasks/"+inst.ID, map[string]any{"completed": true}, nil)
	var l struct {
		Data []struct {
			ID         string  `json:"id"`
			DueDate    *string `json:"due_date"`
			Completed  bool    `json:"completed"`
			TemplateID *string `json:"template_id"`
		} `json:"data"`
	}
	u.Must(200, "GET", "/api/v1/tasks?completed=false", nil, nil).JSON(t, &l)
	if len(l.Data) != 1 || l.Data[0].TemplateID == nil || *l.Data[0].TemplateID != tpl.ID || l.Data[0].DueDate == nil {
		t.Fatalf("open tasks after completing the instance = %+v, want the next instance", l.Data)
	}
	next, _ := time.Parse(time.RFC3339, *l.Data[0].DueDate)
	if !next.After(first) || next.Sub(first) > 3*24*time.Hour || !monWedFri(next) {
		t.Fatalf("next instance due %v, want the occurrence after %v", next, first)
	}
}

func monWedFri(t time.Time) bool {
	switch t.Weekday() {
	case time.Monday, time.Wednesday, time.Friday:
		return true
	}
	return false
}

// Scenario 1's reminder, through the gateway: an absolute reminder on a task fires once at
// its time and arrives as a notification.
func testReminderFires(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	var tk task
	u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": "Call the plumber"}, nil).Data(t, &tk)
	at := time.Now().UTC().Add(2 * time.Second).Format(time.RFC3339)
	var rem struct {
		ID    string `json:"id"`
		Fired bool   `json:"fired"`
	}
	u.Must(201, "POST", "/api/v1/tasks/"+tk.ID+"/reminders", map[string]any{"type": "absolute", "scheduled_at": at, "method": "in_app"}, nil).Data(t, &rem)
	if rem.Fired {
		t.Fatal("a reminder in the future must not have fired")
	}
	stack.Eventually(t, 30*time.Second, func() error {
		var l struct {
			Data []struct {
				Type   string  `json:"type"`
				TaskID *string `json:"task_id"`
			} `json:"data"`
		}
		u.Must(http.StatusOK, "GET", "/api/v1/notifications", nil, nil).JSON(t, &l)
		n := 0
		for _, x := range l.Data {
			if x.Type == "reminder" && x.TaskID != nil && *x.TaskID == tk.ID {
				n++
			}
		}
		if n != 1 {
			return stack.Errorf("%d reminder notifications", n)
		}
		return nil
	})
}
