package assistant

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// ledger is billing as the assistant sees it: consumes once per operation id, refunds,
// and an outage that can hide the answer of a consume it applied.
type ledger struct {
	mu        sync.Mutex
	balance   int
	charged   map[string]int // operation id → amount still charged
	down      bool           // nothing is applied, every call fails
	loseReply bool           // consumes are applied, their answer is lost
}

func (l *ledger) Consume(_ context.Context, _, op string, amount int, _ string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return 0, apperr.New(apperr.ServiceUnavailable, "no service is answering svc.billing.credits.consume")
	}
	if _, done := l.charged[op]; !done {
		if l.balance < amount {
			return 0, apperr.New(apperr.InsufficientCredits, "not enough credits")
		}
		l.balance -= amount
		l.charged[op] = amount
	}
	if l.loseReply {
		return 0, apperr.New(apperr.ServiceUnavailable, "svc.billing.credits.consume did not answer within 5s")
	}
	return l.balance, nil
}

func (l *ledger) Refund(_ context.Context, _, op, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return apperr.New(apperr.ServiceUnavailable, "no service is answering svc.billing.credits.refund")
	}
	l.balance += l.charged[op]
	l.charged[op] = 0
	return nil
}

func (l *ledger) set(down, loseReply bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down, l.loseReply = down, loseReply
}

func (l *ledger) state() (balance, operations int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, amount := range l.charged {
		if amount > 0 {
			operations++
		}
	}
	return l.balance, operations
}

// notes is the ai schema's part a voice note touches.
type notes struct {
	mu       sync.Mutex
	finished map[string]VoiceNoteResult
	refunds  map[string]int
}

func (n *notes) CountTaskRequest(context.Context, string, string, string, time.Time) (int, error) {
	return 1, nil
}
func (n *notes) UncountTaskRequest(context.Context, string, string, string, time.Time) error {
	return nil
}
func (n *notes) LogRequest(context.Context, RequestLog) error { return nil }
func (n *notes) LogNoteConverted(context.Context, RequestLog, string) error {
	return nil
}
func (n *notes) VoiceNoteFinished(_ context.Context, _, noteID string) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, done := n.finished[noteID]
	return done, nil
}
func (n *notes) FinishVoiceNote(_ context.Context, _ RequestLog, r VoiceNoteResult) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, done := n.finished[r.NoteID]; !done {
		n.finished[r.NoteID] = r
	}
	return nil
}
func (n *notes) Refunds(_ context.Context, _, base string) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.refunds[base], nil
}
func (n *notes) RecordRefund(_ context.Context, _, base, _ string, _ time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.refunds[base]++
	return nil
}

func (n *notes) result(noteID string) (VoiceNoteResult, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.finished[noteID]
	return r, ok
}

type noTasks struct{}

func (noTasks) Context(context.Context, string, string, int) ([]Task, error) { return nil, nil }
func (noTasks) Note(context.Context, string, string) (Note, error)           { return Note{}, nil }
func (noTasks) Apply(context.Context, string, string, ConfirmedAction, string) (ApplyResult, error) {
	return ApplyResult{}, nil
}

// laterRefunds is the retry job's queue.
type laterRefunds struct {
	mu  sync.Mutex
	ops []string
}

func (l *laterRefunds) RefundLater(_ context.Context, _, op, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
	return nil
}

type speech struct {
	mu    sync.Mutex
	calls int
}

func (s *speech) Transcribe(context.Context, string) (Transcript, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return Transcript{Text: "Buy milk", Language: "en", Confidence: 0.9}, nil
}

type voiceFixture struct {
	svc    *Service
	ledger *ledger
	notes  *notes
	later  *laterRefunds
	speech *speech
}

func newVoiceFixture(t *testing.T, balance int) voiceFixture {
	t.Helper()
	f := voiceFixture{
		ledger: &ledger{balance: balance, charged: map[string]int{}},
		notes:  &notes{finished: map[string]VoiceNoteResult{}, refunds: map[string]int{}},
		later:  &laterRefunds{},
		speech: &speech{},
	}
	svc, err := New(Config{Credits: f.ledger, Tasks: noTasks{}, Store: f.notes, Refunds: f.later, Transcriber: f.speech})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func voiceNote(final bool) VoiceNote {
	return VoiceNote{NoteID: uuid.NewString(), UserID: uuid.NewString(), VoiceURL: "https://files.example/a.m4a", DurationSeconds: 30, Final: final}
}

func TestVoiceNoteWhileBillingIsDown(t *testing.T) {
	t.Parallel()
	t.Run("an early delivery is retried and nothing is recorded", func(t *testing.T) {
		f := newVoiceFixture(t, 50)
		f.ledger.set(true, false)
		n := voiceNote(false)
		if err := f.svc.TranscribeVoiceNote(context.Background(), n); !errors.Is(err, ErrRetry) {
			t.Fatalf("err = %v, want ErrRetry", err)
		}
		if _, done := f.notes.result(n.NoteID); done || f.speech.calls != 0 {
			t.Fatalf("finished %v, transcriber calls %d; want neither", done, f.speech.calls)
		}
	})
	t.Run("the last delivery fails the note, uncharged", func(t *testing.T) {
		f := newVoiceFixture(t, 50)
		f.ledger.set(true, false)
		n := voiceNote(true)
		if err := f.svc.TranscribeVoiceNote(context.Background(), n); err != nil {
			t.Fatalf("err = %v, want the note settled as failed", err)
		}
		r, done := f.notes.result(n.NoteID)
		if !done || r.OK || !strings.Contains(r.Reason, "credits service was unavailable") {
			t.Fatalf("result %+v (finished %v), want failed with the reason", r, done)
		}
		if balance, _ := f.ledger.state(); balance != 50 || f.speech.calls != 0 {
			t.Fatalf("balance %d, transcriber calls %d; want 50 and 0", balance, f.speech.calls)
		}
	})
	t.Run("a consume applied but unanswered is given back, the retry charges once", func(t *testing.T) {
		f := newVoiceFixture(t, 50)
		f.ledger.set(false, true)
		n := voiceNote(false)
		if err := f.svc.TranscribeVoiceNote(context.Background(), n); !errors.Is(err, ErrRetry) {
			t.Fatalf("err = %v, want ErrRetry", err)
		}
		if balance, ops := f.ledger.state(); balance != 50 || ops != 0 {
			t.Fatalf("after the lost answer: balance %d with %d charged operations, want 50 and 0", balance, ops)
		}
		f.ledger.set(false, false)
		if err := f.svc.TranscribeVoiceNote(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		if r, done := f.notes.result(n.NoteID); !done || !r.OK {
			t.Fatalf("result %+v, want transcribed", r)
		}
		if balance, ops := f.ledger.state(); balance != 45 || ops != 1 {
			t.Fatalf("balance %d with %d charged operations, want 45 and 1", balance, ops)
		}
	})
	t.Run("a refund billing cannot take now goes to the retry job", func(t *testing.T) {
		f := newVoiceFixture(t, 50)
		f.ledger.set(true, false)
		n := voiceNote(false)
		_ = f.svc.TranscribeVoiceNote(context.Background(), n)
		f.later.mu.Lock()
		defer f.later.mu.Unlock()
		if len(f.later.ops) != 1 || f.later.ops[0] != n.NoteID {
			t.Fatalf("queued refunds %v, want the note's operation %s", f.later.ops, n.NoteID)
		}
	})
}
