package main

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/aievents"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/rpc/tasksrpc"

	"github.com/perpetua-flow/backend/services/ai/internal/aitest"
	"github.com/perpetua-flow/backend/services/ai/internal/natsapi"
)

func TestTranscriptionCostsFivePerStartedMinute(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "pro", 50)
	e.deepgram.Always(aitest.Transcript{Text: "Call the bank tomorrow", Language: "en", Confidence: 0.93})
	res := e.call(t, u, req{path: "/ai/transcribe", body: map[string]any{"audio_url": "https://files.example/memo.m4a", "duration_seconds": 61}}).expect(t, 200, "")
	d := res.data
	if d["transcription"] != "Call the bank tomorrow" || d["language"] != "en" || d["confidence"] != 0.93 ||
		num(d["credits_used"]) != 10 || num(d["credits_remaining"]) != 40 {
		t.Fatalf("answer %s", res.raw)
	}
	res = e.call(t, u, req{path: "/ai/transcribe", body: map[string]any{"audio_url": "https://files.example/memo2.m4a", "duration_seconds": 120}}).expect(t, 200, "")
	if num(res.data["credits_used"]) != 10 || e.billing.Balance(u.id) != 30 {
		t.Fatalf("120 s: %s, balance %d", res.raw, e.billing.Balance(u.id))
	}
	if got := e.deepgram.Requests()[0].URL; got != "https://files.example/memo.m4a" {
		t.Fatalf("deepgram was asked for %q", got)
	}
}

func TestNoteConversionCostsOneCreditAndEmitsAnEvent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 3)
	note := uuid.NewString()
	e.tasks.AddNote(u.id, tasksrpc.NoteResponse{ID: note, Content: "remember to renew the passport before June"})
	e.openai.Always(aitest.Reply{Text: `{"title":"Renew passport","description":"Before June","priority":"high"}`})
	res := e.call(t, u, req{path: "/notes/" + note + "/convert"}).expect(t, 200, "")
	if res.data["title"] != "Renew passport" || res.data["priority"] != "high" || num(res.data["credits_used"]) != 1 || e.billing.Balance(u.id) != 2 {
		t.Fatalf("answer %s", res.raw)
	}
	ev := e.nextEvent(t, aievents.TypeNoteConverted)
	var data aievents.NoteConverted
	if err := ev.Decode(&data); err != nil || data.NoteID != note || data.UserID != u.id || ev.Subject != u.id {
		t.Fatalf("event %+v data %+v err %v", ev, data, err)
	}
	if !e.openai.Requests()[0].HasJSONSchema() {
		t.Fatal("note conversion without a JSON schema")
	}
	// Someone else's note, or none, is 404 and free.
	other := e.user(t, "free", 3)
	e.call(t, other, req{path: "/notes/" + note + "/convert"}).expect(t, 404, "NOT_FOUND")
	e.call(t, other, req{path: "/notes/not-a-uuid/convert"}).expect(t, 404, "NOT_FOUND")
	if e.billing.Balance(other.id) != 3 {
		t.Fatal("a failed conversion was charged")
	}
}

func TestUserDeletionErasesTheUsersRows(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 5)
	e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "hi"}}).expect(t, 200, "")
	count := func() int {
		var n int
		if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM request_log WHERE user_id = $1`, u.id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count() != 1 {
		t.Fatal("the chat was not logged")
	}
	ev, err := events.New(authevents.Source, authevents.TypeUserDeleted, u.id, authevents.UserDeleted{UserID: u.id, DeletedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, ev)
	eventually(t, "the user's rows to be erased", func() bool { return count() == 0 })
}

// voiceNote is a tasks.note.voice_created event for a new note of userID.
func voiceNote(t *testing.T, userID, url string, seconds int) (events.Event, string) {
	t.Helper()
	note := uuid.NewString()
	if url == "" {
		url = "https://files.example/" + note + ".m4a"
	}
	ev, err := events.New(tasksevents.Source, tasksevents.TypeNoteVoiceCreated, userID, tasksevents.NoteVoiceCreated{
		NoteID: note, UserID: userID, VoiceURL: url, DurationSeconds: seconds, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev, note
}

// transcriptionOf waits for the ai.transcription.* event of note.
func (e *env) transcriptionOf(t *testing.T, subject, note string) aievents.Transcription {
	t.Helper()
	var data aievents.Transcription
	e.eventMatching(t, subject, func(ev events.Event) bool {
		return ev.Decode(&data) == nil && data.NoteID == note
	})
	return data
}

func TestVoiceNotesAreTranscribedInTheBackground(t *testing.T) {
	t.Parallel()
	e := setup(t)

	t.Run("completed and charged per started minute", func(t *testing.T) {
		u := e.user(t, "pro", 50)
		e.deepgram.Always(aitest.Transcript{Text: "Buy milk and eggs", Language: "en", Confidence: 0.9})
		ev, note := voiceNote(t, u.id, "", 90)
		e.publish(t, ev)
		data := e.transcriptionOf(t, aievents.TypeTranscriptionCompleted, note)
		if data.UserID != u.id || data.Text != "Buy milk and eggs" || data.Language != "en" {
			t.Fatalf("event data %+v", data)
		}
		if e.billing.Balance(u.id) != 40 || e.billing.Reasons(u.id)["ai.voice_note"] != 10 {
			t.Fatalf("balance %d, reasons %v; want 40 (90 s = 2 started minutes)", e.billing.Balance(u.id), e.billing.Reasons(u.id))
		}
		// Another delivery of the fact (a new event id, as after a replay) changes nothing.
		again, err := events.New(tasksevents.Source, tasksevents.TypeNoteVoiceCreated, u.id, tasksevents.NoteVoiceCreated{
			NoteID: note, UserID: u.id, VoiceURL: "https://files.example/" + note + ".m4a", DurationSeconds: 90, CreatedAt: time.Now().UTC(),
		})
		if err != nil {
			t.Fatal(err)
		}
		e.waitConsumed(t, "TASKS", natsapi.DurableVoiceNotes, e.publish(t, again))
		var emitted int
		if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE type = $1`, aievents.TypeTranscriptionCompleted).Scan(&emitted); err != nil {
			t.Fatal(err)
		}
		if e.billing.Balance(u.id) != 40 || emitted != 1 {
			t.Fatalf("the second delivery charged (balance %d) or emitted again", e.billing.Balance(u.id))
		}
	})
	t.Run("provider failure is reported and refunded", func(t *testing.T) {
		u := e.user(t, "pro", 50)
		e.deepgram.Always(aitest.Transcript{Status: 500})
		ev, note := voiceNote(t, u.id, "", 30)
		e.publish(t, ev)
		if data := e.transcriptionOf(t, aievents.TypeTranscriptionFailed, note); data.Reason == "" {
			t.Fatalf("event data %+v", data)
		}
		eventually(t, "the refund", func() bool { return e.billing.Balance(u.id) == 50 })
	})
	t.Run("without credits it fails and Deepgram is not called", func(t *testing.T) {
		u := e.user(t, "pro", 4)
		calls := e.deepgram.Calls()
		ev, note := voiceNote(t, u.id, "", 30)
		e.publish(t, ev)
		if data := e.transcriptionOf(t, aievents.TypeTranscriptionFailed, note); data.Reason != "insufficient credits" {
			t.Fatalf("event data %+v", data)
		}
		if e.deepgram.Calls() != calls || e.billing.Balance(u.id) != 4 {
			t.Fatalf("deepgram calls %d → %d, balance %d", calls, e.deepgram.Calls(), e.billing.Balance(u.id))
		}
	})
	t.Run("a bad URL fails with a readable reason and no charge", func(t *testing.T) {
		u := e.user(t, "pro", 50)
		ev, note := voiceNote(t, u.id, "http://insecure.example/a.m4a", 30)
		e.publish(t, ev)
		if data := e.transcriptionOf(t, aievents.TypeTranscriptionFailed, note); data.Reason != "invalid voice note: audio_url must be an absolute https URL" {
			t.Fatalf("event data %+v", data)
		}
		if e.billing.Balance(u.id) != 50 {
			t.Fatal("a bad voice note was charged")
		}
	})
}
