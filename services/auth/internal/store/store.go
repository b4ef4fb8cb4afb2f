// Package store is the auth schema's SQL: users, sessions and refresh tokens, one
// transaction per use case, with the outbox rows of auth's events written in the same
// transaction as the change they announce.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/services/auth/internal/account"
)

// Store runs auth's use cases against its schema.
type Store struct {
	pool *pgxpool.Pool
}

// New is a Store on pool (search_path = auth).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// signInAttempts bounds the retries of a first sign-in that lost a race on the unique
// email or google_id to a concurrent one; the retry finds the row the winner inserted.
const signInAttempts = 3

// ErrEmailTaken is a Google sign-in whose email belongs to a user linked to another Google
// account (Google reassigned the address). We never move an account to a new Google
// subject on the strength of the email alone.
var ErrEmailTaken = errors.New("the email belongs to a user of another Google account")

// Issue is a fresh refresh token to store: its hash and when it expires.
type Issue struct {
	Hash      []byte
	ExpiresAt time.Time
}

// SignIn finds or creates the user of id, refreshes its profile, and starts a session
// whose first refresh token is tok. A new user's auth.user.created goes to the outbox in
// the same transaction. created reports a new user.
func (s *Store) SignIn(ctx context.Context, id account.Identity, client account.Client, tok Issue, now time.Time) (u account.User, sess account.Session, created bool, err error) {
	for attempt := 1; ; attempt++ {
		err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			u, created, err = upsertUser(ctx, tx, id, now)
			if err != nil {
				return err
			}
			sess, err = startSession(ctx, tx, u.ID, client, tok, now)
			return err
		})
		if err == nil || attempt == signInAttempts || !pg.IsUniqueViolation(err, "") {
			return u, sess, created, err
		}
	}
}

const userColumns = `id, COALESCE(google_id, ''), email, name, avatar_url, timezone, tier, created_at, updated_at`

func scanUser(row pgx.Row) (account.User, error) {
	var u account.User
	var id uuid.UUID
	err := row.Scan(&id, &u.GoogleID, &u.Email, &u.Name, &u.AvatarURL, &u.Timezone, &u.Tier, &u.CreatedAt, &u.UpdatedAt)
	u.ID = id.String()
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, err
}

// upsertUser: a Google identity is found by its subject, else by email (a dev-login user
// of that address is linked to it); a dev identity by email. Name and avatar follow the
// identity on every sign-in; the email never changes.
func upsertUser(ctx context.Context, tx pgx.Tx, id account.Identity, now time.Time) (account.User, bool, error) {
	email := account.NormalizeEmail(id.Email)
	name := account.ProfileName(id)
	var (
		u   account.User
		err error
	)
	found := false
	if id.GoogleID != "" {
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE google_id = $1 FOR UPDATE`, id.GoogleID))
		if err == nil {
			found = true
		} else if !pg.IsNoRows(err) {
			return u, false, err
		}
	}
	if !found {
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1 FOR UPDATE`, email))
		if err == nil {
			found = true
			if id.GoogleID != "" && u.GoogleID != "" && u.GoogleID != id.GoogleID {
				return u, false, apperr.Wrap(ErrEmailTaken, apperr.GoogleAuthFailed, "Google sign-in failed")
			}
		} else if !pg.IsNoRows(err) {
			return u, false, err
		}
	}
	if found {
		// A dev login without a name keeps the stored one.
		if id.GoogleID == "" && id.Name == "" {
			name = u.Name
		}
		avatar := id.AvatarURL
		if id.GoogleID == "" {
			avatar = u.AvatarURL
		}
		u, err = scanUser(tx.QueryRow(ctx, `
			UPDATE users SET name = $2, avatar_url = $3, google_id = COALESCE(google_id, $4), updated_at = $5
			WHERE id = $1
			RETURNING `+userColumns,
			u.ID, name, avatar, nullIfEmpty(id.GoogleID), now))
		return u, false, err
	}
	userID, err := uuid.NewV7()
	if err != nil {
		return u, false, err
	}
	u, err = scanUser(tx.QueryRow(ctx, `
		INSERT INTO users (id, google_id, email, name, avatar_url, timezone, tier, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
		RETURNING `+userColumns,
		userID, nullIfEmpty(id.GoogleID), email, name, id.AvatarURL, account.DefaultTimezone, account.TierFree, now))
	if err != nil {
		return u, false, err
	}
	ev, err := newEvent(authevents.TypeUserCreated, u.ID, authevents.UserCreated{
		UserID: u.ID, Email: u.Email, Name: u.Name, CreatedAt: u.CreatedAt,
	}, now)
	if err != nil {
		return u, false, err
	}
	return u, true, events.Enqueue(ctx, tx, ev)
}

func newEvent(typ, userID string, data any, now time.Time) (events.Event, error) {
	ev, err := events.New(authevents.Source, typ, userID, data)
	if err != nil {
		return ev, err
	}
	// The event happened at the service's clock, which tests control.
	ev.Time = now.UTC()
	return ev, nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func startSession(ctx context.Context, tx pgx.Tx, userID string, client account.Client, tok Issue, now time.Time) (account.Session, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return account.Session{}, err
	}
	sess := account.Session{
		ID: id.String(), UserID: userID, CreatedAt: now, LastUsedAt: now, ExpiresAt: tok.ExpiresAt,
		UserAgent: client.UserAgent, IP: client.IP,
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip)
		VALUES ($1, $2, $3, $3, $4, $5, $6)`,
		sess.ID, userID, now, tok.ExpiresAt, client.UserAgent, client.IP); err != nil {
		return sess, err
	}
	return sess, insertToken(ctx, tx, sess.ID, tok, now)
}

func insertToken(ctx context.Context, tx pgx.Tx, sessionID string, tok Issue, now time.Time) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO refresh_tokens (token_sha256, session_id, issued_at, expires_at)
		VALUES ($1, $2, $3, $4)`, tok.Hash, sessionID, now, tok.ExpiresAt)
	return err
}

// Rotate spends the refresh token whose hash is old and stores next in its place, in one
// transaction that holds the old token's row lock: of two concurrent rotations of one
// token, the second waits, then sees it used. A used token revokes its whole session
// (committed) and answers REFRESH_TOKEN_REUSED; unknown, expired or revoked answer
// INVALID_REFRESH_TOKEN. It returns the user (for the access token's claims) and session.
func (s *Store) Rotate(ctx context.Context, old []byte, next Issue, now time.Time) (account.User, account.Session, error) {
	var (
		u        account.User
		sess     account.Session
		rejected error
	)
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var tok account.RefreshToken
		var sid uuid.UUID
		err := tx.QueryRow(ctx, `
			SELECT session_id, issued_at, expires_at, used_at FROM refresh_tokens
			WHERE token_sha256 = $1 FOR UPDATE`, old).Scan(&sid, &tok.IssuedAt, &tok.ExpiresAt, &tok.UsedAt)
		if pg.IsNoRows(err) {
			rejected = account.ErrInvalidRefreshToken
			return nil
		}
		if err != nil {
			return err
		}
		tok.SessionID = sid.String()
		// Read after the lock, in a new statement, so a revocation committed while we
		// waited is seen.
		sess, err = getSession(ctx, tx, tok.SessionID, true)
		if err != nil {
			return err
		}
		if rejected = account.RotationError(tok, sess, now); rejected != nil {
			if errors.Is(rejected, account.ErrRefreshTokenReused) {
				_, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, sess.ID, now)
				return err
			}
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $2 WHERE token_sha256 = $1`, old, now); err != nil {
			return err
		}
		if err := insertToken(ctx, tx, sess.ID, next, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE sessions SET last_used_at = $2, expires_at = $3 WHERE id = $1`, sess.ID, now, next.ExpiresAt); err != nil {
			return err
		}
		sess.LastUsedAt, sess.ExpiresAt = now, next.ExpiresAt
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, sess.UserID))
		return err
	})
	if err != nil {
		return u, sess, fmt.Errorf("rotate refresh token: %w", err)
	}
	return u, sess, rejected
}

const sessionColumns = `id, user_id, created_at, last_used_at, expires_at, revoked_at, user_agent, ip`

func scanSession(row pgx.Row) (account.Session, error) {
	var s account.Session
	var id, uid uuid.UUID
	err := row.Scan(&id, &uid, &s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &s.RevokedAt, &s.UserAgent, &s.IP)
	s.ID, s.UserID = id.String(), uid.String()
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.LastUsedAt.UTC(), s.ExpiresAt.UTC()
	return s, err
}

func getSession(ctx context.Context, q pg.Querier, id string, lock bool) (account.Session, error) {
	sql := `SELECT ` + sessionColumns + ` FROM sessions WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	return scanSession(q.QueryRow(ctx, sql, id))
}

// Logout revokes the session of the refresh token whose hash is h. Nothing happens for an
// unknown token: logout answers the same whatever was presented.
func (s *Store) Logout(ctx context.Context, h []byte, now time.Time) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE sessions SET revoked_at = $2
		WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_sha256 = $1) AND revoked_at IS NULL`, h, now)
	return err
}

// RevokeSession signs one of the user's sessions out. Another user's session, or none,
// is NOT_FOUND; revoking a revoked session again succeeds.
func (s *Store) RevokeSession(ctx context.Context, userID, sessionID string, now time.Time) error {
	if uuid.Validate(sessionID) != nil {
		return account.ErrSessionNotFound
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE sessions SET revoked_at = COALESCE(revoked_at, $3)
		WHERE user_id = $1 AND id = $2`, userID, sessionID, now)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return account.ErrSessionNotFound
	}
	return nil
}

// ListSessions is a page of the user's live sessions, newest first, and their total.
func (s *Store) ListSessions(ctx context.Context, userID string, offset, limit int, now time.Time) ([]account.Session, int, error) {
	var total int
	if err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2`,
		userID, now).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
		ORDER BY created_at DESC, id DESC
		LIMIT $3 OFFSET $4`, userID, now, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (account.Session, error) { return scanSession(r) })
	return list, total, err
}

// User is the user with id, or NOT_FOUND.
func (s *Store) User(ctx context.Context, userID string) (account.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, userID))
	if pg.IsNoRows(err) {
		return u, account.ErrUserNotFound
	}
	return u, err
}

// UpdateProfile applies a validated change.
func (s *Store) UpdateProfile(ctx context.Context, userID string, c account.ProfileChange, now time.Time) (account.User, error) {
	var u account.User
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, userID))
		if pg.IsNoRows(err) {
			return account.ErrUserNotFound
		}
		if err != nil {
			return err
		}
		u = c.Apply(u)
		u, err = scanUser(tx.QueryRow(ctx, `
			UPDATE users SET name = $2, timezone = $3, updated_at = $4 WHERE id = $1
			RETURNING `+userColumns, userID, u.Name, u.Timezone, now))
		return err
	})
	return u, err
}

// DeleteUser erases the user with its sessions and tokens and queues auth.user.deleted,
// in one transaction. Deleting a user already gone does nothing and is not an error, so
// a retried DELETE answers the same.
func (s *Store) DeleteUser(ctx context.Context, userID string, now time.Time) (deleted bool, err error) {
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, userID)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		deleted = true
		ev, err := newEvent(authevents.TypeUserDeleted, userID, authevents.UserDeleted{UserID: userID, DeletedAt: now.UTC()}, now)
		if err != nil {
			return err
		}
		return events.Enqueue(ctx, tx, ev)
	})
	return deleted, err
}

// ApplyTier sets the user's tier from a billing fact in tx (the consumer's transaction,
// which also records the event in the inbox). A fact older than the last one applied, by
// (Seq, OccurredAt), changes nothing; so does one about a user who no longer exists.
func ApplyTier(ctx context.Context, tx pgx.Tx, c account.TierChange, now time.Time) (applied bool, err error) {
	tag, err := tx.Exec(ctx, `
		UPDATE users SET tier = $2, tier_seq = $3, tier_changed_at = $4, updated_at = GREATEST(updated_at, $5)
		WHERE id = $1 AND (tier_seq, tier_changed_at) < ($3, $4)`,
		c.UserID, c.Tier, c.Seq, c.OccurredAt, now)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// Purge deletes expired refresh tokens, and sessions that can no longer refresh: expired
// ones, and revoked ones after RevokedSessionRetention. Spent (used) tokens stay until
// they expire, because reuse detection needs them for as long as they could be replayed.
func (s *Store) Purge(ctx context.Context, now time.Time) (tokens, sessions int64, err error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM refresh_tokens WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, 0, err
	}
	tokens = tag.RowsAffected()
	tag, err = s.pool.Exec(ctx, `
		DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at <= $2`,
		now, now.Add(-account.RevokedSessionRetention))
	if err != nil {
		return tokens, 0, err
	}
	return tokens, tag.RowsAffected(), nil
}
