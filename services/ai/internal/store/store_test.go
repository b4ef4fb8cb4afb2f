package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/pgtest"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
	"github.com/perpetua-flow/backend/services/ai/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	pool  *pgxpool.Pool
	store *store.Store
}

func setup(t *testing.T) fixture {
	t.Helper()
	pool := pgtest.NewPool(t, "ai-store", store.Schema, func(ctx context.Context, url string) error {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			return err
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = store.Schema
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		if err := store.MigrateOwn(ctx, p); err != nil {
			return err
		}
		return events.Migrate(ctx, p, store.Schema)
	})
	return fixture{pool: pool, store: store.New(pool)}
}

func TestTaskCounterHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user, session, task := uuid.NewString(), uuid.NewString(), uuid.NewString()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		counts  = map[int]bool{}
		refused int
	)
	for i := 0; i < 25; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := f.store.CountTaskRequest(ctx, user, session, task, now)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case apperr.CodeOf(err) == apperr.AITaskLimitReached:
				refused++
			case err != nil:
				t.Error(err)
			default:
				counts[n] = true
			}
		}()
	}
	wg.Wait()
	if len(counts) != assistant.TaskRequestLimit || refused != 25-assistant.TaskRequestLimit {
		t.Fatalf("counted %v, refused %d", counts, refused)
	}
	// Another session of the same user, or another task, counts on its own.
	if n, err := f.store.CountTaskRequest(ctx, user, uuid.NewString(), task, now); err != nil || n != 1 {
		t.Fatalf("other session: %d %v", n, err)
	}
	// 24 h after the first request the window starts again.
	if n, err := f.store.CountTaskRequest(ctx, user, session, task, now.Add(assistant.TaskCounterTTL)); err != nil || n != 1 {
		t.Fatalf("after the window: %d %v", n, err)
	}
	if _, err := f.store.PurgeExpired(ctx, now.Add(3*assistant.TaskCounterTTL)); err != nil {
		t.Fatal(err)
	}
}

func TestVoiceNoteFinishesOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user, note := uuid.NewString(), uuid.NewString()
	entry := assistant.RequestLog{UserID: user, Kind: assistant.KindVoiceNote, Outcome: assistant.OutcomeOK, Credits: 5, At: time.Now()}
	res := assistant.VoiceNoteResult{NoteID: note, UserID: user, OK: true, Text: "hello"}
	for i := 0; i < 3; i++ {
		if err := f.store.FinishVoiceNote(ctx, entry, res); err != nil {
			t.Fatal(err)
		}
	}
	done, err := f.store.VoiceNoteFinished(ctx, user, note)
	if err != nil || !done {
		t.Fatalf("finished %v %v", done, err)
	}
	var outbox, logs int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = 'ai.transcription.completed'`).Scan(&outbox); err != nil {
		t.Fatal(err)
	}
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM request_log WHERE user_id = $1`, user).Scan(&logs); err != nil {
		t.Fatal(err)
	}
	if outbox != 1 || logs != 1 {
		t.Fatalf("%d events, %d log rows; want 1 each", outbox, logs)
	}
}

func TestRefundsCountAttempts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	user, base := uuid.NewString(), uuid.NewString()
	for i, op := range []string{base, "attempt-1", "attempt-1"} {
		if err := f.store.RecordRefund(ctx, user, base, op, time.Now()); err != nil {
			t.Fatal(i, err)
		}
	}
	if n, err := f.store.Refunds(ctx, user, base); err != nil || n != 2 {
		t.Fatalf("refunds %d %v", n, err)
	}
	if err := store.DeleteUser(ctx, f.pool, user); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.store.Refunds(ctx, user, base); n != 0 {
		t.Fatal("user's rows survived deletion")
	}
}
