-- Billing's ledger, subscriptions and payments (DESIGN-NOTES.md "Credits ledger").

-- +goose Up

-- One row per user: the lock every grant, consume and refund of that user takes first
-- (SELECT ... FOR UPDATE), so one user's operations serialise and users never block
-- each other. created_at is the sign-up time (days after it earn daily credits).
CREATE TABLE credit_accounts (
    user_id     uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    -- daily_perk is the sum of the user's daily_ai_credits perks (credit_perks).
    daily_perk  integer NOT NULL DEFAULT 0 CHECK (daily_perk >= 0),
    updated_at  timestamptz NOT NULL
);

CREATE TABLE credit_perks (
    user_id        uuid NOT NULL REFERENCES credit_accounts ON DELETE CASCADE,
    achievement_id text NOT NULL,
    value          integer NOT NULL CHECK (value >= 0),
    unlocked_at    timestamptz NOT NULL,
    PRIMARY KEY (user_id, achievement_id)
);

-- A batch of credits and what is left of it. remaining never goes below zero (the
-- CHECK is the last line of defence behind the row lock).
CREATE TABLE credit_grants (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES credit_accounts ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('daily', 'subscription', 'purchased', 'kickstart')),
    amount      integer NOT NULL CHECK (amount > 0),
    remaining   integer NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at  timestamptz,
    -- expired: the expire ledger row for what was left has been written.
    expired     boolean NOT NULL DEFAULT false,
    day         date CHECK ((kind = 'daily') = (day IS NOT NULL)),
    -- (source, source_ref) names what caused the grant (a payment, an event, a day), so
    -- a redelivered event or webhook grants once.
    source      text NOT NULL,
    source_ref  text NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT credit_grants_source_key UNIQUE (user_id, source, source_ref)
);
CREATE UNIQUE INDEX credit_grants_daily_key ON credit_grants (user_id, day) WHERE kind = 'daily';
CREATE INDEX credit_grants_usable_idx ON credit_grants (user_id) WHERE remaining > 0;
-- What the expiry job scans: grants past their end whose leftover is not yet written off.
CREATE INDEX credit_grants_expiring_idx ON credit_grants (expires_at)
    WHERE remaining > 0 AND NOT expired AND expires_at IS NOT NULL;

-- One consume, keyed by the caller's operation id (scoped per user, like the
-- idempotency keys it usually comes from); a retry finds it and charges nothing.
CREATE TABLE credit_operations (
    user_id      uuid NOT NULL REFERENCES credit_accounts ON DELETE CASCADE,
    operation_id text NOT NULL,
    amount       integer NOT NULL CHECK (amount > 0),
    reason       text NOT NULL,
    refunded     integer,
    created_at   timestamptz NOT NULL,
    refunded_at  timestamptz,
    PRIMARY KEY (user_id, operation_id)
);

-- What one consume took from each grant: a refund walks these back.
CREATE TABLE credit_movements (
    user_id      uuid NOT NULL,
    operation_id text NOT NULL,
    grant_id     uuid NOT NULL REFERENCES credit_grants ON DELETE CASCADE,
    amount       integer NOT NULL CHECK (amount > 0),
    PRIMARY KEY (user_id, operation_id, grant_id),
    FOREIGN KEY (user_id, operation_id) REFERENCES credit_operations ON DELETE CASCADE
);

-- The history of API.md §5: one row per grant, consume, refund, expiry and carryover
-- (per kind), newest first by seq.
CREATE TABLE credit_ledger (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            uuid NOT NULL UNIQUE,
    user_id       uuid NOT NULL REFERENCES credit_accounts ON DELETE CASCADE,
    credit_type   text NOT NULL,
    operation     text NOT NULL CHECK (operation IN ('grant', 'consume', 'refund', 'expire', 'carryover')),
    category      text NOT NULL,
    amount        integer NOT NULL,
    balance_after integer NOT NULL CHECK (balance_after >= 0),
    description   text NOT NULL,
    reference     text NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX credit_ledger_user_idx ON credit_ledger (user_id, seq DESC);

-- One Pro subscription per user; a resubscription reuses the row with a new period.
CREATE TABLE subscriptions (
    id                   uuid PRIMARY KEY,
    user_id              uuid NOT NULL UNIQUE,
    provider_id          text NOT NULL DEFAULT '',
    status               text NOT NULL CHECK (status IN ('active', 'past_due', 'grace', 'cancelled', 'expired')),
    period_start         timestamptz NOT NULL,
    period_end           timestamptz NOT NULL,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    failed_payments      integer NOT NULL DEFAULT 0,
    grace_ends_at        timestamptz,
    seq                  bigint NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
-- What the expiry job scans.
CREATE INDEX subscriptions_grace_idx ON subscriptions (grace_ends_at) WHERE status = 'grace';
CREATE INDEX subscriptions_cancelled_idx ON subscriptions (period_end) WHERE status = 'cancelled';

-- Hosted payments billing started (id = the session id it answered) and what became of
-- them. provider_payment_id is Checkout.com's payment id once known.
CREATE TABLE payments (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('subscription', 'credits')),
    credits             integer NOT NULL CHECK (credits >= 0),
    price_minor         bigint NOT NULL,
    currency            text NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'captured', 'declined', 'failed')),
    provider_session_id text NOT NULL DEFAULT '',
    provider_payment_id text UNIQUE,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);

-- Every Checkout.com webhook event id that has acted, so each acts once.
CREATE TABLE webhook_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    user_id     uuid,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX webhook_events_user_idx ON webhook_events (user_id) WHERE user_id IS NOT NULL;

-- +goose Down
DROP TABLE webhook_events;
DROP TABLE payments;
DROP TABLE subscriptions;
DROP TABLE credit_ledger;
DROP TABLE credit_movements;
DROP TABLE credit_operations;
DROP TABLE credit_grants;
DROP TABLE credit_perks;
DROP TABLE credit_accounts;
