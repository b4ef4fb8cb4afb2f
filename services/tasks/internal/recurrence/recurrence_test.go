package recurrence_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"

	"github.com/perpetua-flow/backend/services/tasks/internal/recurrence"
)

func utc(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

// occurrences is the first n occurrences strictly after from.
func occurrences(r recurrence.Rule, from time.Time, n int) []time.Time {
	var out []time.Time
	t := from
	for range n {
		next, ok := r.Next(t)
		if !ok {
			break
		}
		out = append(out, next)
		t = next
	}
	return out
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	// Thursday 26 November 2026, 13:18:13.5 UTC: the sub-second part is dropped.
	created := time.Date(2026, 11, 26, 13, 18, 13, 500_000_000, time.UTC)
	at := func(y int, m time.Month, d int) time.Time { return utc(y, m, d, 13, 18, 13) }
	tests := []struct {
		name      string
		rrule     string
		canonical string
		text      string
		want      []time.Time // the occurrences after creation (all of them when fewer than 6)
	}{
		{"daily", "FREQ=DAILY", "FREQ=DAILY", "daily",
			[]time.Time{at(2026, 11, 27), at(2026, 11, 28), at(2026, 11, 29), at(2026, 11, 30), at(2026, 12, 1), at(2026, 12, 2)}},
		{"every 2 days, lower case with prefix", "rrule:freq=daily;interval=2", "FREQ=DAILY;INTERVAL=2", "every 2 days",
			[]time.Time{at(2026, 11, 28), at(2026, 11, 30), at(2026, 12, 2), at(2026, 12, 4), at(2026, 12, 6), at(2026, 12, 8)}},
		{"weekly BYDAY", "FREQ=WEEKLY;BYDAY=MO,WE,FR", "FREQ=WEEKLY;BYDAY=MO,WE,FR", "weekly on Monday, Wednesday and Friday",
			[]time.Time{at(2026, 11, 27), at(2026, 11, 30), at(2026, 12, 2), at(2026, 12, 4), at(2026, 12, 7), at(2026, 12, 9)}},
		{"weekly defaults to the start's weekday", "FREQ=WEEKLY", "FREQ=WEEKLY", "weekly",
			[]time.Time{at(2026, 12, 3), at(2026, 12, 10), at(2026, 12, 17), at(2026, 12, 24), at(2026, 12, 31), at(2027, 1, 7)}},
		{"every 2 weeks on Tuesday and Thursday, weeks from Sunday", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;WKST=SU",
			"FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;WKST=SU", "every 2 weeks on Tuesday and Thursday",
			[]time.Time{at(2026, 12, 8), at(2026, 12, 10), at(2026, 12, 22), at(2026, 12, 24), at(2027, 1, 5), at(2027, 1, 7)}},
		{"monthly on day 15, 10 times", "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=10", "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=15", "monthly on day 15, 10 times",
			[]time.Time{at(2026, 12, 15), at(2027, 1, 15), at(2027, 2, 15), at(2027, 3, 15), at(2027, 4, 15), at(2027, 5, 15)}},
		{"monthly on the 31st skips short months", "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=MONTHLY;BYMONTHDAY=31", "monthly on day 31",
			[]time.Time{at(2026, 12, 31), at(2027, 1, 31), at(2027, 3, 31), at(2027, 5, 31), at(2027, 7, 31), at(2027, 8, 31)}},
		{"last day of the month across February", "FREQ=MONTHLY;BYMONTHDAY=-1", "FREQ=MONTHLY;BYMONTHDAY=-1", "monthly on the last day",
			[]time.Time{at(2026, 11, 30), at(2026, 12, 31), at(2027, 1, 31), at(2027, 2, 28), at(2027, 3, 31), at(2027, 4, 30)}},
		{"two month days", "FREQ=MONTHLY;BYMONTHDAY=1,15", "FREQ=MONTHLY;BYMONTHDAY=1,15", "monthly on days 1 and 15",
			[]time.Time{at(2026, 12, 1), at(2026, 12, 15), at(2027, 1, 1), at(2027, 1, 15), at(2027, 2, 1), at(2027, 2, 15)}},
		{"friday the 13th", "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR", "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR", "monthly on day 13 if it is a Friday",
			[]time.Time{at(2027, 8, 13), at(2028, 10, 13), at(2029, 4, 13), at(2029, 7, 13), at(2030, 9, 13), at(2030, 12, 13)}},
		{"last Friday of the month", "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=MONTHLY;BYDAY=-1FR", "monthly on the last Friday",
			[]time.Time{at(2026, 11, 27), at(2026, 12, 25), at(2027, 1, 29), at(2027, 2, 26), at(2027, 3, 26), at(2027, 4, 30)}},
		{"first Monday, every 3 months", "FREQ=MONTHLY;INTERVAL=3;BYDAY=+1MO", "FREQ=MONTHLY;INTERVAL=3;BYDAY=1MO", "every 3 months on the first Monday",
			[]time.Time{at(2027, 2, 1), at(2027, 5, 3), at(2027, 8, 2), at(2027, 11, 1), at(2028, 2, 7), at(2028, 5, 1)}},
		{"yearly defaults to the start's date", "FREQ=YEARLY", "FREQ=YEARLY", "yearly",
			[]time.Time{at(2027, 11, 26), at(2028, 11, 26), at(2029, 11, 26), at(2030, 11, 26), at(2031, 11, 26), at(2032, 11, 26)}},
		{"yearly on the 29th of February", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "yearly in February on day 29",
			[]time.Time{at(2028, 2, 29), at(2032, 2, 29), at(2036, 2, 29), at(2040, 2, 29), at(2044, 2, 29), at(2048, 2, 29)}},
		{"daily at fixed times", "FREQ=DAILY;BYHOUR=9,17;BYMINUTE=30;COUNT=3", "FREQ=DAILY;COUNT=3;BYHOUR=9,17;BYMINUTE=30", "daily at 09:30 and 17:30 UTC, 3 times",
			[]time.Time{utc(2026, 11, 26, 17, 30, 13), utc(2026, 11, 27, 9, 30, 13), utc(2026, 11, 27, 17, 30, 13)}},
		{"daily until a date, inclusive", "FREQ=DAILY;UNTIL=20261129", "FREQ=DAILY;UNTIL=20261129T235959Z", "daily until 2026-11-29",
			[]time.Time{at(2026, 11, 27), at(2026, 11, 28), at(2026, 11, 29)}},
		{"until a date-time", "FREQ=WEEKLY;BYDAY=FR;UNTIL=20261211T131813Z", "FREQ=WEEKLY;UNTIL=20261211T131813Z;BYDAY=FR", "weekly on Friday until 2026-12-11 13:18 UTC",
			[]time.Time{at(2026, 11, 27), at(2026, 12, 4), at(2026, 12, 11)}},
		{"weekdays in December, across the year end", "FREQ=DAILY;BYMONTH=12;BYDAY=MO,TU,WE,TH,FR", "FREQ=DAILY;BYMONTH=12;BYDAY=MO,TU,WE,TH,FR",
			"daily in December on Monday, Tuesday, Wednesday, Thursday and Friday",
			[]time.Time{at(2026, 12, 1), at(2026, 12, 2), at(2026, 12, 3), at(2026, 12, 4), at(2026, 12, 7), at(2026, 12, 8)}},
		{"once", "FREQ=DAILY;COUNT=1", "FREQ=DAILY;COUNT=1", "daily, once", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := recurrence.Parse(tc.rrule, created)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.rrule, err)
			}
			if got := r.String(); got != tc.canonical {
				t.Errorf("String = %q, want %q", got, tc.canonical)
			}
			if got := recurrence.Text(r); got != tc.text {
				t.Errorf("Text = %q, want %q", got, tc.text)
			}
			if got := occurrences(r, created, 6); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("occurrences\n got %v\nwant %v", got, tc.want)
			}
			// The canonical form parses to the same rule.
			again, err := recurrence.Parse(r.String(), created)
			if err != nil || again.String() != r.String() {
				t.Errorf("canonical form %q does not round-trip: %v %q", r.String(), err, again.String())
			}
		})
	}
}

// TestCountAndUntilExhaust: COUNT counts from DTSTART (an occurrence at the start itself
// counts), and Next says false once the rule is used up.
func TestCountAndUntilExhaust(t *testing.T) {
	t.Parallel()
	start := utc(2027, 1, 31, 8, 0, 0)
	tests := []struct {
		name  string
		rrule string
		want  []time.Time
	}{
		{"COUNT includes the start", "FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=3", []time.Time{utc(2027, 2, 28, 8, 0, 0), utc(2027, 3, 31, 8, 0, 0)}},
		{"UNTIL at an occurrence includes it", "FREQ=DAILY;UNTIL=20270202T080000Z", []time.Time{utc(2027, 2, 1, 8, 0, 0), utc(2027, 2, 2, 8, 0, 0)}},
		{"UNTIL a second earlier excludes it", "FREQ=DAILY;UNTIL=20270202T075959Z", []time.Time{utc(2027, 2, 1, 8, 0, 0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := recurrence.Parse(tc.rrule, start)
			if err != nil {
				t.Fatal(err)
			}
			got := occurrences(r, start, 10)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("occurrences %v, want %v", got, tc.want)
			}
			if _, ok := r.Next(got[len(got)-1]); ok {
				t.Fatalf("Next after the last occurrence says there is one")
			}
		})
	}
	if _, ok := (recurrence.Rule{}).Next(start); ok {
		t.Fatal("the zero Rule has an occurrence")
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	start := utc(2026, 11, 26, 13, 0, 0)
	tests := []struct {
		name, rrule, message string
	}{
		{"empty", "  ", "must not be empty"},
		{"too long", "FREQ=DAILY;BYHOUR=" + strings.Repeat("1,", 300) + "1", "at most 512 characters"},
		{"no FREQ", "INTERVAL=2", "FREQ is required"},
		{"unknown FREQ", "FREQ=FORTNIGHTLY", "FREQ must be DAILY"},
		{"hourly", "FREQ=HOURLY", "FREQ=HOURLY is not supported"},
		{"minutely", "FREQ=MINUTELY", "FREQ=MINUTELY is not supported"},
		{"secondly", "FREQ=SECONDLY", "FREQ=SECONDLY is not supported"},
		{"a second line", "FREQ=DAILY\nRRULE:FREQ=WEEKLY", "must be one RRULE value"},
		{"DTSTART in the value", "DTSTART=20260101T000000Z;FREQ=DAILY", "DTSTART is not accepted"},
		{"DTSTART property", "DTSTART:20260101T000000Z", "must be one RRULE value"},
		{"unknown part", "FREQ=DAILY;FOO=1", "FOO is not an RRULE part"},
		{"BYSETPOS", "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=-1", "BYSETPOS is not supported"},
		{"BYYEARDAY", "FREQ=YEARLY;BYYEARDAY=100", "BYYEARDAY is not supported"},
		{"BYWEEKNO", "FREQ=YEARLY;BYWEEKNO=20", "BYWEEKNO is not supported"},
		{"BYSECOND", "FREQ=DAILY;BYSECOND=5", "BYSECOND is not supported"},
		{"repeated part", "FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"},
		{"no value", "FREQ=DAILY;INTERVAL=", "not a NAME=VALUE"},
		{"trailing semicolon", "FREQ=DAILY;", "not a NAME=VALUE"},
		{"INTERVAL 0", "FREQ=DAILY;INTERVAL=0", "INTERVAL must be a whole number from 1 to 365"},
		{"INTERVAL too big", "FREQ=DAILY;INTERVAL=366", "INTERVAL must be a whole number from 1 to 365"},
		{"INTERVAL not a number", "FREQ=DAILY;INTERVAL=two", "INTERVAL must be"},
		{"COUNT 0", "FREQ=DAILY;COUNT=0", "COUNT must be a whole number from 1 to 1000"},
		{"COUNT too big", "FREQ=DAILY;COUNT=1001", "COUNT must be a whole number from 1 to 1000"},
		{"COUNT and UNTIL", "FREQ=DAILY;COUNT=2;UNTIL=20270101", "COUNT and UNTIL must not both be given"},
		{"UNTIL floating", "FREQ=DAILY;UNTIL=20270101T000000", "UNTIL must be a UTC date-time"},
		{"UNTIL garbage", "FREQ=DAILY;UNTIL=tomorrow", "UNTIL must be a UTC date-time"},
		{"UNTIL before the start", "FREQ=DAILY;UNTIL=20260101", "is before the rule's start"},
		{"UNTIL before the first occurrence", "FREQ=WEEKLY;BYDAY=MO;UNTIL=20261129", "has no occurrence after its start"},
		{"BYDAY unknown day", "FREQ=WEEKLY;BYDAY=XX", `"XX" is not a day`},
		{"BYDAY ordinal 0", "FREQ=MONTHLY;BYDAY=0MO", "the ordinal must be"},
		{"BYDAY ordinal too big", "FREQ=YEARLY;BYDAY=54MO", "the ordinal must be"},
		{"BYDAY ordinal in WEEKLY", "FREQ=WEEKLY;BYDAY=1MO", "needs FREQ=MONTHLY or YEARLY"},
		{"BYDAY ordinal in DAILY", "FREQ=DAILY;BYDAY=-1FR", "needs FREQ=MONTHLY or YEARLY"},
		{"sixth Monday of a month", "FREQ=MONTHLY;BYDAY=6MO", "a month has at most 5"},
		{"sixth Monday of March", "FREQ=YEARLY;BYMONTH=3;BYDAY=6MO", "a month has at most 5"},
		{"BYMONTHDAY 0", "FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY values must be from 1 to 31 or from -31 to -1"},
		{"BYMONTHDAY 32", "FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY values must be"},
		{"BYMONTHDAY in WEEKLY", "FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY needs FREQ=MONTHLY or YEARLY"},
		{"BYMONTHDAY in DAILY", "FREQ=DAILY;BYMONTHDAY=1", "BYMONTHDAY needs FREQ=MONTHLY or YEARLY"},
		{"BYMONTH 13", "FREQ=YEARLY;BYMONTH=13", "BYMONTH values must be from 1 to 12"},
		{"BYHOUR 24", "FREQ=DAILY;BYHOUR=24", "BYHOUR values must be from 0 to 23"},
		{"BYMINUTE 60", "FREQ=DAILY;BYMINUTE=60", "BYMINUTE values must be from 0 to 59"},
		{"too many times a day", "FREQ=DAILY;BYHOUR=8,9,10,11,12;BYMINUTE=0,10,20,30,40", "make 25 times a day"},
		{"WKST two days", "FREQ=WEEKLY;WKST=MO,TU", "WKST must be one day"},
		{"February 30th", "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30", "never occurs"},
		{"April 31st", "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31", "never occurs"},
		{"every 7 days, never a Monday", "FREQ=DAILY;INTERVAL=7;BYDAY=MO", "never occurs"},
		{"every 4 years from a common year, never the 29th", "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", "never occurs"},
		{"every 12 months from November, never in March", "FREQ=MONTHLY;INTERVAL=12;BYMONTH=3", "never occurs"},
		{"every 48 months from November, never in February", "FREQ=MONTHLY;INTERVAL=48;BYMONTH=2;BYDAY=5MO", "never occurs"},
		{"every 24 years from 2026 never reaches a leap year", "FREQ=YEARLY;INTERVAL=24;BYMONTH=2;BYMONTHDAY=29", "never occurs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := recurrence.Parse(tc.rrule, start)
			var e *apperr.Error
			if !errors.As(err, &e) || e.Code != apperr.Validation || len(e.Details) != 1 || e.Details[0].Field != "rrule" {
				t.Fatalf("Parse(%q) = %v, want one VALIDATION_ERROR detail on rrule", tc.rrule, err)
			}
			if !strings.Contains(e.Details[0].Message, tc.message) {
				t.Fatalf("message %q does not contain %q", e.Details[0].Message, tc.message)
			}
		})
	}
}

// TestUnsatisfiableIsCheap: the rules rrule-go would search to the year 9999 are refused
// quickly. The bound is generous (the check takes a few milliseconds) so a slow CI
// machine does not flake, yet a regression to rrule-go's search (half a second for the
// DAILY rule) fails.
func TestUnsatisfiableIsRefused(t *testing.T) {
	t.Parallel()
	start := utc(2026, 11, 26, 13, 0, 0)
	// start is a Thursday: every 7 days never reaches a Monday.
	for _, s := range unsatisfiable {
		_, err := recurrence.Parse(s, start)
		e, ok := apperr.As(err)
		if !ok || len(e.Details) == 0 || !strings.Contains(e.Details[0].Message, "never occurs") {
			t.Fatalf("Parse(%q) = %v, want never occurs", s, err)
		}
	}
}

var unsatisfiable = []string{"FREQ=DAILY;INTERVAL=7;BYDAY=MO;BYMONTH=2", "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30"}

// BenchmarkParseUnsatisfiable shows a rule that never occurs is refused in milliseconds (about 6 ms each here),
// not the half second rrule-go spends searching to year 9999 (a benchmark,
// not a timed test: speed is measured, never asserted).
func BenchmarkParseUnsatisfiable(b *testing.B) {
	start := utc(2026, 11, 26, 13, 0, 0)
	for b.Loop() {
		for _, s := range unsatisfiable {
			_, _ = recurrence.Parse(s, start)
		}
	}
}

// TestScenario7 is API.md §10 scenario 7 on the rule: a template FREQ=WEEKLY;BYDAY=MO,WE,FR
// created on a Thursday has its first instance due at the first occurrence after its
// creation (Friday), and completing that instance makes the next one due at the
// following occurrence (Monday, across the month end), then Wednesday.
func TestScenario7(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 26, 13, 18, 13, 250_000, time.UTC) // Thursday
	r, err := recurrence.Parse("FREQ=WEEKLY;BYDAY=MO,WE,FR", created)
	if err != nil {
		t.Fatal(err)
	}
	first, ok := r.Next(created)
	if want := utc(2026, 11, 27, 13, 18, 13); !ok || !first.Equal(want) {
		t.Fatalf("first instance due %v, want %v", first, want)
	}
	second, ok := r.Next(first)
	if want := utc(2026, 11, 30, 13, 18, 13); !ok || !second.Equal(want) {
		t.Fatalf("after completing the first: due %v, want %v", second, want)
	}
	third, _ := r.Next(second)
	if want := utc(2026, 12, 2, 13, 18, 13); !third.Equal(want) {
		t.Fatalf("third due %v, want %v", third, want)
	}
	// Created on a Monday at the time of an occurrence: the start itself is not "after
	// creation", so the first instance is Wednesday.
	monday := utc(2026, 11, 30, 9, 0, 0)
	r, _ = recurrence.Parse("FREQ=WEEKLY;BYDAY=MO,WE,FR", monday)
	if got, _ := r.Next(monday); !got.Equal(utc(2026, 12, 2, 9, 0, 0)) {
		t.Fatalf("created on a Monday: first due %v", got)
	}
}
