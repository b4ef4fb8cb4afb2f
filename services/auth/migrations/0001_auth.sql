-- +goose Up
-- Users. email is unique case-insensitively (stored lower-case); google_id is unique when
-- set (dev-login users have none). tier_seq/tier_changed_at remember the last applied
-- billing fact so an older, redelivered one is ignored.
CREATE TABLE users (
    id              uuid PRIMARY KEY,
    google_id       text,
    email           text NOT NULL,
    name            text NOT NULL,
    avatar_url      text NOT NULL DEFAULT '',
    timezone        text NOT NULL DEFAULT 'UTC',
    tier            text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro')),
    tier_seq        bigint NOT NULL DEFAULT 0,
    tier_changed_at timestamptz NOT NULL DEFAULT '-infinity',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_google_id_key ON users (google_id) WHERE google_id IS NOT NULL;

-- A session is one signed-in device and the family of its refresh tokens. expires_at is
-- the expiry of its newest token, so the list shows only sessions that can still refresh.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    user_agent   text NOT NULL DEFAULT '',
    ip           text NOT NULL DEFAULT ''
);
-- GET /auth/sessions: the user's live sessions, newest first.
CREATE INDEX sessions_user_live_idx ON sessions (user_id, created_at DESC, id DESC) WHERE revoked_at IS NULL;
-- The purge job.
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens, stored only as SHA-256 of the opaque value.
CREATE TABLE refresh_tokens (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
