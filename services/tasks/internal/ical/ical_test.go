package ical_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/perpetua-flow/backend/services/tasks/internal/ical"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func ptr(t time.Time) *time.Time { return &t }

// golden compares got with testdata/name.golden (or rewrites it with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file (run go test -update after checking):\n%s", name, got)
	}
}

// checkWire checks what every line of a feed must satisfy: CRLF ends, at most 75 octets,
// continuation lines start with a space, and no UTF-8 sequence split by folding.
func checkWire(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Fatal("feed does not end with CRLF")
	}
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n") {
		if len(l) > 75 {
			t.Errorf("line %d has %d octets: %q", i+1, len(l), l)
		}
		if strings.ContainsAny(l, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i+1, l)
		}
		if !utf8.ValidString(l) {
			t.Errorf("line %d splits a UTF-8 sequence: %q", i+1, l)
		}
	}
}

var (
	stamp   = time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	created = time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
)

func todoCalendar() ical.Calendar {
	return ical.Calendar{
		ProdID: "-//Perpetua Flow//Tasks//EN", Name: "Perpetua Flow", Refresh: time.Hour,
		Components: []ical.Component{
			{
				Kind: ical.Todo, UID: "0193a4f2-7c1e-7b3a-9f00-000000000001@perpetua", Stamp: stamp,
				Created: created, LastModified: created.Add(time.Hour),
				Due: ptr(time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC)), Summary: "Write documentation",
				Description: "Sections: intro, API; examples\\appendix\nSecond line\r\nThird line",
				Priority:    ical.PriorityHigh,
			},
			{
				Kind: ical.Todo, UID: "0193a4f2-7c1e-7b3a-9f00-000000000002@perpetua", Stamp: stamp,
				Due: ptr(time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)), Summary: "Pay rent",
				Completed: ptr(time.Date(2026, 11, 24, 19, 45, 12, 0, time.UTC)), Priority: ical.PriorityMedium,
			},
			{
				Kind: ical.Todo, UID: "0193a4f2-7c1e-7b3a-9f00-000000000003@perpetua", Stamp: stamp,
				Due:     ptr(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)),
				Summary: "Überprüfe die Änderungen am Straßenverzeichnis — 日本語のタイトルも折り返しで壊れないこと 🎉🎉🎉",
				// A control character and invalid UTF-8 are dropped.
				Description: "tab\tkept, bell\x07 dropped, bad \xff byte dropped",
				Priority:    ical.PriorityLow,
			},
			{
				Kind: ical.Todo, UID: "template-0193a4f2-7c1e-7b3a-9f00-000000000004@perpetua", Stamp: stamp,
				Start: ptr(time.Date(2026, 11, 27, 13, 18, 13, 0, time.UTC)), Summary: "Team sync notes",
				RRule: "FREQ=WEEKLY;BYDAY=MO,WE,FR",
			},
		},
	}
}

func TestGoldenTodos(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := ical.Encode(&b, todoCalendar()); err != nil {
		t.Fatal(err)
	}
	checkWire(t, b.Bytes())
	golden(t, "todos", b.Bytes())
}

func TestGoldenEvents(t *testing.T) {
	t.Parallel()
	c := ical.Calendar{ProdID: "-//Perpetua Flow//Tasks//EN", Components: []ical.Component{
		{Kind: ical.Event, UID: "e1@perpetua", Stamp: stamp, Start: ptr(time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC)),
			Duration: 90 * time.Minute, Summary: "Review, merge; ship", Priority: ical.PriorityHigh},
		{Kind: ical.Event, UID: "e2@perpetua", Stamp: stamp, Start: ptr(time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC)),
			Summary: "Monthly report", RRule: "FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=12"},
	}}
	var b bytes.Buffer
	if err := ical.Encode(&b, c); err != nil {
		t.Fatal(err)
	}
	checkWire(t, b.Bytes())
	golden(t, "events", b.Bytes())
}

func TestEscape(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a,b;c\\d", `a\,b\;c\\d`},
		{"l1\nl2\r\nl3\rl4", `l1\nl2\nl3\nl4`},
		{"colon: stays", "colon: stays"},
		{"quote \" stays", "quote \" stays"},
		{"\x00nul\x1fus\x7fdel", "nulusdel"},
		{"tab\tstays", "tab\tstays"},
		{"ünï 日本 🎉", "ünï 日本 🎉"},
		{"bad\xffbyte", "badbyte"},
		{`\n is not a newline`, `\\n is not a newline`},
	}
	for _, tc := range tests {
		if got := ical.Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestFold: every folded line fits in 75 octets, continuation lines start with one space,
// unfolding (removing CRLF + space) gives the line back, and multi-byte characters stay
// whole, at every length around the boundaries.
func TestFold(t *testing.T) {
	t.Parallel()
	for _, unit := range []string{"a", "ü", "日", "🎉"} {
		for n := 60; n < 240; n++ {
			line := "SUMMARY:" + strings.Repeat(unit, n/len(unit)+1)
			folded := ical.Fold(line)
			checkWire(t, []byte(folded))
			lines := strings.Split(strings.TrimSuffix(folded, "\r\n"), "\r\n")
			for i, l := range lines[1:] {
				if !strings.HasPrefix(l, " ") {
					t.Fatalf("continuation line %d of %q has no leading space", i+1, line)
				}
			}
			if got := strings.ReplaceAll(strings.TrimSuffix(folded, "\r\n"), "\r\n ", ""); got != line {
				t.Fatalf("unfold(fold(%q)) = %q", line, got)
			}
		}
	}
	if got := ical.Fold(strings.Repeat("x", 75)); got != strings.Repeat("x", 75)+"\r\n" {
		t.Fatalf("a 75-octet line was folded: %q", got)
	}
	if got := ical.Fold(strings.Repeat("x", 76)); got != strings.Repeat("x", 75)+"\r\n x\r\n" {
		t.Fatalf("a 76-octet line folded as %q", got)
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "PT0S"}, {time.Second, "PT1S"}, {time.Hour, "PT1H"}, {90 * time.Minute, "PT1H30M"},
		{24 * time.Hour, "P1D"}, {26*time.Hour + 5*time.Second, "P1DT2H5S"}, {720 * time.Minute, "PT12H"},
	}
	for _, tc := range tests {
		if got := ical.Duration(tc.d); got != tc.want {
			t.Errorf("Duration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := ical.DateTime(time.Date(2026, 11, 26, 8, 0, 0, 0, time.FixedZone("X", 3600))); got != "20261126T070000Z" {
		t.Errorf("DateTime is not UTC: %s", got)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	ok := ical.Component{Kind: ical.Todo, UID: "u@p", Stamp: stamp}
	tests := []struct {
		name   string
		mutate func(*ical.Calendar, *ical.Component)
		want   string
	}{
		{"no PRODID", func(c *ical.Calendar, _ *ical.Component) { c.ProdID = "" }, "PRODID is required"},
		{"unknown kind", func(_ *ical.Calendar, x *ical.Component) { x.Kind = "VJOURNAL" }, "unknown kind"},
		{"no UID", func(_ *ical.Calendar, x *ical.Component) { x.UID = "" }, "UID is required"},
		{"no DTSTAMP", func(_ *ical.Calendar, x *ical.Component) { x.Stamp = time.Time{} }, "DTSTAMP is required"},
		{"event without start", func(_ *ical.Calendar, x *ical.Component) { x.Kind = ical.Event }, "needs DTSTART"},
		{"rrule without start", func(_ *ical.Calendar, x *ical.Component) { x.RRule = "FREQ=DAILY" }, "RRULE needs DTSTART"},
		{"rrule with a line break", func(_ *ical.Calendar, x *ical.Component) {
			x.Start = &start
			x.RRule = "FREQ=DAILY\r\nX:1"
		}, "one value"},
		{"due not after start", func(_ *ical.Calendar, x *ical.Component) { x.Start, x.Due = &start, &start }, "DUE must be after DTSTART"},
		{"priority 10", func(_ *ical.Calendar, x *ical.Component) { x.Priority = 10 }, "PRIORITY"},
		{"negative duration", func(_ *ical.Calendar, x *ical.Component) { x.Duration = -time.Second }, "DURATION"},
	}
	for _, tc := range tests {
		c := ical.Calendar{ProdID: "-//x//EN"}
		comp := ok
		tc.mutate(&c, &comp)
		c.Components = []ical.Component{comp}
		var b bytes.Buffer
		err := ical.Encode(&b, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Encode = %v, want an error with %q", tc.name, err, tc.want)
		}
		if b.Len() != 0 {
			t.Errorf("%s: wrote %d bytes of an invalid calendar", tc.name, b.Len())
		}
	}
}
