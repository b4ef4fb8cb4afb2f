package contract_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetua-flow/backend/e2e/contract"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.golden from the document")

// The document is valid OpenAPI and its surface is the golden file's: any change to the
// document shows in review as a change of testdata/openapi.golden (go test -run
// TestOpenAPIGolden -update rewrites it).
func TestOpenAPIGolden(t *testing.T) {
	t.Parallel()
	path, err := contract.RepoPath(contract.DocumentPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := contract.LoadDocument(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := contract.Summary(raw)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "openapi.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestOpenAPIGolden -update)", err)
	}
	if got != string(want) {
		t.Fatalf("openapi.json changed; review the difference and run go test -run TestOpenAPIGolden -update:\n%s",
			lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+), in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inW, inG := map[string]int{}, map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	for _, l := range g {
		inG[l]++
	}
	var b strings.Builder
	for _, l := range w {
		if inG[l] == 0 {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if inW[l] == 0 {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
