// Package config reads a service's settings from the environment into typed values,
// collecting every problem so a bad deployment fails at start with one clear message.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Getenv is os.Getenv or a test's map lookup.
type Getenv func(string) string

// Reader reads typed variables and remembers what was wrong.
type Reader struct {
	getenv Getenv
	errs   []error
}

// NewReader reads from getenv.
func NewReader(getenv Getenv) *Reader { return &Reader{getenv: getenv} }

// String is the variable or def when unset.
func (r *Reader) String(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// Required is a variable that must be set.
func (r *Reader) Required(name string) string {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		r.errs = append(r.errs, fmt.Errorf("%s is required", name))
	}
	return v
}

// Int is an integer variable.
func (r *Reader) Int(name string, def int) int {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not an integer", name, s))
		return def
	}
	return n
}

// Bool accepts true/false/1/0.
func (r *Reader) Bool(name string, def bool) bool {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a boolean", name, s))
		return def
	}
	return b
}

// Duration is a Go duration ("30s", "15m").
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a duration", name, s))
		return def
	}
	return d
}

// List is a comma-separated list with blanks dropped.
func (r *Reader) List(name string, def []string) []string {
	s := r.String(name, "")
	if s == "" {
		return def
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Check records msg when ok is false (for rules across variables).
func (r *Reader) Check(ok bool, format string, args ...any) {
	if !ok {
		r.errs = append(r.errs, fmt.Errorf(format, args...))
	}
}

// Err is every problem found, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("config: %w", errors.Join(r.errs...))
}
