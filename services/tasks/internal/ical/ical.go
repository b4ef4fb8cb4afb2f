// Package ical writes RFC 5545 iCalendar feeds: a VCALENDAR of VTODO or VEVENT
// components with TEXT escaping, UTC date-times and 75-octet line folding, which is all
// a read-only subscription feed needs (no parsing, no time zones: every time is UTC).
// It knows nothing of tasks; the caller maps its items onto Component.
package ical

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxLineOctets is RFC 5545 §3.1: lines are folded so none is longer than 75 octets,
// excluding the CRLF.
const maxLineOctets = 75

const dateTimeFormat = "20060102T150405Z"

// Kind is the component type.
type Kind string

// Kinds. VTODO carries completion (STATUS, COMPLETED, DUE); VEVENT is what most
// calendar apps (Google Calendar among them) show from a subscribed feed.
const (
	Todo  Kind = "VTODO"
	Event Kind = "VEVENT"
)

// Priorities of RFC 5545 §3.8.1.9 (0 undefined, 1 highest, 9 lowest); tasks map high,
// medium and low onto 1, 5 and 9, the values RFC 5545 names for the three-level scheme.
const (
	PriorityUndefined = 0
	PriorityHigh      = 1
	PriorityMedium    = 5
	PriorityLow       = 9
)

// Calendar is one feed.
type Calendar struct {
	ProdID string // required, e.g. "-//Perpetua Flow//Tasks//EN"
	Name   string // NAME (RFC 7986) and X-WR-CALNAME; optional
	// Refresh is how often subscribers should poll (REFRESH-INTERVAL, X-PUBLISHED-TTL);
	// 0 leaves it to the client.
	Refresh    time.Duration
	Components []Component
}

// Component is one VTODO or VEVENT. Times are written in UTC.
type Component struct {
	Kind         Kind
	UID          string    // required, globally unique and stable (e.g. "<task id>@perpetua")
	Stamp        time.Time // DTSTAMP, required: when the feed was generated
	Created      time.Time // CREATED; zero: omitted
	LastModified time.Time // LAST-MODIFIED; zero: omitted
	// Start is DTSTART; required for a VEVENT and with RRule (occurrences repeat it).
	Start *time.Time
	// Due is DUE of a VTODO; it must be after Start when both are given. Ignored for a
	// VEVENT (whose time is Start).
	Due *time.Time
	// Duration of a VEVENT (DURATION); 0: omitted (the event is a point in time).
	Duration    time.Duration
	Summary     string
	Description string
	// Completed is when a VTODO was completed (STATUS:COMPLETED, COMPLETED,
	// PERCENT-COMPLETE:100); nil: STATUS:NEEDS-ACTION. A VEVENT has no completion
	// status in RFC 5545, so it is only CONFIRMED.
	Completed *time.Time
	Priority  int    // 0..9, see PriorityHigh etc.
	RRule     string // an RRULE value without the "RRULE:" prefix; "" for none
}

// Validate reports the first thing that would make c an invalid iCalendar object.
func (c Calendar) Validate() error {
	if c.ProdID == "" {
		return errors.New("ical: PRODID is required")
	}
	for i, comp := range c.Components {
		if err := comp.validate(); err != nil {
			return fmt.Errorf("ical: component %d (%s): %w", i, comp.UID, err)
		}
	}
	return nil
}

func (c Component) validate() error {
	switch {
	case c.Kind != Todo && c.Kind != Event:
		return fmt.Errorf("unknown kind %q", c.Kind)
	case c.UID == "":
		return errors.New("UID is required")
	case c.Stamp.IsZero():
		return errors.New("DTSTAMP is required")
	case c.Kind == Event && c.Start == nil:
		return errors.New("a VEVENT needs DTSTART")
	case c.RRule != "" && c.Start == nil:
		return errors.New("RRULE needs DTSTART")
	case strings.ContainsAny(c.RRule, "\r\n:"):
		return errors.New("RRULE must be one value without a prefix")
	case c.Kind == Todo && c.Start != nil && c.Due != nil && !c.Due.After(*c.Start):
		return errors.New("DUE must be after DTSTART")
	case c.Priority < 0 || c.Priority > 9:
		return errors.New("PRIORITY must be 0..9")
	case c.Duration < 0:
		return errors.New("DURATION must not be negative")
	}
	return nil
}

// Encode writes c to w as text/calendar (CRLF line ends, folded lines) after validating it.
func Encode(w io.Writer, c Calendar) error {
	if err := c.Validate(); err != nil {
		return err
	}
	e := &encoder{w: bufio.NewWriter(w)}
	e.line("BEGIN", "VCALENDAR")
	e.line("VERSION", "2.0")
	e.line("PRODID", Escape(c.ProdID))
	e.line("CALSCALE", "GREGORIAN")
	e.line("METHOD", "PUBLISH")
	if c.Name != "" {
		e.line("NAME", Escape(c.Name))
		e.line("X-WR-CALNAME", Escape(c.Name))
	}
	if c.Refresh > 0 {
		e.line("REFRESH-INTERVAL;VALUE=DURATION", Duration(c.Refresh))
		e.line("X-PUBLISHED-TTL", Duration(c.Refresh))
	}
	for _, comp := range c.Components {
		e.component(comp)
	}
	e.line("END", "VCALENDAR")
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

type encoder struct {
	w   *bufio.Writer
	err error
}

func (e *encoder) component(c Component) {
	e.line("BEGIN", string(c.Kind))
	e.line("UID", Escape(c.UID))
	e.line("DTSTAMP", DateTime(c.Stamp))
	if !c.Created.IsZero() {
		e.line("CREATED", DateTime(c.Created))
	}
	if !c.LastModified.IsZero() {
		e.line("LAST-MODIFIED", DateTime(c.LastModified))
	}
	if c.Start != nil {
		e.line("DTSTART", DateTime(*c.Start))
	}
	if c.Kind == Todo && c.Due != nil {
		e.line("DUE", DateTime(*c.Due))
	}
	if c.Kind == Event && c.Duration > 0 {
		e.line("DURATION", Duration(c.Duration))
	}
	if c.RRule != "" {
		e.line("RRULE", c.RRule)
	}
	e.line("SUMMARY", Escape(c.Summary))
	if c.Description != "" {
		e.line("DESCRIPTION", Escape(c.Description))
	}
	if c.Priority != PriorityUndefined {
		e.line("PRIORITY", strconv.Itoa(c.Priority))
	}
	switch {
	case c.Kind == Event:
		e.line("STATUS", "CONFIRMED")
	case c.Completed != nil:
		e.line("STATUS", "COMPLETED")
		e.line("COMPLETED", DateTime(*c.Completed))
		e.line("PERCENT-COMPLETE", "100")
	default:
		e.line("STATUS", "NEEDS-ACTION")
	}
	e.line("END", string(c.Kind))
}

// line writes "NAME:value" folded to maxLineOctets, ending in CRLF.
func (e *encoder) line(name, value string) {
	if e.err != nil {
		return
	}
	_, e.err = e.w.WriteString(Fold(name + ":" + value))
}

// Fold splits a content line into lines of at most 75 octets joined by CRLF and a space
// (RFC 5545 §3.1), never inside a UTF-8 sequence, and ends it with CRLF.
func Fold(line string) string {
	var b strings.Builder
	limit := maxLineOctets
	for len(line) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n ")
		line = line[cut:]
		limit = maxLineOctets - 1 // the leading space counts
	}
	b.WriteString(line)
	b.WriteString("\r\n")
	return b.String()
}

// Escape is a TEXT value (RFC 5545 §3.3.11): backslash, semicolon and comma escaped,
// every line break (CRLF, CR, LF) as \n, and other control characters (which TEXT does
// not allow) dropped; a tab stays.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == ';':
			b.WriteString(`\;`)
		case r == ',':
			b.WriteString(`\,`)
		case r == '\r':
			b.WriteString(`\n`)
			if i+1 < len(s) && s[i+1] == '\n' {
				size++
			}
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError && size == 1:
			// Dropped: not allowed in TEXT (invalid UTF-8 included).
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// DateTime is t as a UTC DATE-TIME (20261126T131813Z).
func DateTime(t time.Time) string { return t.UTC().Format(dateTimeFormat) }

// Duration is d as a DURATION value (RFC 5545 §3.3.6), whole seconds: PT1H, PT1H30M,
// P1D, PT0S.
func Duration(d time.Duration) string {
	s := int64(d / time.Second)
	if s < 0 {
		s = -s
	}
	days, s := s/86400, s%86400
	h, s := s/3600, s%3600
	m, s := s/60, s%60
	var b strings.Builder
	b.WriteString("P")
	if days > 0 {
		fmt.Fprintf(&b, "%dD", days)
	}
	if h > 0 || m > 0 || s > 0 || days == 0 {
		b.WriteString("T")
		if h > 0 {
			fmt.Fprintf(&b, "%dH", h)
		}
		if m > 0 {
			fmt.Fprintf(&b, "%dM", m)
		}
		if s > 0 || h == 0 && m == 0 {
			fmt.Fprintf(&b, "%dS", s)
		}
	}
	return b.String()
}
