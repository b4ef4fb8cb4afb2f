// Package schedule is the tasks service's time-driven work on River: a reminder fires by
// a job scheduled for its exact time, and a focus session left open is closed by a job
// scheduled four hours after its start. Jobs are inserted in the transaction of the
// change that causes them (Scheduler), carry what they need to recognise themselves as
// stale ({reminder_id, version}, {session_id}), and their effects are idempotent in the
// store (a fired reminder, an ended session), so a job that runs twice after a crash or
// a retry does nothing the second time.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// Queues. Reminders have their own queue so 10,000 due at once do not wait behind the
// housekeeping, and housekeeping does not wait behind them.
//
// A reminder job does little on its own: it hands its {reminder_id, version} to the
// worker's batcher, which fires the jobs running at the same moment together, up to
// ReminderBatch in one transaction, at most ReminderConcurrency transactions at once (so
// a burst takes that many database connections and leaves the rest to the API). For
// batches to fill, many jobs must run at once: River fetches at most MaxWorkers jobs per
// fetch and fetches again ReminderFetchCooldown after jobs finish, so ReminderWorkers
// is two rounds of batches, one firing (ReminderConcurrency × ReminderBatch) and one
// gathering. A waiting job costs a goroutine, no connection.
//
// River's scheduler makes scheduled jobs available up to its interval (5 s) before
// they are due, without waking the queue: the queue finds them by polling, every
// ReminderFetchPoll, which bounds the delay of the first of a burst. The cost is one
// indexed query per poll per replica on an idle queue.
const (
	QueueReminders        = "reminders"
	ReminderWorkers       = 2_000
	ReminderBatch         = 250
	ReminderConcurrency   = 4
	ReminderFetchCooldown = 20 * time.Millisecond
	ReminderFetchPoll     = 100 * time.Millisecond
	QueueFocus            = "focus"
	FocusWorkers          = 2
	reminderKind          = "tasks.reminder.fire"
	focusCloseKind        = "tasks.focus.close"
	reminderMaxAttempts   = 10
	focusCloseMaxAttempts = 10
)

// Queues is the River queue configuration these jobs need beside the default queue.
func Queues() map[string]river.QueueConfig {
	return map[string]river.QueueConfig{
		QueueReminders: {MaxWorkers: ReminderWorkers, FetchCooldown: ReminderFetchCooldown, FetchPollInterval: ReminderFetchPoll},
		QueueFocus:     {MaxWorkers: FocusWorkers},
	}
}

// ReminderArgs fires one version of one reminder.
type ReminderArgs struct {
	ReminderID string `json:"reminder_id"`
	Version    int    `json:"version"`
}

// Kind is River's job kind.
func (ReminderArgs) Kind() string { return reminderKind }

// InsertOpts: a later version is a different job and the earlier one turns stale. The
// jobs are not unique by args: every schedule is of a new version already, a duplicate
// would find its reminder fired, and River's scheduler pass over unique jobs takes more
// than its 30 s timeout when 10,000 fall due together (it then retries with batches of
// 1,000 for the life of the process), which delayed a burst by a minute and more.
func (ReminderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueReminders, MaxAttempts: reminderMaxAttempts}
}

// FocusCloseArgs closes a focus session that is still open when it runs.
type FocusCloseArgs struct {
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
}

// Kind is River's job kind.
func (FocusCloseArgs) Kind() string { return focusCloseKind }

// InsertOpts: one job per session.
func (FocusCloseArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFocus, MaxAttempts: focusCloseMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Scheduler inserts jobs in the caller's transaction. It is made before the River client
// (the store needs it, the client's workers need the store) and bound to the client once
// that exists; scheduling before Bind is an error, never a silent drop.
type Scheduler struct {
	client atomic.Pointer[river.Client[pgx.Tx]]
}

// Bind attaches the River client that inserts the jobs.
func (s *Scheduler) Bind(c *river.Client[pgx.Tx]) { s.client.Store(c) }

var errUnbound = errors.New("schedule: scheduler used before Bind")

// Reminder schedules the job that fires version of reminder id at at (a time in the
// past runs at once).
func (s *Scheduler) Reminder(ctx context.Context, tx pgx.Tx, id string, version int, at time.Time) error {
	c := s.client.Load()
	if c == nil {
		return errUnbound
	}
	_, err := c.InsertTx(ctx, tx, ReminderArgs{ReminderID: id, Version: version}, &river.InsertOpts{ScheduledAt: at})
	if err != nil {
		return fmt.Errorf("schedule reminder %s v%d: %w", id, version, err)
	}
	return nil
}

// FocusClose schedules the automatic close of a session at at.
func (s *Scheduler) FocusClose(ctx context.Context, tx pgx.Tx, sessionID, userID string, at time.Time) error {
	c := s.client.Load()
	if c == nil {
		return errUnbound
	}
	_, err := c.InsertTx(ctx, tx, FocusCloseArgs{SessionID: sessionID, UserID: userID}, &river.InsertOpts{ScheduledAt: at})
	if err != nil {
		return fmt.Errorf("schedule focus close %s: %w", sessionID, err)
	}
	return nil
}

// Firer is the store's side of reminder jobs: in one transaction for the whole batch,
// lock the reminders and their tasks, decide each job (reminder.Decide), and for those
// that fire write the notifications, mark the reminders fired and put
// tasks.reminder.fired in the outbox. outcomes[i] is the outcome of jobs[i]; the
// committed notifications to push are returned. An error fires none of them.
type Firer interface {
	FireReminders(ctx context.Context, jobs []store.ReminderJob) (outcomes []reminder.Outcome, pushed []task.Notification, err error)
}

// Closer is the store's side of a focus-close job: close the session if it is still open
// (crediting the task with at most the maximum session length); a closed one is a no-op.
type Closer interface {
	CloseFocusSession(ctx context.Context, userID, sessionID string) (closed bool, err error)
}

// Publisher pushes committed notifications to connected SSE clients (notify.Hub).
type Publisher interface {
	Publish(ns ...task.Notification)
}

// Observer learns each reminder outcome with the delay from its scheduled time (metrics
// and the benchmark); optional.
type Observer func(outcome reminder.Outcome, delay time.Duration)

// ReminderWorker fires reminders, each job through the batcher that fires the jobs
// running at the same moment together.
type ReminderWorker struct {
	river.WorkerDefaults[ReminderArgs]
	Logger  *slog.Logger
	Observe Observer
	batches *batcher
}

// Work fires the reminder if its job is still current; the batch pushes the
// notifications after its commit. A failed push is not a failed job: the notification is
// committed and the client gets it on reconnect. A batch that fails is halved until the
// jobs that fail stand alone (batcher.fireSplitting); those fail and River retries them
// (a retry of a fired reminder does nothing).
func (w *ReminderWorker) Work(ctx context.Context, job *river.Job[ReminderArgs]) error {
	outcome, err := w.batches.fire(ctx, store.ReminderJob{ID: job.Args.ReminderID, Version: job.Args.Version})
	if err != nil {
		return err
	}
	delay := time.Since(job.ScheduledAt)
	if w.Observe != nil {
		w.Observe(outcome, delay)
	}
	w.Logger.DebugContext(ctx, "reminder job", "reminder_id", job.Args.ReminderID, "version", job.Args.Version,
		"outcome", string(outcome), "delay_ms", delay.Milliseconds())
	return nil
}

// FocusCloseWorker closes focus sessions left open.
type FocusCloseWorker struct {
	river.WorkerDefaults[FocusCloseArgs]
	Store  Closer
	Logger *slog.Logger
}

// Work closes the session if it is still open.
func (w *FocusCloseWorker) Work(ctx context.Context, job *river.Job[FocusCloseArgs]) error {
	closed, err := w.Store.CloseFocusSession(ctx, job.Args.UserID, job.Args.SessionID)
	if err != nil {
		return err
	}
	if closed {
		w.Logger.InfoContext(ctx, "focus session closed automatically", "session_id", job.Args.SessionID, "user_id", job.Args.UserID)
	}
	return nil
}

// Register adds both workers to workers.
func Register(workers *river.Workers, firer Firer, closer Closer, pub Publisher, logger *slog.Logger, observe Observer) {
	river.AddWorker(workers, &ReminderWorker{Logger: logger, Observe: observe,
		batches: newBatcher(firer, pub, ReminderBatch, ReminderConcurrency)})
	river.AddWorker(workers, &FocusCloseWorker{Store: closer, Logger: logger})
}
