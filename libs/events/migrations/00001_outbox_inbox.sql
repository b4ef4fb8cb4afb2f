-- The outbox and inbox of package events, created in the service's schema ({{schema}} is
-- replaced by events.Migrate). History in {{schema}}.events_schema_migrations.

-- +goose Up
CREATE TABLE {{schema}}.outbox (
    id           uuid PRIMARY KEY,
    subject      text NOT NULL,
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

-- What the relay reads: unpublished rows in (created_at, id) order. Stays small because
-- published rows leave it.
CREATE INDEX outbox_unpublished_idx ON {{schema}}.outbox (created_at, id) WHERE published_at IS NULL;

-- What replay and the retention job read (published_at >= created_at, so a purge of rows
-- published before a time narrows by created_at first).
CREATE INDEX outbox_created_at_idx ON {{schema}}.outbox (created_at, id);

CREATE TABLE {{schema}}.inbox (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX inbox_processed_at_idx ON {{schema}}.inbox (processed_at);

-- +goose Down
DROP TABLE {{schema}}.inbox;
DROP TABLE {{schema}}.outbox;
