package httpx_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
)

// fuzzReq has the field kinds our request DTOs use: pointers for optional create fields,
// Optional for PATCH, numbers, booleans, nested lists and objects.
type fuzzReq struct {
	Title    *string                    `json:"title"`
	Priority string                     `json:"priority"`
	Due      httpx.Optional[string]     `json:"due_date"`
	Minutes  httpx.Optional[int]        `json:"estimated_duration"`
	Version  *int                       `json:"version"`
	Done     bool                       `json:"completed"`
	IDs      []string                   `json:"subtask_ids"`
	Context  *struct{ TaskLimit int }   `json:"context"`
	Meta     map[string]json.RawMessage `json:"metadata"`
	Amount   float64                    `json:"amount"`
	Tags     httpx.Optional[[]string]   `json:"tags"`
}

// fuzzPlain is fuzzReq without Optional (which does not marshal back to its input), for
// the round-trip property.
type fuzzPlain struct {
	Title    *string                    `json:"title"`
	Priority string                     `json:"priority"`
	Version  *int                       `json:"version"`
	Done     bool                       `json:"completed"`
	IDs      []string                   `json:"subtask_ids"`
	Context  *struct{ TaskLimit int }   `json:"context"`
	Meta     map[string]json.RawMessage `json:"metadata"`
	Amount   float64                    `json:"amount"`
}

// FuzzDecodeBytes: any body either decodes or is a 400 VALIDATION_ERROR with at least one
// detail — never a panic, never another code (which would surface as a 500) — and what
// decodes survives a round trip through JSON unchanged.
func FuzzDecodeBytes(f *testing.F) {
	for _, s := range []string{
		`{"title":"Write documentation"}`,
		`{"title":null,"due_date":null,"estimated_duration":30}`,
		`{"title":"x","version":3,"completed":true,"subtask_ids":["a","b"]}`,
		`{"context":{"TaskLimit":50},"metadata":{"user_id":"u","kind":"credits"}}`,
		`{"amount":1e308,"tags":[]}`,
		`{"unknown":1}`, `{"title":1}`, `{"version":"7"}`, `{"version":1.5}`, `[]`, `null`, `""`,
		`{"title":"a"}{"title":"b"}`, `{"title":"\ud800"}`, `{"title":"a",}`, `{`, ``, `   `,
		`{"estimated_duration":99999999999999999999}`, `{"due_date":{"a":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var dst fuzzReq
		wantValidation(t, body, httpx.DecodeBytes(body, &dst))
		var plain fuzzPlain
		err := httpx.DecodeBytes(body, &plain)
		wantValidation(t, body, err)
		if err != nil {
			return
		}
		again, err := json.Marshal(plain)
		if err != nil {
			t.Fatalf("decoded value does not marshal: %v", err)
		}
		var back fuzzPlain
		if err := httpx.DecodeBytes(again, &back); err != nil {
			t.Fatalf("round trip of %q (%s) fails: %v", body, again, err)
		}
		if a, b := normalize(t, plain), normalize(t, back); a != b {
			t.Fatalf("round trip changed the value:\n%s\n%s", a, b)
		}
	})
}

func wantValidation(t *testing.T, body []byte, err error) {
	t.Helper()
	if err == nil {
		return
	}
	e, ok := apperr.As(err)
	if !ok || e.Code != apperr.Validation || len(e.Details) == 0 {
		t.Fatalf("DecodeBytes(%q) = %v, want VALIDATION_ERROR with details", body, err)
	}
}

// normalize compares through JSON, so RawMessage whitespace does not count.
func normalize(t *testing.T, v fuzzPlain) string {
	t.Helper()
	for k, raw := range v.Meta {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			t.Fatalf("metadata %q is not JSON: %v", k, err)
		}
		v.Meta[k] = buf.Bytes()
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzDecode: through a real request with any Content-Type and body, the answer is
// success, 400, 413 or 415 — never a panic or a 500.
func FuzzDecode(f *testing.F) {
	f.Add("application/json", []byte(`{"title":"ok"}`))
	f.Add("application/json; charset=utf-8", []byte(`{"version":2}`))
	f.Add("text/plain", []byte(`{"title":"ok"}`))
	f.Add("", []byte(`{}`))
	f.Add("application/json; boundary=\"", []byte(`{`))
	f.Add("application/JSON", []byte(`null`))
	f.Add("application/json", bytes.Repeat([]byte(" "), httpx.MaxBodyBytes+1))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		h := func(w http.ResponseWriter, r *http.Request) {
			var dst fuzzReq
			if err := httpx.Decode(r, &dst); err != nil {
				httpx.WriteError(w, r, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/tasks", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec, _ := serve(t, h, req)
		switch rec.Code {
		case http.StatusNoContent, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("Content-Type %q, body %q: status %d %s", contentType, body, rec.Code, rec.Body)
		}
	})
}
