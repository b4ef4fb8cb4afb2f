package e2e_test

import (
	"bytes"
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

// Every operation of the document reaches a handler: sent through the gateway by a
// signed-in user (ids are random, bodies empty objects, so nearly all answer 4xx), none
// may be the router's "no such route" or 405, and every answer must be one the document
// lists for the operation (the requests are malformed on purpose, so only the answers are
// checked). The user deletes their account last.
func testDocumentedRoutesAreMounted(t *testing.T, s *stack.Stack) {
	v, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	u := s.SignIn(email())
	ops := contract.Operations(v.Doc())
	// Deleting the account and signing out end the user: run them last.
	sort.SliceStable(ops, func(i, j int) bool { return !lastProbe(ops[i]) && lastProbe(ops[j]) })
	client := &http.Client{Timeout: 30 * time.Second}
	for _, op := range ops {
		if isStream(op) {
			continue // an SSE stream open for this user would not end; the tasks tests cover it
		}
		path := strings.NewReplacer("{id}", uuid.NewString()).Replace(op.Path)
		var body []byte
		req, err := http.NewRequest(op.Method, s.GatewayURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch op.Method {
		case http.MethodPost, http.MethodPatch, http.MethodPut:
			body = []byte("{}")
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", uuid.NewString())
		}
		req.Header.Set("Authorization", "Bearer "+u.Token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", op.Method, path, err)
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusMethodNotAllowed ||
			resp.StatusCode == http.StatusNotFound && strings.Contains(string(answer), "no such route") {
			t.Errorf("%s %s (documented as %s) is not mounted: %d %s", op.Method, path, op.Path, resp.StatusCode, answer)
			continue
		}
		if err := v.CheckResponse(req, body, resp.StatusCode, resp.Header, answer); err != nil {
			t.Errorf("contract mismatch: %v", err)
		}
	}
}

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
