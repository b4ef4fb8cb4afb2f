package events_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/perpetua-flow/backend/libs/events"
)

// FuzzParse feeds arbitrary message bodies to Parse, as a consumer receives them from the
// broker: it never panics, what it accepts is a valid envelope, and an accepted envelope
// survives marshalling and parsing again with the same attributes and data.
func FuzzParse(f *testing.F) {
	golden, err := os.ReadFile("testdata/envelope.golden")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	for _, s := range []string{
		`{"specversion":"1.0","id":"1","source":"s","type":"auth.user.created","time":"2026-01-01T00:00:00Z","data":{}}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"a.b","time":"2026-01-01T00:00:00Z"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"a.*","time":"2026-01-01T00:00:00Z","data":null}`,
		`{"specversion":"0.3","id":"1","source":"s","type":"a.b","time":"2026-01-01T00:00:00Z"}`,
		`{"specversion":"1.0","id":"","source":"s","type":"a..b","time":"0001-01-01T00:00:00Z"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"a.b","time":"not a time"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"a.b","time":"2026-01-01T00:00:00+14:00","data":[1,2,{"x":"\u0000"}]}`,
		`{"data":1e999}`, `[]`, `null`, `{`, ``, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := events.Parse(body)
		if err != nil {
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid envelope %q: %v", body, err)
		}
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("an accepted envelope does not marshal: %v (%q)", err, body)
		}
		back, err := events.Parse(again)
		if err != nil {
			t.Fatalf("round trip of %q (%s): %v", body, again, err)
		}
		if back.SpecVersion != ev.SpecVersion || back.ID != ev.ID || back.Source != ev.Source || back.Type != ev.Type ||
			back.Subject != ev.Subject || !back.Time.Equal(ev.Time) || back.DataContentType != ev.DataContentType {
			t.Fatalf("round trip changed the attributes:\n%+v\n%+v", ev, back)
		}
		if a, b := compact(t, ev.Data), compact(t, back.Data); a != b {
			t.Fatalf("round trip changed the data: %s → %s", a, b)
		}
	})
}

// compact is data without insignificant whitespace; absent data reads as null.
func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if len(raw) == 0 {
		return "null"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("data %q is not JSON: %v", raw, err)
	}
	return buf.String()
}
