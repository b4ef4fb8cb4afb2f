package recurrence_test

import (
	"errors"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"

	"github.com/perpetua-flow/backend/services/tasks/internal/recurrence"
)

// FuzzParse: Parse never panics; a refusal is always a VALIDATION_ERROR on rrule; an
// accepted rule has a non-empty text, a canonical form that parses to itself, and
// occurrences that strictly increase (Next is monotonic) and never precede DTSTART. The
// seed corpus (valid rules of every kind, refused ones, month ends, leap days) is in
// testdata/fuzz/FuzzParse and runs with every go test.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string, startUnix int64) {
		// DTSTART is a creation time: keep it within years rrule-go handles.
		start := time.Unix(1_000_000_000+(startUnix%4_000_000_000+4_000_000_000)%4_000_000_000, 0).UTC()
		r, err := recurrence.Parse(s, start)
		if err != nil {
			var e *apperr.Error
			if !errors.As(err, &e) || e.Code != apperr.Validation || len(e.Details) != 1 || e.Details[0].Field != "rrule" {
				t.Fatalf("Parse(%q) error %v is not one VALIDATION_ERROR on rrule", s, err)
			}
			return
		}
		if recurrence.Text(r) == "" {
			t.Fatalf("Parse(%q): empty text", s)
		}
		again, err := recurrence.Parse(r.String(), start)
		if err != nil || again.String() != r.String() {
			t.Fatalf("canonical %q of %q does not round-trip: %v", r.String(), s, err)
		}
		prev := start.Add(-time.Second)
		for i := range 50 {
			next, ok := r.Next(prev)
			if !ok {
				if i == 0 {
					t.Fatalf("Parse(%q) accepted a rule with no occurrence", s)
				}
				return
			}
			if !next.After(prev) || next.Before(r.DTStart()) {
				t.Fatalf("%q: occurrence %d at %v after %v (start %v)", s, i, next, prev, r.DTStart())
			}
			prev = next
		}
	})
}
