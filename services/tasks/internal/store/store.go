// Package store is the only SQL of the tasks service: hand-written pgx v5 queries, one
// transaction per use case, every user query scoped by user_id, and the outbox row of
// each change in the same transaction as the change.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// Emitter writes an event to the outbox inside tx (libs/events Enqueue in production).
type Emitter func(ctx context.Context, tx pgx.Tx, typ, userID string, data any) error

// Store is the tasks schema.
type Store struct {
	pool  *pgxpool.Pool
	clock clock.Clock
	emit  Emitter
}

// New is a store on pool. emit may be nil in tests that do not read events.
func New(pool *pgxpool.Pool, clk clock.Clock, emit Emitter) *Store {
	if clk == nil {
		clk = clock.System{}
	}
	if emit == nil {
		emit = func(context.Context, pgx.Tx, string, string, any) error { return nil }
	}
	return &Store{pool: pool, clock: clk, emit: emit}
}

// Pool is the store's pool (for readiness checks and the outbox relay).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Actor is who makes a change: the user, their tier (limits) and the source (user, ai,
// system) recorded in the activity log and events.
type Actor struct {
	UserID string
	Tier   task.Tier
	Source task.Source
}

// now is the clock at Postgres precision, so what a write answers equals what a read
// returns later.
func (s *Store) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// ValidID reports whether s is a UUID; a malformed id in a path is a 404, never a 500.
func ValidID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

func notFound(what string) error { return apperr.New(apperr.NotFound, what+" not found") }

// unlockedAchievements is the user's unlocked achievement ids, whose perks raise limits.
// Achievements arrive with issue 6 (read them here, with q, so a limit check inside a
// transaction sees that transaction's unlocks); until then nothing is unlocked.
func (s *Store) unlockedAchievements(_ context.Context, _ pg.Querier, _ string) ([]string, error) {
	return nil, nil
}

// Limits is the user's effective limits (base by tier plus achievement perks).
func (s *Store) Limits(ctx context.Context, userID string, tier task.Tier) (task.Limits, []string, error) {
	unlocked, err := s.unlockedAchievements(ctx, s.pool, userID)
	if err != nil {
		return task.Limits{}, nil, err
	}
	return task.EffectiveLimits(tier, unlocked), unlocked, nil
}

// reserve counts one more task or note for the user against the limit, atomically: the
// conditional upsert on the counter row serialises concurrent creates of one user, so 20
// concurrent creates at 49 tasks leave exactly 50 (DESIGN-NOTES "Limits under concurrency").
func (s *Store) reserve(ctx context.Context, tx pgx.Tx, a Actor, r task.Resource) error {
	unlocked, err := s.unlockedAchievements(ctx, tx, a.UserID)
	if err != nil {
		return err
	}
	lim := task.EffectiveLimits(a.Tier, unlocked)
	col, max := "tasks", lim.MaxTasks
	if r == task.ResourceNotes {
		col, max = "notes", &lim.MaxNotes
	}
	limit := int64(1<<31 - 1)
	if max != nil {
		limit = int64(*max)
	}
	// col is one of two constants, never client input.
	q := fmt.Sprintf(`INSERT INTO user_counts (user_id, %[1]s) VALUES ($1, 1)
		ON CONFLICT (user_id) DO UPDATE SET %[1]s = user_counts.%[1]s + 1 WHERE user_counts.%[1]s < $2
		RETURNING %[1]s`, col)
	var n int
	err = tx.QueryRow(ctx, q, a.UserID, limit).Scan(&n)
	if pg.IsNoRows(err) {
		var count int
		if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT %s FROM user_counts WHERE user_id = $1`, col), a.UserID).Scan(&count); err != nil {
			return err
		}
		return task.ErrLimit(r, int(limit), count, unlocked)
	}
	if err == nil && n > int(limit) {
		return task.ErrLimit(r, int(limit), n-1, unlocked)
	}
	return err
}

// release gives a reserved slot back (delete).
func (s *Store) release(ctx context.Context, tx pgx.Tx, userID string, r task.Resource) error {
	col := "tasks"
	if r == task.ResourceNotes {
		col = "notes"
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE user_counts SET %[1]s = greatest(%[1]s - 1, 0) WHERE user_id = $1`, col), userID)
	return err
}

// record writes one activity row in tx.
func (s *Store) record(ctx context.Context, tx pgx.Tx, a Actor, et task.EntityType, entityID, action string, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO activity (id, user_id, entity_type, entity_id, action, source, details, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		newID(), a.UserID, string(et), entityID, action, string(a.Source), b, s.now())
	return err
}

// emitTask puts tasks.task.<verb> with the task as it is now into the outbox.
func (s *Store) emitTask(ctx context.Context, tx pgx.Tx, typ string, t task.Task, src task.Source) error {
	return s.emit(ctx, tx, typ, t.UserID, tasksevents.Task{
		TaskID: t.ID, UserID: t.UserID, Title: t.Title, Priority: string(t.Priority),
		DueDate: t.DueDate, Completed: t.Completed, Version: t.Version, Source: string(src),
		OccurredAt: s.now(),
	})
}

// completed is the one place that reacts to a task becoming completed, whatever the path
// (manual PATCH, last subtask, force, AI action). It runs inside the completion's
// transaction: the activity row, tasks.task.completed (exactly once, because callers get
// here only from task.Complete/ApplyPatch reporting a transition), and, with issue 6, the
// streak update and achievement evaluation whose unlocks it returns.
func (s *Store) completed(ctx context.Context, tx pgx.Tx, a Actor, t task.Task) (task.Completion, error) {
	if err := s.record(ctx, tx, a, task.EntityTask, t.ID, task.ActionCompleted, map[string]any{"completed_by": string(t.CompletedBy)}); err != nil {
		return task.Completion{}, err
	}
	at := s.now()
	if t.CompletedAt != nil {
		at = *t.CompletedAt
	}
	if err := s.emit(ctx, tx, tasksevents.TypeTaskCompleted, t.UserID, tasksevents.TaskCompleted{
		TaskID: t.ID, UserID: t.UserID, CompletedBy: string(t.CompletedBy), Source: string(a.Source),
		Version: t.Version, CompletedAt: at,
	}); err != nil {
		return task.Completion{}, err
	}
	return task.Completion{Unlocked: []task.Achievement{}}, nil
}

// inTx is pg.InTx on the store's pool.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pg.InTx(ctx, s.pool, fn)
}
