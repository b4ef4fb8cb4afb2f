package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/e2e/contract"
	"github.com/perpetua-flow/backend/e2e/stack"
)

var (
	contractOnce sync.Once
	contractV    *contract.Validator
	contractErr  error
	// contractTests are the tests whose exchanges were checked, each summarised once at
	// its end.
	contractMu    sync.Mutex
	contractTests = map[testing.TB]*contractTally{}
)

type contractTally struct{ checked, failed int }

func loadContract() (*contract.Validator, error) {
	contractOnce.Do(func() {
		path, err := contract.RepoPath(contract.DocumentPath)
		if err != nil {
			contractErr = err
			return
		}
		contractV, contractErr = contract.Load(path)
	})
	return contractV, contractErr
}

// Every exchange any suite makes through a stack.Client is checked against openapi.json
// as soon as its answer is read; a mismatch fails the test that made it, and the test's
// end logs how many exchanges were checked. Nothing in the suites has to opt in, so the
// document cannot drift from what the services answer.
func init() {
	stack.Observe(func(t testing.TB, ex stack.Exchange) {
		v, err := loadContract()
		if err != nil {
			t.Errorf("contract: %v", err)
			return
		}
		contractMu.Lock()
		tally := contractTests[t]
		if tally == nil {
			tally = &contractTally{}
			contractTests[t] = tally
			t.Cleanup(func() {
				contractMu.Lock()
				c, f := tally.checked, tally.failed
				delete(contractTests, t)
				contractMu.Unlock()
				t.Logf("contract: %d exchanges checked against openapi.json, %d mismatched", c, f)
			})
		}
		tally.checked++
		contractMu.Unlock()
		if err := v.Check(ex.Request, ex.RequestBody, ex.Response.Status, ex.Response.Header, ex.Response.Body); err != nil {
			contractMu.Lock()
			tally.failed++
			contractMu.Unlock()
			t.Errorf("contract mismatch: %v", err)
		}
	})
}

// The document lists exactly the routes the services mount. Every operation of the
// document reaches a handler: sent through the gateway by a signed-in user (ids are
// random, bodies empty objects, so nearly all answer 4xx), none may be the router's "no
// such route" or 405, and every answer must be one the document lists for the operation
// (the requests are malformed on purpose, so only the answers are checked). And every
// other method on a documented path must be refused as unrouted. The user deletes their
// account last.
func testDocumentedRoutesAreMounted(t *testing.T, s *stack.Stack) {
	v, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	u := s.SignIn(email()).For(t)
	ops := contract.Operations(v.Doc())
	// Deleting the account and signing out end the user: run them last.
	sort.SliceStable(ops, func(i, j int) bool { return !lastProbe(ops[i]) && lastProbe(ops[j]) })
	client := &http.Client{Timeout: 30 * time.Second}
	send := func(method, path string) (*http.Request, []byte, *http.Response, []byte) {
		t.Helper()
		var body []byte
		req, err := http.NewRequest(method, s.GatewayURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch method {
		case http.MethodPost, http.MethodPatch, http.MethodPut:
			body = []byte("{}")
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Type", "application/json")
		}
		if method != http.MethodGet {
			// ai requires the key on every mutating method, before routing.
			req.Header.Set("Idempotency-Key", uuid.NewString())
		}
		req.Header.Set("Authorization", "Bearer "+u.Token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return req, body, resp, answer
	}
	unrouted := func(resp *http.Response, answer []byte) bool {
		return resp.StatusCode == http.StatusMethodNotAllowed ||
			resp.StatusCode == http.StatusNotFound && strings.Contains(string(answer), "no such route")
	}

	// The other way round: a method the document does not list on a documented path must
	// be refused as such (405), not served.
	documented := map[string]map[string]bool{}
	for _, op := range ops {
		if documented[op.Path] == nil {
			documented[op.Path] = map[string]bool{}
		}
		documented[op.Path][op.Method] = true
	}
	paths := make([]string, 0, len(documented))
	for p := range documented {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if opsRoute[p] {
			continue
		}
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			path := strings.NewReplacer("{id}", uuid.NewString()).Replace(p)
			if documented[p][m] || v.Documents(m, path) {
				continue
			}
			if _, _, resp, answer := send(m, path); !unrouted(resp, answer) {
				t.Errorf("%s %s is served (%d) but not documented: %s", m, p, resp.StatusCode, clip(answer))
			}
		}
	}

	for _, op := range ops {
		if isStream(op) {
			continue // an SSE stream open for this user would not end; the tasks tests cover it
		}
		path := strings.NewReplacer("{id}", uuid.NewString()).Replace(op.Path)
		req, body, resp, answer := send(op.Method, path)
		if unrouted(resp, answer) {
			t.Errorf("%s %s (documented as %s) is not mounted: %d %s", op.Method, path, op.Path, resp.StatusCode, answer)
			continue
		}
		if err := v.CheckResponse(req, body, resp.StatusCode, resp.Header, answer); err != nil {
			t.Errorf("contract mismatch: %v", err)
		}
	}
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// opsRoute are the health and metrics routes every service mounts with httpx.MountOps,
// which answers any method (libs/httpx/health.go: it takes a Handle-only mux); the probe of
// undocumented methods leaves them out.
var opsRoute = map[string]bool{"/health/live": true, "/health/ready": true, "/metrics": true}

func lastProbe(op contract.Operation) bool {
	return op.Path == "/api/v1/users/me" && op.Method == http.MethodDelete || op.Path == "/api/v1/auth/logout"
}

// isStream is a GET answered with an event stream.
func isStream(op contract.Operation) bool {
	if op.Method != http.MethodGet || op.Responses == nil {
		return false
	}
	ok := op.Responses.Status(http.StatusOK)
	return ok != nil && ok.Value != nil && ok.Value.Content.Get("text/event-stream") != nil
}

// A tour of the operations the scenarios do not reach, on their success paths, so their
// answers are checked against the document too (every call goes through stack.Client).
func testContractTour(t *testing.T, s *stack.Stack) {
	addr := email()
	u := s.SignIn(addr).For(t)
	other := s.SignIn(addr).For(t) // a second session of the same user
	anon := s.NewClient().For(t)

	anon.Must(200, "GET", "/.well-known/jwks.json", nil, nil)
	anon.Must(200, "GET", "/api/v1/.well-known/jwks.json", nil, nil)
	anon.Must(200, "GET", "/health/live", nil, nil)
	anon.Must(200, "GET", "/metrics", nil, nil)

	u.Must(200, "GET", "/api/v1/users/me", nil, nil)
	u.Must(200, "PATCH", "/api/v1/users/me", map[string]any{"name": "Tour Guide", "timezone": "Europe/Paris"}, nil)
	var sessions []struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
	}
	u.Must(200, "GET", "/api/v1/auth/sessions", nil, nil).Data(t, &sessions)
	for _, sess := range sessions {
		if !sess.Current {
			u.Do("DELETE", "/api/v1/auth/sessions/"+sess.ID, nil, nil)
			break
		}
	}

	// Tasks and subtasks.
	var tk task
	u.Must(201, "POST", "/api/v1/tasks", map[string]any{
		"title": "Tour", "description": "all the routes", "priority": "high",
		"due_date": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339), "estimated_duration": 30,
	}, nil).Data(t, &tk)
	u.Must(200, "GET", "/api/v1/tasks?completed=false&priority=high&q=Tour&include_hidden=true&limit=10&offset=0", nil, nil)
	u.Must(200, "PUT", "/api/v1/tasks/"+tk.ID, map[string]any{"title": "Tour (put)", "version": 1}, nil)
	var subs [3]struct{ ID string }
	for i := range subs {
		u.Must(201, "POST", "/api/v1/tasks/"+tk.ID+"/subtasks", map[string]any{"title": fmt.Sprintf("stop %d", i)}, nil).Data(t, &subs[i])
	}
	u.Must(200, "GET", "/api/v1/tasks/"+tk.ID+"/subtasks", nil, nil)
	u.Must(200, "PUT", "/api/v1/tasks/"+tk.ID+"/subtasks/order", map[string]any{"subtask_ids": []string{subs[2].ID, subs[0].ID, subs[1].ID}}, nil)
	u.Must(200, "PUT", "/api/v1/subtasks/"+subs[0].ID, map[string]any{"title": "stop zero"}, nil)
	u.Must(200, "DELETE", "/api/v1/subtasks/"+subs[1].ID, nil, nil)
	u.Must(200, "PATCH", "/api/v1/tasks/"+tk.ID, map[string]any{"hidden": true}, nil)
	u.Must(200, "PATCH", "/api/v1/tasks/"+tk.ID, map[string]any{"description": nil, "due_date": nil, "estimated_duration": nil}, nil)

	// Notes, tombstones, activity, notifications.
	var note struct{ ID string }
	u.Must(201, "POST", "/api/v1/notes", map[string]any{"content": "remember the milk"}, nil).Data(t, &note)
	u.Must(200, "GET", "/api/v1/notes?archived=false", nil, nil)
	u.Must(200, "GET", "/api/v1/notes/"+note.ID, nil, nil)
	u.Must(200, "PATCH", "/api/v1/notes/"+note.ID, map[string]any{"archived": true}, nil)
	u.Must(200, "PUT", "/api/v1/notes/"+note.ID, map[string]any{"archived": false}, nil)
	var gone struct {
		TombstoneID string `json:"tombstone_id"`
	}
	u.Must(200, "DELETE", "/api/v1/notes/"+note.ID, nil, nil).Data(t, &gone)
	u.Must(200, "GET", "/api/v1/tombstones", nil, nil)
	u.Must(200, "POST", "/api/v1/tombstones/"+gone.TombstoneID+"/recover", nil, nil)
	u.Must(200, "GET", "/api/v1/activity?entity_type=task&source=user", nil, nil)
	u.Must(200, "GET", "/api/v1/notifications", nil, nil)
	u.Must(200, "POST", "/api/v1/notifications/read-all", nil, nil)

	// Reminders, focus, templates, achievements, the calendar feed.
	var due task
	u.Must(201, "POST", "/api/v1/tasks", map[string]any{
		"title": "Dentist", "due_date": time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339),
	}, nil).Data(t, &due)
	var rem struct{ ID string }
	u.Must(201, "POST", "/api/v1/tasks/"+due.ID+"/reminders", map[string]any{"type": "before", "offset_minutes": 30, "method": "in_app"}, nil).Data(t, &rem)
	u.Must(201, "POST", "/api/v1/reminders", map[string]any{
		"task_id": due.ID, "type": "absolute", "scheduled_at": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
	}, nil)
	u.Must(200, "PATCH", "/api/v1/reminders/"+rem.ID, map[string]any{"offset_minutes": 60}, nil)
	u.Must(200, "PUT", "/api/v1/reminders/"+rem.ID, map[string]any{"method": "push"}, nil)
	u.Must(200, "GET", "/api/v1/tasks/"+due.ID+"/reminders", nil, nil)
	u.Must(200, "GET", "/api/v1/tasks/"+due.ID, nil, nil)
	u.Must(200, "DELETE", "/api/v1/reminders/"+rem.ID, nil, nil)
	u.Must(201, "POST", "/api/v1/focus/start", map[string]any{"task_id": due.ID}, nil)
	u.Must(200, "GET", "/api/v1/focus/active", nil, nil)
	u.Must(200, "POST", "/api/v1/focus/stop", nil, nil)
	u.Must(200, "GET", "/api/v1/focus/active", nil, nil)
	var tpl struct{ ID string }
	u.Must(201, "POST", "/api/v1/templates", map[string]any{
		"title": "Weekly review", "priority": "low", "estimated_duration": 45,
		"rrule": "FREQ=WEEKLY;BYDAY=MO,WE,FR", "subtasks": []string{"Inbox zero", "Plan"},
	}, nil).Data(t, &tpl)
	u.Must(200, "GET", "/api/v1/templates", nil, nil)
	u.Must(200, "GET", "/api/v1/templates/"+tpl.ID, nil, nil)
	u.Must(200, "PATCH", "/api/v1/templates/"+tpl.ID, map[string]any{"title": "Review", "active": true}, nil)
	u.Must(200, "PUT", "/api/v1/templates/"+tpl.ID, map[string]any{"priority": "medium"}, nil)
	u.Must(201, "POST", "/api/v1/templates/"+tpl.ID+"/instantiate", nil, nil)
	u.Must(200, "DELETE", "/api/v1/templates/"+tpl.ID, nil, nil)
	u.Must(200, "GET", "/api/v1/achievements", nil, nil)
	u.Must(200, "GET", "/api/v1/achievements/me", nil, nil)
	var cal struct{ Token, URL string }
	u.Must(201, "POST", "/api/v1/calendar/token", nil, nil).Data(t, &cal)
	anon.Must(200, "GET", "/api/v1/calendar.ics?token="+cal.Token, nil, nil)
	u.Must(200, "DELETE", "/api/v1/calendar/token", nil, nil)
	anon.Must(404, "GET", "/api/v1/calendar.ics?token="+cal.Token, nil, nil)

	// Credits and subscription.
	u.Must(200, "GET", "/api/v1/credits/balance", nil, nil)
	u.Must(200, "GET", "/api/v1/ai/credits", nil, nil)
	u.Must(200, "GET", "/api/v1/credits/history", nil, nil)
	u.Must(200, "GET", "/api/v1/subscription", nil, nil)

	// The assistant, against the fake model: a streamed chat and subtask suggestions.
	waitBalance(t, u, func(b balance) bool { return b.Kickstart == 5 })
	ai := func() map[string]string { return map[string]string{"Idempotency-Key": uuid.NewString()} }
	stream := u.Must(200, "POST", "/api/v1/ai/chat/stream", map[string]any{"message": "Plan my day"}, ai())
	if !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("chat stream answered %q", stream.Header.Get("Content-Type"))
	}
	u.Must(200, "POST", "/api/v1/ai/generate-subtasks", map[string]any{"task_id": due.ID}, ai())

	// Leaving: sign out the other session, then delete the account.
	anon.Must(204, "POST", "/api/v1/auth/logout", map[string]string{"refresh_token": other.Refresh}, nil)
	u.Do("DELETE", "/api/v1/users/me", nil, nil)
}
