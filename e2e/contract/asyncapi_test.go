package contract_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/perpetua-flow/backend/e2e/contract"
	"github.com/perpetua-flow/backend/libs/events/catalog"
)

// asyncAPIPath is the copy of the events' document the gateway embeds and serves.
const asyncAPIPath = "services/gateway/openapi/asyncapi.json"

// The gateway's /asyncapi.json is the catalogue's document: go test -run TestAsyncAPICopy
// -update rewrites the copy after a contract in libs/events changed.
func TestAsyncAPICopy(t *testing.T) {
	t.Parallel()
	want, err := catalog.AsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	path, err := contract.RepoPath(asyncAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from catalog.AsyncAPI(); run go test ./contract -run TestAsyncAPICopy -update", asyncAPIPath)
	}
}
