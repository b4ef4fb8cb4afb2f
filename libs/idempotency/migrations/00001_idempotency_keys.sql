-- +goose Up
-- One row per (user, Idempotency-Key): the request's fingerprint, whether it is still
-- running, and once done the response to replay (API.md §1, DESIGN-NOTES "Idempotency keys").
CREATE TABLE idempotency_keys (
    user_id          text        NOT NULL,
    key              text        NOT NULL,
    method           text        NOT NULL,
    path             text        NOT NULL,
    body_sha256      bytea       NOT NULL,
    state            text        NOT NULL CHECK (state IN ('in_flight', 'done')),
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    locked_at        timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (user_id, key),
    CHECK (state = 'in_flight' OR response_status IS NOT NULL)
);

-- The purge job deletes by expiry.
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
