package contract_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/perpetua-flow/backend/e2e/contract"
)

func setup(t *testing.T) *contract.Validator {
	t.Helper()
	path, err := contract.RepoPath(contract.DocumentPath)
	if err != nil {
		t.Fatal(err)
	}
	v, err := contract.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The validator catches what the suites rely on it to catch, and passes a right answer.
func TestCheck(t *testing.T) {
	t.Parallel()
	v := setup(t)
	okHeader := func() http.Header {
		return http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"0123456789abcdef0123456789abcdef"}}
	}
	for _, tc := range []struct {
		name, method, path, auth, body string
		status                         int
		header                         http.Header
		want                           string // "" = valid; else a fragment of the error
	}{
		{"health", "GET", "/health/live", "", `{"status":"ok"}`, 200, okHeader(), ""},
		{"no request id", "GET", "/health/live", "", `{"status":"ok"}`, 200,
			http.Header{"Content-Type": {"application/json"}}, "X-Request-ID"},
		{"undocumented status", "GET", "/health/live", "", `{}`, 418, okHeader(), "status is not supported"},
		{"no route", "GET", "/api/v1/nowhere", "Bearer x", `{}`, 200, okHeader(), "no operation"},
		{"unknown route answered 404", "GET", "/api/v1/nowhere", "Bearer x",
			`{"error":{"code":"NOT_FOUND","message":"no such route","details":[],"request_id":"r"}}`, 404, okHeader(), ""},
		{"secured without a token", "GET", "/api/v1/users/me", "", `{}`, 200, okHeader(), "no bearer token"},
		{"bad body", "GET", "/api/v1/tasks/0190a0b0-0000-7000-8000-000000000000", "Bearer x", `{"data":{"id":1}}`, 200, okHeader(), "doesn't match"},
		{"error envelope", "GET", "/api/v1/tasks/0190a0b0-0000-7000-8000-000000000000", "Bearer x",
			`{"error":{"code":"NOT_FOUND","message":"task not found","details":[],"request_id":"r"}}`, 404, okHeader(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tc.method, "http://127.0.0.1:1"+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			err = v.Check(req, nil, tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}

// Documents matches concrete paths against every template of the document.
func TestDocuments(t *testing.T) {
	t.Parallel()
	v := setup(t)
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"DELETE", "/api/v1/notifications/read-all", true}, // DELETE /notifications/{id}
		{"POST", "/api/v1/notifications/read-all", true},
		{"PUT", "/api/v1/notifications/read-all", false},
		{"GET", "/api/v1/tasks/abc", true},
		{"GET", "/api/v1/tasks/", false},
		{"POST", "/api/v1/users/me", false},
	} {
		if got := v.Documents(tc.method, tc.path); got != tc.want {
			t.Errorf("Documents(%s %s) = %v, want %v", tc.method, tc.path, got, tc.want)
		}
	}
}
