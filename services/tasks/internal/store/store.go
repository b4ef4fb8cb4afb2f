// Package store is the only SQL of the tasks service: hand-written pgx v5 queries, one
// transaction per use case, every user query scoped by user_id, and the outbox row of
// each change in the same transaction as the change.
package store

import (
	"context"
	"encoding/json"
	"sync"
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

	// sched inserts reminder and focus jobs in the writing transaction; nil (store tests
	// that do not run jobs) stores reminders without scheduling them.
	sched Scheduler
	// publish pushes notifications committed by a store transaction (notify.Hub); nil
	// pushes nothing (clients still read them from the table).
	publish func(...task.Notification)

	// pending is the notifications written inside each open inTx transaction, pushed
	// after it commits and dropped if it rolls back.
	mu      sync.Mutex
	pending map[pgx.Tx][]task.Notification
}

// Scheduler inserts jobs in the caller's transaction (schedule.Scheduler).
type Scheduler interface {
	Reminder(ctx context.Context, tx pgx.Tx, id string, version int, at time.Time) error
	FocusClose(ctx context.Context, tx pgx.Tx, sessionID, userID string, at time.Time) error
}

// SetScheduler sets the job scheduler; call it before serving.
func (s *Store) SetScheduler(sc Scheduler) { s.sched = sc }

// SetPublisher sets the push of committed notifications; call it before serving.
func (s *Store) SetPublisher(fn func(...task.Notification)) { s.publish = fn }

// New is a store on pool. emit may be nil in tests that do not read events.
func New(pool *pgxpool.Pool, clk clock.Clock, emit Emitter) *Store {
	if clk == nil {
		clk = clock.System{}
	}
	if emit == nil {
		emit = func(context.Context, pgx.Tx, string, string, any) error { return nil }
	}
	return &Store{pool: pool, clock: clk, emit: emit, pending: map[pgx.Tx][]task.Notification{}}
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

// unlockedAchievements is the user's unlocked achievement ids, whose perks raise limits,
// read with q so a limit check inside a transaction sees that transaction's unlocks.
func (s *Store) unlockedAchievements(ctx context.Context, q pg.Querier, userID string) ([]string, error) {
	set, err := unlockedSet(ctx, q, userID)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, id := range set.IDs() {
		out = append(out, string(id))
	}
	return out, nil
}

// Limits is the user's effective limits (base by tier plus achievement perks).
func (s *Store) Limits(ctx context.Context, userID string, tier task.Tier) (task.Limits, []string, error) {
	unlocked, err := s.unlockedAchievements(ctx, s.pool, userID)
	if err != nil {
		return task.Limits{}, nil, err
	}
	return task.EffectiveLimits(tier, unlocked), unlocked, nil
}

// userLockClass is the first key of the per-user advisory locks of this service
// (pg_advisory_xact_lock(int4, int4)); the libraries' advisory locks (outbox relay, River,
// migrations) use the one-bigint form, a key space of its own.
const userLockClass = 0x7461736b // "task"

// lockUser takes the user's transaction-level advisory lock: limited creates and
// recoveries, and deletes (whose tombstone eviction must not race), of one user serialise
// on it. Users never block each other (two users whose ids hash alike only wait).
func lockUser(ctx context.Context, tx pgx.Tx, userID string) error {
	_, err := tx.Exec(ctx, lockUserSQL, userLockClass, userID)
	return err
}

// lockUserSQL takes the lock of the user $2 in the class $1. A transaction-level lock
// ends with its transaction, so it also holds behind a transaction-mode pooler.
const lockUserSQL = `SELECT pg_advisory_xact_lock($1, hashtext($2))`

// reserve checks, inside a create's or a recovery's transaction and before its insert,
// that the user may hold one more task or note (API.md §3 "Limits", DESIGN-NOTES "Limits
// under concurrency").
//
// A resource without a limit (Pro tasks; perks only raise a limit, so there is none to
// raise) takes no lock and counts nothing: creates of one Pro user run in parallel.
//
// A limited one is counted from the rows themselves under the user's lock (lockUser):
// lock, then count in a second statement of the same batch, so under READ COMMITTED the
// count's snapshot is taken after the lock was granted and sees every create that held
// it before (each holds it to its commit). 20 concurrent creates at 49 leave exactly 50.
// What counts is every row the user holds: tasks open, completed, hidden or archived
// (not templates, not tombstones), notes archived or not. A free user has at most ~50,
// so count(*) over the user's index is cheap.
//
// Counting rows rather than keeping a counter means nothing can drift: a Pro user, who
// is not counted, downgraded to free is held to the limit by the tasks they really have.
// The user_counts table of the earlier counter is no longer read or written; it stays
// for this release, since replicas of the previous one still update it during a rolling
// deploy (while both run, a create on an old replica is checked against its stale
// counter, so the limit may be passed by the creates made meanwhile; the rows then
// refuse further creates). A later migration drops it.
func (s *Store) reserve(ctx context.Context, tx pgx.Tx, a Actor, r task.Resource) error {
	if r == task.ResourceTasks && task.EffectiveLimits(a.Tier, nil).MaxTasks == nil {
		return nil
	}
	unlocked, err := s.unlockedAchievements(ctx, tx, a.UserID)
	if err != nil {
		return err
	}
	lim := task.EffectiveLimits(a.Tier, unlocked)
	limit, count := lim.MaxNotes, `SELECT count(*) FROM notes WHERE user_id = $1`
	if r == task.ResourceTasks {
		limit, count = *lim.MaxTasks, `SELECT count(*) FROM tasks WHERE user_id = $1`
	}
	b := &pgx.Batch{}
	b.Queue(lockUserSQL, userLockClass, a.UserID)
	b.Queue(count, a.UserID)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return err
	}
	var n int
	if err := br.QueryRow().Scan(&n); err != nil {
		return err
	}
	if n >= limit {
		return task.ErrLimit(r, limit, n, unlocked)
	}
	return br.Close()
}

// record writes one activity row in tx.
func (s *Store) record(ctx context.Context, tx pgx.Tx, a Actor, et task.EntityType, entityID, action string, details map[string]any) error {
	args, err := s.activityArgs(a, et, entityID, action, details)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, insertActivitySQL, args...)
	return err
}

const insertActivitySQL = `INSERT INTO activity (id, user_id, entity_type, entity_id, action, source, details, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// activityArgs are the arguments of insertActivitySQL (record, or a batch that sends the
// activity row with its change).
func (s *Store) activityArgs(a Actor, et task.EntityType, entityID, action string, details map[string]any) ([]any, error) {
	if details == nil {
		details = map[string]any{}
	}
	d, err := json.Marshal(details)
	if err != nil {
		return nil, err
	}
	return []any{newID(), a.UserID, string(et), entityID, action, string(a.Source), d, s.now()}, nil
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
// here only from task.Complete/ApplyPatch reporting a transition), the streak and the
// achievements it unlocks, and, for an instance of an active template, the next instance.
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
	comp, err := s.recordCompletion(ctx, tx, t, at)
	if err != nil {
		return task.Completion{}, err
	}
	if t.TemplateID != nil {
		if err := s.nextInstance(ctx, tx, a, t); err != nil {
			return task.Completion{}, err
		}
	}
	return comp, nil
}

// inTx is pg.InTx on the store's pool; notifications queued in the transaction
// (queuePush) are pushed once it has committed.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var cur pgx.Tx
	defer func() {
		// Also on a panic in fn: the queue of a dead transaction must not stay behind.
		if cur != nil {
			s.mu.Lock()
			delete(s.pending, cur)
			s.mu.Unlock()
		}
	}()
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		cur = tx
		s.mu.Lock()
		s.pending[tx] = nil // a retried attempt starts over
		s.mu.Unlock()
		return fn(tx)
	})
	if cur == nil {
		return err
	}
	s.mu.Lock()
	ns := s.pending[cur]
	delete(s.pending, cur)
	s.mu.Unlock()
	if err == nil && len(ns) > 0 && s.publish != nil {
		s.publish(ns...)
	}
	return err
}

// queuePush pushes n after tx commits when tx is an inTx transaction; in a caller's own
// transaction (an event consumer) the caller pushes, or the client reads it on reconnect.
func (s *Store) queuePush(tx pgx.Tx, n task.Notification) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns, ok := s.pending[tx]; ok {
		s.pending[tx] = append(ns, n)
	}
}
