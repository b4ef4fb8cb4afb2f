// Package recurrence owns the recurring-template rules: parsing and strictly validating
// an RFC 5545 RRULE (with github.com/teambition/rrule-go computing the occurrences),
// the next occurrence after a given time, and a readable rrule_text. It is pure: the
// rule's DTSTART (the template's creation time) is passed in.
//
// Supported: FREQ=DAILY|WEEKLY|MONTHLY|YEARLY with INTERVAL, COUNT or UNTIL, BYDAY,
// BYMONTHDAY, BYMONTH, BYHOUR, BYMINUTE and WKST. Refused, with a VALIDATION_ERROR on
// field "rrule" that says why:
//   - FREQ=HOURLY/MINUTELY/SECONDLY: a template makes a task per occurrence, and a task
//     due every hour is a reminder, not a task; they also make the search for the next
//     occurrence (which starts at DTSTART) grow without bound.
//   - BYSETPOS, BYYEARDAY, BYWEEKNO, BYSECOND: no template needs them, and each can
//     describe a rule that never occurs, which rrule-go only discovers after iterating
//     to the year 9999.
//   - DTSTART (or any other property): the server sets it to the creation time.
//   - COUNT together with UNTIL (RFC 5545 forbids it), out-of-range values, repeated
//     parts, ordinal BYDAY (1MO, -1FR) outside MONTHLY/YEARLY, BYMONTHDAY with DAILY or
//     WEEKLY (RFC 5545 forbids the latter), and any rule that has no occurrence after its
//     start (FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30, or an UNTIL before the first one).
//
// Occurrences are computed up to about 290 years after DTSTART (rrule-go's horizon for
// a rule without UNTIL); a rule whose first occurrence lies beyond is refused like one
// that never occurs.
//
// All times are UTC; UNTIL is either a UTC date-time (…Z) or a date, meaning the end of
// that UTC day.
package recurrence

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/teambition/rrule-go"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Bounds of a rule, so no rule costs more than a few milliseconds to evaluate.
const (
	MaxRuleLength  = 512  // characters of the RRULE value
	MaxInterval    = 365  // INTERVAL 1..365 (every 365 days, weeks, months or years)
	MaxCount       = 1000 // COUNT 1..1000 instances
	MaxTimesPerDay = 24   // occurrences a day may have (BYHOUR × BYMINUTE values)
	maxOrdinalWeek = 53   // BYDAY=53MO in a year
	maxOrdinalMon  = 5    // BYDAY=5MO in a month
)

// Field is the request field that errors of this package name.
const Field = "rrule"

// Frequency of a rule.
type Frequency string

// Supported frequencies.
const (
	Daily   Frequency = "DAILY"
	Weekly  Frequency = "WEEKLY"
	Monthly Frequency = "MONTHLY"
	Yearly  Frequency = "YEARLY"
)

var freqs = map[Frequency]rrule.Frequency{Daily: rrule.DAILY, Weekly: rrule.WEEKLY, Monthly: rrule.MONTHLY, Yearly: rrule.YEARLY}

// Weekday is a BYDAY entry: a day of the week and, in MONTHLY and YEARLY rules, its
// ordinal within the month or year (N 0: every such day; 1: the first; -1: the last).
type Weekday struct {
	Day time.Weekday
	N   int
}

var dayCodes = []string{"SU", "MO", "TU", "WE", "TH", "FR", "SA"} // index = time.Weekday

// Rule is a parsed and validated recurrence rule with its DTSTART.
type Rule struct {
	Freq       Frequency
	Interval   int        // ≥ 1
	Count      int        // 0: no COUNT
	Until      *time.Time // nil: no UNTIL; inclusive
	ByDay      []Weekday
	ByMonthDay []int
	ByMonth    []int
	ByHour     []int
	ByMinute   []int
	WeekStart  time.Weekday

	dtstart time.Time
	rr      *rrule.RRule
}

func invalid(format string, args ...any) error {
	return apperr.Invalid(apperr.Field(Field, fmt.Sprintf(format, args...)))
}

// Parse validates s (an RRULE value such as "FREQ=WEEKLY;BYDAY=MO,WE,FR", with or without
// the "RRULE:" prefix, case-insensitive) against the rules of the package comment, with
// dtstart (truncated to the second, in UTC) as its start. Every failure is a
// VALIDATION_ERROR with one detail on field "rrule".
func Parse(s string, dtstart time.Time) (Rule, error) {
	s = strings.TrimSpace(s)
	if len(s) > 6 && strings.EqualFold(s[:6], "RRULE:") {
		s = s[6:]
	}
	if s == "" {
		return Rule{}, invalid("must not be empty")
	}
	if len(s) > MaxRuleLength {
		return Rule{}, invalid("must be at most %d characters", MaxRuleLength)
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("=;,+-", c)) {
			return Rule{}, invalid("must be one RRULE value like FREQ=WEEKLY;BYDAY=MO (found %q)", c)
		}
	}
	r := Rule{Interval: 1, WeekStart: time.Monday, dtstart: dtstart.UTC().Truncate(time.Second)}
	seen := map[string]bool{}
	for _, part := range strings.Split(strings.ToUpper(s), ";") {
		key, value, ok := strings.Cut(part, "=")
		if !ok || key == "" || value == "" {
			return Rule{}, invalid("%q is not a NAME=VALUE rule part", part)
		}
		if seen[key] {
			return Rule{}, invalid("%s is given twice", key)
		}
		seen[key] = true
		if err := r.set(key, value); err != nil {
			return Rule{}, err
		}
	}
	if r.Freq == "" {
		return Rule{}, invalid("FREQ is required")
	}
	if err := r.check(); err != nil {
		return Rule{}, err
	}
	rr, err := r.build()
	if err != nil {
		return Rule{}, invalid("%s: %v", r.String(), err)
	}
	r.rr = rr
	if !r.satisfiable() {
		return Rule{}, invalid("%s never occurs", r.String())
	}
	if _, ok := r.Next(r.dtstart.Add(-time.Second)); !ok {
		return Rule{}, invalid("%s has no occurrence after its start (%s)", r.String(), r.dtstart.Format(time.RFC3339))
	}
	return r, nil
}

func (r *Rule) set(key, value string) error {
	var err error
	switch key {
	case "FREQ":
		f := Frequency(value)
		if _, ok := freqs[f]; !ok {
			switch value {
			case "HOURLY", "MINUTELY", "SECONDLY":
				return invalid("FREQ=%s is not supported; use DAILY, WEEKLY, MONTHLY or YEARLY", value)
			}
			return invalid("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
		}
		r.Freq = f
	case "INTERVAL":
		r.Interval, err = intIn(key, value, 1, MaxInterval)
	case "COUNT":
		r.Count, err = intIn(key, value, 1, MaxCount)
	case "UNTIL":
		var u time.Time
		u, err = parseUntil(value)
		r.Until = &u
	case "BYDAY":
		r.ByDay, err = weekdays(value)
	case "BYMONTHDAY":
		r.ByMonthDay, err = intList(key, value, 1, 31, true)
	case "BYMONTH":
		r.ByMonth, err = intList(key, value, 1, 12, false)
	case "BYHOUR":
		r.ByHour, err = intList(key, value, 0, 23, false)
	case "BYMINUTE":
		r.ByMinute, err = intList(key, value, 0, 59, false)
	case "WKST":
		var w []Weekday
		if w, err = weekdays(value); err == nil && (len(w) != 1 || w[0].N != 0) {
			err = invalid("WKST must be one day: MO, TU, WE, TH, FR, SA or SU")
		}
		if err == nil {
			r.WeekStart = w[0].Day
		}
	case "BYSETPOS", "BYYEARDAY", "BYWEEKNO", "BYSECOND":
		return invalid("%s is not supported", key)
	case "DTSTART":
		return invalid("DTSTART is not accepted: a template's rule starts when the template is created")
	default:
		return invalid("%s is not an RRULE part", key)
	}
	return err
}

func intIn(key, value string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(value)
	if err != nil || n < lo || n > hi || value[0] == '+' {
		return 0, invalid("%s must be a whole number from %d to %d", key, lo, hi)
	}
	return n, nil
}

// intList parses a comma-separated list; signed allows -hi..-lo too (BYMONTHDAY=-1 is
// the last day of the month).
func intList(key, value string, lo, hi int, signed bool) ([]int, error) {
	var out []int
	for _, v := range strings.Split(value, ",") {
		n, err := strconv.Atoi(v)
		ok := err == nil && v != "" && (n >= lo && n <= hi || signed && n <= -lo && n >= -hi)
		if !ok {
			if signed {
				return nil, invalid("%s values must be from %d to %d or from %d to %d", key, lo, hi, -hi, -lo)
			}
			return nil, invalid("%s values must be from %d to %d", key, lo, hi)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func weekdays(value string) ([]Weekday, error) {
	var out []Weekday
	for _, v := range strings.Split(value, ",") {
		if len(v) < 2 {
			return nil, invalid("%q is not a day like MO, 1MO or -1FR", v)
		}
		d := slices.Index(dayCodes, v[len(v)-2:])
		if d < 0 {
			return nil, invalid("%q is not a day like MO, 1MO or -1FR", v)
		}
		w := Weekday{Day: time.Weekday(d)}
		if num := v[:len(v)-2]; num != "" {
			n, err := strconv.Atoi(num)
			if err != nil || n == 0 || n > maxOrdinalWeek || n < -maxOrdinalWeek {
				return nil, invalid("%q: the ordinal must be from 1 to %d or from -%d to -1", v, maxOrdinalWeek, maxOrdinalWeek)
			}
			w.N = n
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out, nil
}

// parseUntil accepts a UTC date-time (20270131T090000Z) or a date (20270131), which
// means through the end of that UTC day. A floating local time (no Z) is refused: it
// would depend on a time zone the rule does not carry.
func parseUntil(v string) (time.Time, error) {
	if t, err := time.Parse("20060102T150405Z", v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("20060102", v); err == nil {
		return t.Add(24*time.Hour - time.Second), nil
	}
	return time.Time{}, invalid("UNTIL must be a UTC date-time like 20270131T090000Z or a date like 20270131")
}

// check is the combinations the package refuses.
func (r *Rule) check() error {
	if r.Count > 0 && r.Until != nil {
		return invalid("COUNT and UNTIL must not both be given")
	}
	if r.Until != nil && r.Until.Before(r.dtstart) {
		return invalid("UNTIL %s is before the rule's start %s", r.Until.Format(time.RFC3339), r.dtstart.Format(time.RFC3339))
	}
	if len(r.ByMonthDay) > 0 && (r.Freq == Daily || r.Freq == Weekly) {
		return invalid("BYMONTHDAY needs FREQ=MONTHLY or YEARLY")
	}
	for _, w := range r.ByDay {
		if w.N == 0 {
			continue
		}
		switch {
		case r.Freq == Daily || r.Freq == Weekly:
			return invalid("a numbered BYDAY like %s needs FREQ=MONTHLY or YEARLY", w)
		case (r.Freq == Monthly || len(r.ByMonth) > 0) && (w.N > maxOrdinalMon || w.N < -maxOrdinalMon):
			return invalid("%s: a month has at most %d of each weekday", w, maxOrdinalMon)
		}
	}
	if n := max(len(r.ByHour), 1) * max(len(r.ByMinute), 1); n > MaxTimesPerDay {
		return invalid("BYHOUR and BYMINUTE make %d times a day; at most %d", n, MaxTimesPerDay)
	}
	return nil
}

// String is w as an RRULE BYDAY value (MO, 1MO, -1FR).
func (w Weekday) String() string {
	if w.N == 0 {
		return dayCodes[w.Day]
	}
	return strconv.Itoa(w.N) + dayCodes[w.Day]
}

// String is the rule in canonical form (upper case, parts in a fixed order, INTERVAL and
// WKST only when not the default, UNTIL as a UTC date-time), without DTSTART: what a
// template stores and what the calendar feed carries.
func (r Rule) String() string {
	parts := []string{"FREQ=" + string(r.Freq)}
	if r.Interval > 1 {
		parts = append(parts, "INTERVAL="+strconv.Itoa(r.Interval))
	}
	if r.Count > 0 {
		parts = append(parts, "COUNT="+strconv.Itoa(r.Count))
	}
	if r.Until != nil {
		parts = append(parts, "UNTIL="+r.Until.UTC().Format("20060102T150405Z"))
	}
	ints := func(key string, v []int) {
		if len(v) == 0 {
			return
		}
		s := make([]string, len(v))
		for i, n := range v {
			s[i] = strconv.Itoa(n)
		}
		parts = append(parts, key+"="+strings.Join(s, ","))
	}
	ints("BYMONTH", r.ByMonth)
	ints("BYMONTHDAY", r.ByMonthDay)
	if len(r.ByDay) > 0 {
		s := make([]string, len(r.ByDay))
		for i, w := range r.ByDay {
			s[i] = w.String()
		}
		parts = append(parts, "BYDAY="+strings.Join(s, ","))
	}
	ints("BYHOUR", r.ByHour)
	ints("BYMINUTE", r.ByMinute)
	if r.WeekStart != time.Monday {
		parts = append(parts, "WKST="+dayCodes[r.WeekStart])
	}
	return strings.Join(parts, ";")
}

// DTStart is the rule's start (UTC, whole seconds).
func (r Rule) DTStart() time.Time { return r.dtstart }

// Next is the first occurrence strictly after after, and false when there is none left
// (COUNT or UNTIL exhausted) or r is the zero Rule.
func (r Rule) Next(after time.Time) (time.Time, bool) {
	if r.rr == nil {
		return time.Time{}, false
	}
	t := r.rr.After(after.UTC(), false)
	if t.IsZero() {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// rruleWeekday maps a time.Weekday (Sunday 0) to rrule-go's (Monday 0).
func rruleWeekday(w Weekday) rrule.Weekday {
	days := []rrule.Weekday{rrule.SU, rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA}
	d := days[w.Day]
	if w.N != 0 {
		return d.Nth(w.N)
	}
	return d
}

// build hands the checked rule to rrule-go; its own bounds check cannot fail after check,
// but its error is passed on rather than trusted away.
func (r Rule) build() (*rrule.RRule, error) {
	opt := rrule.ROption{
		Freq: freqs[r.Freq], Dtstart: r.dtstart, Interval: r.Interval, Count: r.Count,
		Bymonth: r.ByMonth, Bymonthday: r.ByMonthDay, Byhour: r.ByHour, Byminute: r.ByMinute,
		Wkst: rruleWeekday(Weekday{Day: r.WeekStart}),
	}
	if r.Until != nil {
		opt.Until = *r.Until
	}
	for _, w := range r.ByDay {
		opt.Byweekday = append(opt.Byweekday, rruleWeekday(w))
	}
	return rrule.NewRRule(opt)
}
