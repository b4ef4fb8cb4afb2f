package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/e2e/fakes"
	"github.com/perpetua-flow/backend/e2e/stack"
)

type task struct {
	ID                    string  `json:"id"`
	Title                 string  `json:"title"`
	Completed             bool    `json:"completed"`
	CompletedBy           *string `json:"completed_by"`
	Version               int     `json:"version"`
	SubtaskCount          int     `json:"subtask_count"`
	SubtaskCompletedCount int     `json:"subtask_completed_count"`
	Subtasks              []struct {
		ID        string `json:"id"`
		Completed bool   `json:"completed"`
	} `json:"subtasks"`
}

// TestScenarios runs the acceptance scenarios of API.md §10 through the gateway against
// one stack (five services take seconds to start); each scenario signs in users of its own.
func TestScenarios(t *testing.T) {
	t.Parallel()
	google, openai, deepgram := fakes.NewGoogle(t), fakes.NewOpenAI(t), fakes.NewDeepgram(t)
	s := stack.Start(t, stack.Options{ServiceEnv: map[string]map[string]string{
		"auth":    {"GOOGLE_JWKS_URL": google.JWKSURL, "GOOGLE_CLIENT_IDS": fakes.GoogleClientID},
		"billing": {"CHECKOUT_WEBHOOK_SECRETS": webhookSecret},
		"ai": {"OPENAI_API_KEY": "sk-e2e", "OPENAI_BASE_URL": openai.BaseURL,
			"DEEPGRAM_API_KEY": "dg-e2e", "DEEPGRAM_BASE_URL": deepgram.BaseURL},
	}})
	// Runs after every scenario (parallel subtests finish first), before the stack stops.
	t.Cleanup(func() { checkEvents(t, s) })
	for name, f := range map[string]func(*testing.T, *stack.Stack){
		"StackReady":                   testStackComesUpReady,
		"TaskLifecycle":                testScenarioTaskLifecycle,
		"OptimisticLocking":            testScenarioOptimisticLocking,
		"Idempotency":                  testScenarioIdempotency,
		"TaskLimit":                    testScenarioTaskLimit,
		"Ownership":                    testScenarioOwnership,
		"RefreshReuse":                 testScenarioRefreshReuse,
		"SignUpGrantsKickstartCredits": testSignUpGrantsKickstartCredits,
		"GoogleSignIn":                 func(t *testing.T, s *stack.Stack) { testGoogleSignIn(t, s, google) },
		"JWTAttacks":                   testJWTAttacks,
		"Webhooks":                     testScenarioWebhooks,
		"Credits":                      func(t *testing.T, s *stack.Stack) { testScenarioCredits(t, s, openai) },
		"LimitsWithPerk":               testScenarioLimitsWithPerk,
		"Recurrence":                   testScenarioRecurrence,
		"ReminderFires":                testReminderFires,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, s)
		})
	}
}

func email() string { return "u-" + uuid.NewString()[:8] + "@example.com" }

// API.md §10 scenario 1, through the gateway: subtasks, auto-completion, force-complete,
// delete and recovery with the original id and version 1.
func testScenarioTaskLifecycle(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)

	var doc task
	u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": "Write documentation"}, nil).Data(t, &doc)
	var sub struct{ ID string }
	u.Must(201, "POST", "/api/v1/tasks/"+doc.ID+"/subtasks", map[string]any{"title": "Outline"}, nil).Data(t, &sub)
	var got task
	u.Must(200, "GET", "/api/v1/tasks/"+doc.ID, nil, nil).Data(t, &got)
	if got.SubtaskCount != 1 || got.SubtaskCompletedCount != 0 {
		t.Fatalf("counts = %d/%d, want 1/0", got.SubtaskCount, got.SubtaskCompletedCount)
	}
	u.Must(200, "PATCH", "/api/v1/subtasks/"+sub.ID, map[string]any{"completed": true}, nil)
	u.Must(200, "GET", "/api/v1/tasks/"+doc.ID, nil, nil).Data(t, &got)
	if got.SubtaskCompletedCount != 1 || !got.Completed || got.CompletedBy == nil || *got.CompletedBy != "auto" {
		t.Fatalf("after the last subtask: %+v (want 1/1, completed by auto)", got)
	}

	var second task
	u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": "Ship release"}, nil).Data(t, &second)
	for _, title := range []string{"Tag", "Build", "Announce"} {
		u.Must(201, "POST", "/api/v1/tasks/"+second.ID+"/subtasks", map[string]any{"title": title}, nil)
	}
	u.Must(200, "GET", "/api/v1/tasks/"+second.ID, nil, nil).Data(t, &second)
	var forced struct{ Task task }
	u.Must(200, "POST", "/api/v1/tasks/"+second.ID+"/force-complete", map[string]any{"version": second.Version}, nil).Data(t, &forced)
	if !forced.Task.Completed || *forced.Task.CompletedBy != "force" {
		t.Fatalf("force-complete: %+v", forced.Task)
	}
	u.Must(200, "GET", "/api/v1/tasks/"+second.ID, nil, nil).Data(t, &got)
	for _, st := range got.Subtasks {
		if !st.Completed {
			t.Fatalf("subtask %s still open after force-complete", st.ID)
		}
	}

	var del struct {
		DeletedID   string `json:"deleted_id"`
		TombstoneID string `json:"tombstone_id"`
	}
	u.Must(200, "DELETE", "/api/v1/tasks/"+second.ID, nil, nil).Data(t, &del)
	if del.DeletedID != second.ID || del.TombstoneID == "" {
		t.Fatalf("delete = %+v", del)
	}
	u.Must(404, "GET", "/api/v1/tasks/"+second.ID, nil, nil)
	u.Must(200, "POST", "/api/v1/tombstones/"+del.TombstoneID+"/recover", nil, nil)
	u.Must(200, "GET", "/api/v1/tasks/"+second.ID, nil, nil).Data(t, &got)
	if got.ID != second.ID || got.Version != 1 || len(got.Subtasks) != 3 {
		t.Fatalf("recovered = %+v, want the same id, version 1 and 3 subtasks", got)
	}
}

// Scenario 4: two clients update with version 1; one wins, one gets 409 with the version.
func testScenarioOptimisticLocking(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	var tk task
	u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": "Contended"}, nil).Data(t, &tk)
	statuses := make(chan int, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := u.Do("PATCH", "/api/v1/tasks/"+tk.ID, map[string]any{"title": fmt.Sprintf("client %d", i), "version": 1}, nil)
			statuses <- r.Status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[200] != 1 || count[409] != 1 {
		t.Fatalf("statuses = %v, want one 200 and one 409", count)
	}
	r := u.Must(409, "PATCH", "/api/v1/tasks/"+tk.ID, map[string]any{"title": "stale", "version": 1}, nil)
	if r.ErrorCode() != "CONFLICT" || !strings.Contains(string(r.Body), "current version is 2") {
		t.Fatalf("conflict body = %s", r.Body)
	}
}

// Scenario 5: idempotent creates, replay, key reuse, and 50 concurrent identical requests.
func testScenarioIdempotency(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	key := map[string]string{"Idempotency-Key": uuid.NewString()}
	first := u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": "Once"}, key)
	again := u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": "Once"}, key)
	if again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(first.Body) {
		t.Fatalf("replay: header %q, bodies equal %v", again.Header.Get("Idempotent-Replayed"), string(again.Body) == string(first.Body))
	}
	if r := u.Do("POST", "/api/v1/tasks", map[string]any{"title": "Different"}, key); r.Status != 422 || r.ErrorCode() != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("reuse: %d %s", r.Status, r.Body)
	}
	if n := countTasks(t, u); n != 1 {
		t.Fatalf("tasks = %d, want 1", n)
	}

	key = map[string]string{"Idempotency-Key": uuid.NewString()}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.Do("POST", "/api/v1/tasks", map[string]any{"title": "Fifty"}, key)
		}()
	}
	wg.Wait()
	if n := countTasks(t, u); n != 2 {
		t.Fatalf("tasks after 50 concurrent identical creates = %d, want 2", n)
	}
}

// Scenario 6, first half: a free user's 51st task is refused with LIMIT_EXCEEDED.
func testScenarioTaskLimit(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	for i := range 50 {
		u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": fmt.Sprintf("task %d", i)}, nil)
	}
	r := u.Must(409, "POST", "/api/v1/tasks", map[string]any{"title": "one too many"}, nil)
	if r.ErrorCode() != "LIMIT_EXCEEDED" {
		t.Fatalf("51st: %s", r.Body)
	}
}

// Scenario 9 (part): another user's task is 404, whatever the verb.
func testScenarioOwnership(t *testing.T, s *stack.Stack) {
	a, b := s.SignIn(email()).For(t), s.SignIn(email()).For(t)
	var tk task
	a.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": "A's secret"}, nil).Data(t, &tk)
	b.Must(404, "GET", "/api/v1/tasks/"+tk.ID, nil, nil)
	b.Must(404, "PATCH", "/api/v1/tasks/"+tk.ID, map[string]any{"title": "mine now"}, nil)
	b.Must(404, "DELETE", "/api/v1/tasks/"+tk.ID, nil, nil)
	b.Must(404, "POST", "/api/v1/tasks/"+tk.ID+"/subtasks", map[string]any{"title": "x"}, nil)
	a.Must(200, "GET", "/api/v1/tasks/"+tk.ID, nil, nil)
}

// Scenario 9 (part): a reused refresh token answers 401 and revokes the session.
func testScenarioRefreshReuse(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	anon := s.NewClient().For(t)
	var next struct {
		RefreshToken string `json:"refresh_token"`
	}
	anon.Must(200, "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": u.Refresh}, nil).JSON(t, &next)
	r := anon.Must(401, "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": u.Refresh}, nil)
	if r.ErrorCode() != "REFRESH_TOKEN_REUSED" {
		t.Fatalf("reuse: %s", r.Body)
	}
	r = anon.Must(401, "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": next.RefreshToken}, nil)
	if r.ErrorCode() != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("the session's newest token must be revoked too: %s", r.Body)
	}
}

// A new user gets the 5 kickstart credits: auth.user.created crossed JetStream to billing.
func testSignUpGrantsKickstartCredits(t *testing.T, s *stack.Stack) {
	u := s.SignIn(email()).For(t)
	stack.Eventually(t, 15*time.Second, func() error {
		r := u.Do("GET", "/api/v1/credits/balance", nil, nil)
		if r.Status != http.StatusOK {
			return stack.Errorf("balance: %d %s", r.Status, r.Body)
		}
		var b struct{ Kickstart, Total int }
		r.Data(t, &b)
		if b.Kickstart != 5 {
			return stack.Errorf("kickstart = %d", b.Kickstart)
		}
		return nil
	})
}

func countTasks(t *testing.T, c *stack.Client) int {
	t.Helper()
	var l struct {
		Pagination struct{ Total int } `json:"pagination"`
	}
	c.Must(200, "GET", "/api/v1/tasks?include_hidden=true", nil, nil).JSON(t, &l)
	return l.Pagination.Total
}
