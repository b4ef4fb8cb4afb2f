package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/migrations"
)

// TestProCreateTakesNoUserLock: while another transaction holds the user's lock (and,
// for the counter row of the earlier design, a fresh user_counts row), a Pro user's
// create (no task limit) still commits, and a free user's waits for the lock: it gives up
// only when its context ends, and then nothing was created.
func TestProCreateTakesNoUserLock(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, "tasks_store", "tasks", func(ctx context.Context, u string) error {
		return pg.Migrate(ctx, pg.Config{URL: u, Schema: "tasks"}, migrations.FS, nil)
	})
	s := New(pool, nil, nil)
	ctx := context.Background()
	userID := uuid.NewString()
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	if err := lockUser(ctx, holder, userID); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `INSERT INTO user_counts (user_id) VALUES ($1)`, userID); err != nil {
		t.Fatal(err)
	}

	// A deadline only so a regression fails instead of hanging; the create needs no wait.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := s.CreateTask(pctx, Actor{UserID: userID, Tier: task.Pro, Source: task.SourceUser}, task.NewTask{Title: "pro"}); err != nil {
		t.Fatalf("Pro create while the user's lock is held: %v", err)
	}

	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := s.CreateTask(fctx, Actor{UserID: userID, Tier: task.Free, Source: task.SourceUser}, task.NewTask{Title: "free"})
		done <- err
	}()
	// The free create is waiting for the lock once Postgres shows a backend waiting on an
	// advisory lock; then it is cancelled.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("free create finished while the user's lock was held: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the free create never waited for the user's lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil || apperr.CodeOf(err) == apperr.LimitExceeded {
		t.Fatalf("cancelled free create: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tasks WHERE user_id = $1`, userID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d tasks, want the Pro one only", n)
	}
}
