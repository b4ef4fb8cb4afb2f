-- +goose Up
-- One row per AI provider call, for cost tracking: who, what, which model, tokens,
-- credits kept (0 when refunded), latency and how it ended.
CREATE TABLE request_log (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL,
    kind              text NOT NULL,
    model             text NOT NULL DEFAULT '',
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    credits           integer NOT NULL DEFAULT 0,
    latency_ms        integer NOT NULL DEFAULT 0,
    outcome           text NOT NULL,
    operation_id      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL
);
CREATE INDEX request_log_user_created ON request_log (user_id, created_at DESC, id DESC);
CREATE INDEX request_log_created ON request_log (created_at);

-- Requests per (session, task): a warning from the 5th, refused after the 10th; the
-- window restarts when expires_at has passed (24 h after its first request).
CREATE TABLE task_request_counters (
    session_id  text NOT NULL,
    task_id     uuid NOT NULL,
    user_id     uuid NOT NULL,
    count       integer NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (session_id, task_id)
);
CREATE INDEX task_request_counters_user ON task_request_counters (user_id);
CREATE INDEX task_request_counters_expires ON task_request_counters (expires_at);

-- Charges that were given back. A request retried with the same Idempotency-Key after a
-- refund is charged again under the next attempt's operation id.
CREATE TABLE credit_refunds (
    operation_id      text PRIMARY KEY,
    base_operation_id text NOT NULL,
    user_id           uuid NOT NULL,
    created_at        timestamptz NOT NULL
);
CREATE INDEX credit_refunds_base ON credit_refunds (user_id, base_operation_id);

-- The end of each voice note's background transcription; the primary key makes the
-- completed/failed event go out once however often tasks.note.voice_created is delivered.
CREATE TABLE voice_transcriptions (
    note_id     uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    status      text NOT NULL CHECK (status IN ('completed', 'failed')),
    reason      text NOT NULL DEFAULT '',
    finished_at timestamptz NOT NULL
);
CREATE INDEX voice_transcriptions_user ON voice_transcriptions (user_id);

-- +goose Down
DROP TABLE voice_transcriptions;
DROP TABLE credit_refunds;
DROP TABLE task_request_counters;
DROP TABLE request_log;
