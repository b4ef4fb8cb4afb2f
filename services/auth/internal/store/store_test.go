package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"
	"github.com/perpetua-flow/backend/services/auth/internal/account"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type bundle struct {
	pool  *pgxpool.Pool
	store *store.Store
	now   time.Time
}

func setup(t *testing.T) bundle {
	t.Helper()
	pool := pgtest.NewPool(t, "auth-store", store.Schema, func(ctx context.Context, u string) error {
		p, err := pg.Open(ctx, pg.Config{URL: u, Schema: store.Schema})
		if err != nil {
			return err
		}
		defer p.Close()
		return store.Migrate(ctx, p)
	})
	return bundle{pool: pool, store: store.New(pool), now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
}

func (b bundle) signIn(t *testing.T, email string, at time.Time) (account.Session, string) {
	t.Helper()
	raw, hash, err := account.NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}
	_, sess, _, err := b.store.SignIn(context.Background(), account.Identity{Email: email}, account.Client{}, store.Issue{Hash: hash, ExpiresAt: at.Add(account.RefreshTokenTTL)}, at)
	if err != nil {
		t.Fatal(err)
	}
	return sess, raw
}

func (b bundle) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPurgeKeepsWhatReuseDetectionNeeds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// A live session, rotated once: its spent token stays (reuse detection), both rows stay.
	_, live := b.signIn(t, "live@example.com", b.now)
	_, next, _ := account.NewRefreshToken()
	if _, _, err := b.store.Rotate(ctx, account.HashRefreshToken(live), store.Issue{Hash: next, ExpiresAt: b.now.Add(account.RefreshTokenTTL)}, b.now); err != nil {
		t.Fatal(err)
	}
	// An expired session: 8 days old, never refreshed.
	b.signIn(t, "old@example.com", b.now.Add(-8*24*time.Hour))
	// A session revoked 8 days ago (its token still unexpired by the clock here).
	revoked, revokedTok := b.signIn(t, "gone@example.com", b.now.Add(-time.Hour))
	if err := b.store.Logout(ctx, account.HashRefreshToken(revokedTok), b.now.Add(-8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A session revoked just now stays for RevokedSessionRetention.
	_, recentTok := b.signIn(t, "recent@example.com", b.now)
	if err := b.store.Logout(ctx, account.HashRefreshToken(recentTok), b.now); err != nil {
		t.Fatal(err)
	}

	tokens, sessions, err := b.store.Purge(ctx, b.now)
	if err != nil {
		t.Fatal(err)
	}
	if tokens != 1 || sessions != 2 {
		t.Fatalf("purged %d tokens and %d sessions, want 1 and 2", tokens, sessions)
	}
	if n := b.count(t, "sessions"); n != 2 {
		t.Fatalf("%d sessions left, want 2", n)
	}
	if n := b.count(t, "refresh_tokens"); n != 3 {
		t.Fatalf("%d tokens left, want 3 (spent + current of the live session, the recent one)", n)
	}
	var exists bool
	if err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)`, revoked.ID).Scan(&exists); err != nil || exists {
		t.Fatalf("old revoked session kept: %v %v", exists, err)
	}
	// The spent token of the live session is still recognised as reuse.
	if _, _, err := b.store.Rotate(ctx, account.HashRefreshToken(live), store.Issue{Hash: make([]byte, 32), ExpiresAt: b.now.Add(time.Hour)}, b.now); !errors.Is(err, account.ErrRefreshTokenReused) {
		t.Fatalf("reuse after purge: %v", err)
	}
}
