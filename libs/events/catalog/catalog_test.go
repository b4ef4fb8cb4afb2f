package catalog_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/catalog"
)

var update = flag.Bool("update", false, "rewrite testdata/asyncapi.golden.json")

// The document is generated from the Go contracts; the golden copy shows every change to
// it in review.
func TestAsyncAPIGolden(t *testing.T) {
	got, err := catalog.AsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/asyncapi.golden.json"
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Fatal("the AsyncAPI document changed: review it and run go test ./libs/events/catalog -update")
	}
}

func TestEveryEventTypeIsCatalogued(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, e := range catalog.Events {
		if seen[e.Type] {
			t.Errorf("%s listed twice", e.Type)
		}
		seen[e.Type] = true
		if !strings.HasPrefix(e.Type, e.Producer+".") {
			t.Errorf("%s: subject must start with its producer %s", e.Type, e.Producer)
		}
	}
	// API.md §6.
	for _, typ := range []string{"auth.user.created", "auth.user.deleted", "tasks.task.created", "tasks.task.updated",
		"tasks.task.completed", "tasks.task.deleted", "tasks.task.recovered", "tasks.achievement.unlocked",
		"tasks.reminder.fired", "tasks.note.voice_created", "ai.transcription.completed", "ai.transcription.failed",
		"billing.credits.granted", "billing.credits.consumed", "billing.credits.refunded", "billing.payment.captured",
		"billing.payment.declined", "billing.subscription.activated", "billing.subscription.renewed",
		"billing.subscription.cancelled", "billing.subscription.expired"} {
		if !seen[typ] {
			t.Errorf("%s missing from the catalogue", typ)
		}
	}
}

// Validate accepts a real envelope and refuses one whose data drifted from the contract.
func TestValidateEvent(t *testing.T) {
	t.Parallel()
	e, _ := catalog.ByType("auth.user.created")
	ev, err := events.New("perpetua/auth", e.Type, "u1", map[string]any{
		"user_id": "u1", "email": "a@b.c", "name": "A", "created_at": time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(ev)
	if err := catalog.Validate(raw); err != nil {
		t.Fatalf("valid event refused: %v", err)
	}
	bad, _ := events.New("perpetua/auth", e.Type, "u1", map[string]any{"user_id": 7, "surprise": true})
	raw, _ = json.Marshal(bad)
	if err := catalog.Validate(raw); err == nil {
		t.Fatal("an event whose data does not match its schema must be refused")
	}
	unknown, _ := events.New("perpetua/x", "x.y.z", "", map[string]any{})
	raw, _ = json.Marshal(unknown)
	if err := catalog.Validate(raw); err == nil {
		t.Fatal("an uncatalogued event type must be refused")
	}
}
