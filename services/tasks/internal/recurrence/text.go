package recurrence

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

var (
	unitNames = map[Frequency]string{Daily: "day", Weekly: "week", Monthly: "month", Yearly: "year"}
	adverbs   = map[Frequency]string{Daily: "daily", Weekly: "weekly", Monthly: "monthly", Yearly: "yearly"}
	ordinals  = []string{"", "first", "second", "third", "fourth", "fifth"}
)

// Text is r as an English phrase for rrule_text, e.g. "weekly on Monday, Wednesday and
// Friday", "every 2 days", "monthly on day 15, 10 times", "daily until 2027-01-31",
// "monthly on the last Friday", "yearly in March on day 1 at 09:00". Times are UTC.
func Text(r Rule) string {
	if r.Freq == "" {
		return ""
	}
	var b strings.Builder
	if r.Interval > 1 {
		fmt.Fprintf(&b, "every %d %ss", r.Interval, unitNames[r.Freq])
	} else {
		b.WriteString(adverbs[r.Freq])
	}
	if len(r.ByMonth) > 0 {
		names := make([]string, len(r.ByMonth))
		for i, m := range r.ByMonth {
			names[i] = time.Month(m).String()
		}
		b.WriteString(" in " + list(names))
	}
	if len(r.ByMonthDay) > 0 {
		b.WriteString(" on " + monthDays(r.ByMonthDay))
	}
	if len(r.ByDay) > 0 {
		names := make([]string, len(r.ByDay))
		for i, w := range r.ByDay {
			names[i] = weekdayText(w, r.Freq == Monthly || len(r.ByMonth) > 0)
		}
		if len(r.ByMonthDay) > 0 {
			// Both parts must match: "monthly on day 13 if it is a Friday".
			for i, w := range r.ByDay {
				if w.N == 0 {
					names[i] = "a " + names[i]
				}
			}
			b.WriteString(" if it is " + orList(names))
		} else {
			b.WriteString(" on " + list(names))
		}
	}
	if len(r.ByHour) > 0 || len(r.ByMinute) > 0 {
		hours, minutes := r.ByHour, r.ByMinute
		if len(hours) == 0 {
			hours = []int{r.dtstart.Hour()}
		}
		if len(minutes) == 0 {
			minutes = []int{r.dtstart.Minute()}
		}
		var times []string
		for _, h := range hours {
			for _, m := range minutes {
				times = append(times, fmt.Sprintf("%02d:%02d", h, m))
			}
		}
		b.WriteString(" at " + list(times) + " UTC")
	}
	switch {
	case r.Count == 1:
		b.WriteString(", once")
	case r.Count > 1:
		fmt.Fprintf(&b, ", %d times", r.Count)
	case r.Until != nil:
		u := r.Until.UTC()
		if h, m, s := u.Clock(); h == 23 && m == 59 && s == 59 {
			b.WriteString(" until " + u.Format("2006-01-02"))
		} else {
			b.WriteString(" until " + u.Format("2006-01-02 15:04") + " UTC")
		}
	}
	return b.String()
}

func weekdayText(w Weekday, inMonth bool) string {
	name := w.Day.String()
	switch {
	case w.N == 0:
		return name
	case w.N == -1:
		return "the last " + name
	case w.N > 0 && w.N < len(ordinals):
		return "the " + ordinals[w.N] + " " + name
	case w.N > 0:
		return "the " + nth(w.N) + " " + name + " of the year"
	case -w.N < len(ordinals) && inMonth:
		return "the " + ordinals[-w.N] + " to last " + name
	default:
		return "the " + nth(-w.N) + " to last " + name
	}
}

func monthDays(days []int) string {
	var pos []string
	var neg []string
	for _, d := range days {
		switch {
		case d > 0:
			pos = append(pos, strconv.Itoa(d))
		case d == -1:
			neg = append(neg, "the last day")
		default:
			neg = append(neg, "the "+nth(-d)+" to last day")
		}
	}
	var parts []string
	switch len(pos) {
	case 0:
	case 1:
		parts = append(parts, "day "+pos[0])
	default:
		parts = append(parts, "days "+list(pos))
	}
	parts = append(parts, neg...)
	return list(parts)
}

// nth is 2nd, 3rd, 11th, 21st.
func nth(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// orList joins "a", "a or b", "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return list(items)
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// list joins "a", "a and b", "a, b and c".
func list(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
