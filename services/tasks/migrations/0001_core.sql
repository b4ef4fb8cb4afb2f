-- +goose Up

-- Per-user counters: the atomic limit check (DESIGN-NOTES "Limits under concurrency") and
-- the per-user lock that serialises tombstone eviction.
CREATE TABLE user_counts (
    user_id uuid PRIMARY KEY,
    tasks   integer NOT NULL DEFAULT 0 CHECK (tasks >= 0),
    notes   integer NOT NULL DEFAULT 0 CHECK (notes >= 0)
);

CREATE TABLE tasks (
    id                      uuid PRIMARY KEY,
    user_id                 uuid NOT NULL,
    title                   text NOT NULL,
    description             text NOT NULL DEFAULT '',
    priority                text NOT NULL CHECK (priority IN ('low', 'medium', 'high')),
    due_date                timestamptz,
    estimated_duration      integer,
    focus_time_seconds      integer NOT NULL DEFAULT 0,
    completed               boolean NOT NULL DEFAULT false,
    completed_at            timestamptz,
    completed_by            text NOT NULL DEFAULT '' CHECK (completed_by IN ('', 'manual', 'auto', 'force')),
    hidden                  boolean NOT NULL DEFAULT false,
    archived                boolean NOT NULL DEFAULT false,
    template_id             uuid,
    subtask_count           integer NOT NULL DEFAULT 0,
    subtask_completed_count integer NOT NULL DEFAULT 0,
    version                 integer NOT NULL DEFAULT 1,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);
-- The list order (newest first) and every filter start from the user's rows.
CREATE INDEX tasks_user_created ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_user_due ON tasks (user_id, due_date) WHERE due_date IS NOT NULL;

CREATE TABLE subtasks (
    id           uuid PRIMARY KEY,
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL,
    title        text NOT NULL,
    completed    boolean NOT NULL DEFAULT false,
    completed_at timestamptz,
    order_index  integer NOT NULL CHECK (order_index >= 0),
    source       text NOT NULL CHECK (source IN ('user', 'ai')),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    -- Deferred so a reorder may pass through duplicates inside its transaction.
    CONSTRAINT subtasks_task_order UNIQUE (task_id, order_index) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX subtasks_user ON subtasks (user_id);

CREATE TABLE notes (
    id                     uuid PRIMARY KEY,
    user_id                uuid NOT NULL,
    content                text NOT NULL DEFAULT '',
    archived               boolean NOT NULL DEFAULT false,
    voice_url              text NOT NULL DEFAULT '',
    voice_duration_seconds integer,
    transcription_status   text NOT NULL DEFAULT '' CHECK (transcription_status IN ('', 'pending', 'completed', 'failed')),
    version                integer NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);
CREATE INDEX notes_user_created ON notes (user_id, created_at DESC, id DESC);

-- A deleted task (with subtasks and reminders) or note, recoverable for 7 days.
CREATE TABLE tombstones (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    entity_type text NOT NULL CHECK (entity_type IN ('task', 'note')),
    entity_id   uuid NOT NULL,
    title       text NOT NULL DEFAULT '',
    snapshot    jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX tombstones_user_created ON tombstones (user_id, created_at DESC, id DESC);
CREATE INDEX tombstones_expires ON tombstones (expires_at);

CREATE TABLE activity (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    entity_type text NOT NULL,
    entity_id   text NOT NULL DEFAULT '',
    action      text NOT NULL,
    source      text NOT NULL CHECK (source IN ('user', 'ai', 'system')),
    details     jsonb NOT NULL DEFAULT '{}',
    -- The event that caused a system row, so a redelivered event records it once.
    event_id    text UNIQUE,
    created_at  timestamptz NOT NULL
);
CREATE INDEX activity_user_created ON activity (user_id, created_at DESC, id DESC);
CREATE INDEX activity_user_entity ON activity (user_id, entity_id, created_at DESC);
CREATE INDEX activity_created ON activity (created_at);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    user_id    uuid NOT NULL,
    type       text NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL DEFAULT '',
    action_url text NOT NULL DEFAULT '',
    task_id    uuid,
    read       boolean NOT NULL DEFAULT false,
    read_at    timestamptz,
    event_id   text UNIQUE,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX notifications_user_created ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_user_seq ON notifications (user_id, seq);

-- AI actions applied through svc.tasks.actions.apply, so a retried operation is a no-op
-- that answers what the first one did.
CREATE TABLE applied_operations (
    operation_id text NOT NULL,
    user_id      uuid NOT NULL,
    action_type  text NOT NULL,
    task_id      uuid NOT NULL,
    unlocked     jsonb NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, operation_id)
);
CREATE INDEX applied_operations_created ON applied_operations (created_at);

-- +goose Down
DROP TABLE applied_operations, notifications, activity, tombstones, notes, subtasks, tasks, user_counts;
