-- +goose Up

-- Reminders of a task (API.md §3 "Reminders"). Each change of a reminder bumps version
-- and schedules a River job {reminder_id, version} for scheduled_at in the same
-- transaction; a job whose version is no longer the reminder's is stale and does nothing
-- (DESIGN-NOTES "Reminders as scheduled jobs"), so moving a reminder needs no cancel.
CREATE TABLE reminders (
    id             uuid PRIMARY KEY,
    task_id        uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL,
    type           text NOT NULL CHECK (type IN ('before', 'after', 'absolute')),
    -- Minutes before/after the task's due date; null for an absolute reminder.
    offset_minutes integer CHECK (offset_minutes >= 0),
    -- Null while a relative reminder's task has no due date (it is not scheduled then).
    scheduled_at   timestamptz,
    method         text NOT NULL CHECK (method IN ('in_app', 'push')),
    fired          boolean NOT NULL DEFAULT false,
    fired_at       timestamptz,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CHECK ((type = 'absolute') = (offset_minutes IS NULL)),
    CHECK (type <> 'absolute' OR scheduled_at IS NOT NULL)
);
-- A task's reminders (GET /tasks/{id}, the 5-per-task limit, rescheduling on a due change).
CREATE INDEX reminders_task ON reminders (task_id, created_at, id);
-- Erasure and listings by user.
CREATE INDEX reminders_user ON reminders (user_id, created_at DESC, id DESC);

-- Recurring templates. dtstart is the creation time, the DTSTART of rrule (stored in its
-- canonical form); next_due is the due date of the next instance to be made, null once
-- the rule is exhausted (then active is false). Templates do not count toward limits.
CREATE TABLE templates (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL,
    title              text NOT NULL,
    description        text NOT NULL DEFAULT '',
    priority           text NOT NULL CHECK (priority IN ('low', 'medium', 'high')),
    estimated_duration integer,
    rrule              text NOT NULL,
    dtstart            timestamptz NOT NULL,
    subtasks           text[] NOT NULL DEFAULT '{}',
    next_due           timestamptz,
    active             boolean NOT NULL DEFAULT true,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CHECK (active = false OR next_due IS NOT NULL)
);
CREATE INDEX templates_user_created ON templates (user_id, created_at DESC, id DESC);
-- A template's instances: "unless an open instance already has that date", and clearing
-- template_id when a template is deleted. (No foreign key: a recovered task may name a
-- template deleted meanwhile; the code clears it instead.)
CREATE INDEX tasks_template_due ON tasks (template_id, due_date) WHERE template_id IS NOT NULL;

-- Focus sessions. The partial unique index is the "one active session per user" rule
-- (409 FOCUS_SESSION_ACTIVE on its violation), safe under concurrent starts.
CREATE TABLE focus_sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    task_id         uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    elapsed_seconds integer CHECK (elapsed_seconds >= 0),
    -- user: POST /focus/stop; auto: closed by the job after 4 h.
    ended_by        text CHECK (ended_by IN ('user', 'auto')),
    CHECK ((ended_at IS NULL) = (ended_by IS NULL))
);
CREATE UNIQUE INDEX focus_sessions_one_active ON focus_sessions (user_id) WHERE ended_at IS NULL;
CREATE INDEX focus_sessions_user_started ON focus_sessions (user_id, started_at DESC, id DESC);
CREATE INDEX focus_sessions_task ON focus_sessions (task_id);

-- What achievements count, per user, changed in the transaction of each completion.
-- last_completion_day is the UTC day of the streak's last completion; current_streak is
-- as of that day (read through the streak rule, which shows 0 after a missed day).
CREATE TABLE user_stats (
    user_id             uuid PRIMARY KEY,
    lifetime_completed  integer NOT NULL DEFAULT 0 CHECK (lifetime_completed >= 0),
    focus_completions   integer NOT NULL DEFAULT 0 CHECK (focus_completions >= 0),
    notes_converted     integer NOT NULL DEFAULT 0 CHECK (notes_converted >= 0),
    current_streak      integer NOT NULL DEFAULT 0 CHECK (current_streak >= 0),
    longest_streak      integer NOT NULL DEFAULT 0 CHECK (longest_streak >= current_streak),
    last_completion_day date,
    updated_at          timestamptz NOT NULL
);

-- Unlocked achievements. The primary key makes each unlock happen once per user, whatever
-- races two completions run; perks are never taken back, so rows are never deleted
-- (except when the user is erased).
CREATE TABLE user_achievements (
    user_id        uuid NOT NULL,
    achievement_id text NOT NULL,
    unlocked_at    timestamptz NOT NULL,
    PRIMARY KEY (user_id, achievement_id)
);

-- The calendar feed's secret, one per user, stored as SHA-256 so a database read does
-- not reveal a usable feed URL. Issuing a new token replaces (revokes) the old one.
CREATE TABLE calendar_tokens (
    user_id      uuid PRIMARY KEY,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at   timestamptz NOT NULL
);

-- +goose Down
DROP TABLE calendar_tokens, user_achievements, user_stats, focus_sessions, templates, reminders;
DROP INDEX IF EXISTS tasks_template_due;
