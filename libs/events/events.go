// Package events owns how facts leave and enter a service: the CloudEvents 1.0 envelope,
// the transactional outbox (rows written in the caller's transaction and published to
// JetStream by a relay), and durable consumers that record each event in an inbox table in
// the same transaction as its effect, so a redelivered event changes nothing.
//
// Every function that touches Postgres uses unqualified table names: the pool's (or the
// transaction's) search_path must be the service's schema, as pg.Open and pgtest.NewPool
// set it. Migrate creates the tables there.
//
// The payload types of each producer live in the sub-packages (authevents, tasksevents,
// billingevents, aievents); they are contracts, this package is the plumbing.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SpecVersion is the CloudEvents version of every envelope.
const SpecVersion = "1.0"

// ContentTypeJSON is the datacontenttype of every envelope: data is JSON.
const ContentTypeJSON = "application/json"

// Event is a CloudEvents 1.0 envelope in structured JSON mode. Subject is the id of the
// user the fact is about (empty for facts about no user). Type is also the JetStream
// subject, e.g. "tasks.task.completed".
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// New makes an event with a fresh time-ordered id (UUID v7) and the time now in UTC;
// data is marshalled to JSON.
func New(source, typ, userID string, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("events: marshal data of %s: %w", typ, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("events: new id: %w", err)
	}
	ev := Event{
		SpecVersion:     SpecVersion,
		ID:              id.String(),
		Source:          source,
		Type:            typ,
		Subject:         userID,
		Time:            time.Now().UTC(),
		DataContentType: ContentTypeJSON,
		Data:            raw,
	}
	if err := ev.Validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// Decode unmarshals the event's data into dst.
func (e Event) Decode(dst any) error {
	if err := json.Unmarshal(e.Data, dst); err != nil {
		return fmt.Errorf("events: decode data of %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// Parse reads a structured-mode envelope (a message body) and checks it.
func Parse(b []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("events: parse envelope: %w", err)
	}
	if err := ev.Validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// Validate checks the required CloudEvents attributes and that Type can be a NATS subject.
func (e Event) Validate() error {
	var problems []string
	if e.SpecVersion != SpecVersion {
		problems = append(problems, fmt.Sprintf("specversion %q is not %q", e.SpecVersion, SpecVersion))
	}
	if e.ID == "" {
		problems = append(problems, "id is empty")
	}
	if e.Source == "" {
		problems = append(problems, "source is empty")
	}
	if !validSubject(e.Type) {
		problems = append(problems, fmt.Sprintf("type %q is not a NATS subject (tokens of letters, digits, - and _ joined by dots)", e.Type))
	}
	if e.Time.IsZero() {
		problems = append(problems, "time is zero")
	}
	if len(problems) > 0 {
		return fmt.Errorf("events: invalid event %s: %w", e.ID, errors.New(strings.Join(problems, "; ")))
	}
	return nil
}

// validSubject accepts literal NATS subjects (no wildcards, no empty tokens).
func validSubject(s string) bool {
	if s == "" {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if !validToken(tok) {
			return false
		}
	}
	return true
}

// validToken is one subject token or a durable name: letters, digits, '-' and '_'.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
