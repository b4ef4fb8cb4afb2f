package e2e_test

import (
	"sync"
	"testing"

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
