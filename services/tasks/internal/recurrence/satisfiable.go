package recurrence

import (
	"slices"
	"time"
)

// gregorianCycle is 400 years: the Gregorian calendar, weekdays included, repeats
// exactly after 146097 days (20871 weeks), so a day pattern that matches no day in one
// cycle of visited periods matches none ever.
const (
	gregorianYears = 400
	gregorianDays  = 146097
	maxYear        = 9999 // rrule-go stops there
)

// satisfiable reports whether some day after DTSTART's day matches the rule's day
// filters within one Gregorian cycle of the periods the rule visits. rrule-go finds out
// that a rule never occurs only by iterating to the year 9999 (half a second for a DAILY
// rule), which a request must not be able to trigger; this check costs at most about
// 150,000 cheap day tests. Time-of-day parts (BYHOUR, BYMINUTE) always match some time
// of a matching day, so only days are tested.
func (r Rule) satisfiable() bool {
	f := r.dayFilter()
	start := r.dtstart
	first := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
	after := func(d time.Time) bool { return d.After(first) && d.Year() <= maxYear }
	switch r.Freq {
	case Daily:
		for k := 1; k <= gregorianDays; k++ {
			d := first.AddDate(0, 0, k*r.Interval)
			if d.Year() > maxYear {
				return false
			}
			if f.match(d) {
				return true
			}
		}
	case Weekly:
		back := (int(first.Weekday()) - int(r.WeekStart) + 7) % 7
		week := first.AddDate(0, 0, -back)
		for k := 0; k <= gregorianDays/7; k++ {
			ws := week.AddDate(0, 0, 7*k*r.Interval)
			if ws.Year() > maxYear {
				return false
			}
			for i := range 7 {
				if d := ws.AddDate(0, 0, i); after(d) && f.match(d) {
					return true
				}
			}
		}
	case Monthly:
		for k := 0; k <= 12*gregorianYears; k++ {
			m := time.Date(first.Year(), first.Month()+time.Month(k*r.Interval), 1, 0, 0, 0, 0, time.UTC)
			if m.Year() > maxYear {
				return false
			}
			for d := m; d.Month() == m.Month(); d = d.AddDate(0, 0, 1) {
				if after(d) && f.match(d) {
					return true
				}
			}
		}
	case Yearly:
		for k := 0; k <= gregorianYears; k++ {
			y := first.Year() + k*r.Interval
			if y > maxYear {
				return false
			}
			for d := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() == y; d = d.AddDate(0, 0, 1) {
				if after(d) && f.match(d) {
					return true
				}
			}
		}
	}
	return false
}

// dayFilter is the rule's day parts after RFC 5545's defaults: a WEEKLY rule without
// BYDAY occurs on DTSTART's weekday, a MONTHLY one without BYDAY/BYMONTHDAY on DTSTART's
// day of the month, a YEARLY one on DTSTART's month and day (rrule-go does the same).
type dayFilter struct {
	months    []int
	monthDays []int
	days      []Weekday
	// inMonth: ordinal BYDAY counts within the month (MONTHLY, or YEARLY with BYMONTH),
	// else within the year.
	inMonth bool
}

func (r Rule) dayFilter() dayFilter {
	f := dayFilter{months: r.ByMonth, monthDays: r.ByMonthDay, days: r.ByDay,
		inMonth: r.Freq == Monthly || len(r.ByMonth) > 0}
	if len(r.ByDay) == 0 && len(r.ByMonthDay) == 0 {
		switch r.Freq {
		case Weekly:
			f.days = []Weekday{{Day: r.dtstart.Weekday()}}
		case Monthly:
			f.monthDays = []int{r.dtstart.Day()}
		case Yearly:
			if len(f.months) == 0 {
				f.months = []int{int(r.dtstart.Month())}
			}
			f.monthDays = []int{r.dtstart.Day()}
		}
	}
	return f
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (f dayFilter) match(d time.Time) bool {
	if len(f.months) > 0 && !slices.Contains(f.months, int(d.Month())) {
		return false
	}
	if len(f.monthDays) > 0 {
		n := daysIn(d.Year(), d.Month())
		if !slices.Contains(f.monthDays, d.Day()) && !slices.Contains(f.monthDays, d.Day()-n-1) {
			return false
		}
	}
	if len(f.days) == 0 {
		return true
	}
	pos, n := d.Day(), daysIn(d.Year(), d.Month())
	if !f.inMonth {
		pos, n = d.YearDay(), time.Date(d.Year(), 12, 31, 0, 0, 0, 0, time.UTC).YearDay()
	}
	for _, w := range f.days {
		if w.Day != d.Weekday() {
			continue
		}
		if w.N == 0 || w.N > 0 && (pos-1)/7+1 == w.N || w.N < 0 && -((n-pos)/7+1) == w.N {
			return true
		}
	}
	return false
}
