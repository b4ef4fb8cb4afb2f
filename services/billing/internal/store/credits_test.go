package store_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/services/billing/internal/credit"
)

func (f *fixture) consume(t testing.TB, user string, n int) error {
	t.Helper()
	_, err := f.store.Consume(f.ctx, user, uuid.NewString(), n, "ai.chat", f.clock.Now())
	return err
}

func mustConsume(t testing.TB, f *fixture, user string, n int) {
	t.Helper()
	if err := f.consume(t, user, n); err != nil {
		t.Fatalf("consume %d: %v", n, err)
	}
}

func wantBalance(t testing.TB, f *fixture, user string, want credit.Balance) {
	t.Helper()
	got := f.balance(t, user)
	want.DailyResetsAt = got.DailyResetsAt
	if got != want {
		t.Fatalf("balance = %+v, want %+v", got, want)
	}
	if l, g := f.ledgerSum(t, user); l != got.Total() || g != got.Total() {
		t.Fatalf("ledger sums to %d, grants hold %d, balance is %d", l, g, got.Total())
	}
}

func TestKickstartOnceAndDailyGrant(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	f.signUp(t, user)
	f.signUp(t, user) // redelivered auth.user.created
	wantBalance(t, f, user, credit.Balance{Kickstart: 5})

	// Still the sign-up day: no daily grant.
	f.clock.Set(credit.NextMidnight(start).Add(-time.Second))
	wantBalance(t, f, user, credit.Balance{Kickstart: 5})

	// The next UTC day (also a new month): 10 daily, once however often it is read.
	f.clock.Set(credit.NextMidnight(start))
	wantBalance(t, f, user, credit.Balance{Daily: 10, Kickstart: 5})
	wantBalance(t, f, user, credit.Balance{Daily: 10, Kickstart: 5})
	if b := f.balance(t, user); !b.DailyResetsAt.Equal(time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("daily_resets_at = %v", b.DailyResetsAt)
	}

	// A streak perk raises the next day's grant, once per achievement.
	for range 2 {
		err := pg.InTx(f.ctx, f.pool, func(tx pgx.Tx) error {
			return f.store.AddPerk(f.ctx, tx, user, "streak_7", 3, f.clock.Now())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mustConsume(t, f, user, 4)
	f.clock.Advance(24 * time.Hour)
	wantBalance(t, f, user, credit.Balance{Daily: 13, Kickstart: 5})

	// Yesterday's 6 leftover daily credits were written off as an expire row.
	entries, _, err := f.store.History(f.ctx, user, httpx.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range entries {
		ops = append(ops, fmt.Sprintf("%s %s %+d → %d", e.Operation, e.CreditType, e.Amount, e.BalanceAfter))
	}
	want := []string{"grant daily +13 → 18", "expire daily -6 → 5", "consume daily -4 → 11", "grant daily +10 → 15", "grant kickstart +5 → 5"}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Fatalf("history (newest first):\n%v\nwant\n%v", ops, want)
	}
}

// TestScenario2Credits is the ledger half of API.md §10 scenario 2 (the webhook that
// activates Pro is signed and sent over HTTP in main_test.go).
func TestScenario2Credits(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	f.signUp(t, user)
	wantBalance(t, f, user, credit.Balance{Kickstart: 5})
	mustConsume(t, f, user, 1) // chat
	mustConsume(t, f, user, 1) // generate-subtasks
	wantBalance(t, f, user, credit.Balance{Kickstart: 3})

	f.clock.Set(credit.NextMidnight(start).Add(9 * time.Hour))
	wantBalance(t, f, user, credit.Balance{Daily: 10, Kickstart: 3})
	for range 10 {
		mustConsume(t, f, user, 1)
	}
	wantBalance(t, f, user, credit.Balance{Daily: 0, Kickstart: 3})

	f.applyWebhook(t, f.captured(user, "subscription", 0))
	wantBalance(t, f, user, credit.Balance{Subscription: 50, Kickstart: 3})
	mustConsume(t, f, user, 10) // a 61–120 s transcription
	wantBalance(t, f, user, credit.Balance{Subscription: 40, Kickstart: 3})

	mustConsume(t, f, user, 43)
	before, _ := f.ledgerSum(t, user)
	err := f.consume(t, user, 1)
	if apperr.CodeOf(err) != apperr.InsufficientCredits {
		t.Fatalf("consume at 0 = %v, want INSUFFICIENT_CREDITS", err)
	}
	e, _ := apperr.As(err)
	if len(e.Details) == 0 || e.Details[1] != (apperr.Detail{Field: "total", Message: "0"}) {
		t.Fatalf("details = %v", e.Details)
	}
	if after, _ := f.ledgerSum(t, user); after != before {
		t.Fatal("a refused consume changed the ledger")
	}
	wantBalance(t, f, user, credit.Balance{})
}

func TestRefund(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	f.signUp(t, user)
	f.clock.Set(credit.NextMidnight(start).Add(time.Hour))
	f.grantPurchased(t, user, 4)
	wantBalance(t, f, user, credit.Balance{Daily: 10, Purchased: 4, Kickstart: 5})

	op := uuid.NewString()
	res, err := f.store.Consume(f.ctx, user, op, 16, "ai.transcribe", f.clock.Now())
	if err != nil || res.Charged != 16 {
		t.Fatalf("consume: %+v %v", res, err)
	}
	wantBalance(t, f, user, credit.Balance{Kickstart: 3})

	// A retry of the same operation charges nothing more.
	res, err = f.store.Consume(f.ctx, user, op, 16, "ai.transcribe", f.clock.Now())
	if err != nil || !res.Replayed || res.Charged != 16 {
		t.Fatalf("retry: %+v %v", res, err)
	}
	wantBalance(t, f, user, credit.Balance{Kickstart: 3})

	for i := range 2 {
		r, err := f.store.Refund(f.ctx, user, op, "provider failed", f.clock.Now())
		if err != nil || r.Refunded != 16 || r.Replayed != (i == 1) {
			t.Fatalf("refund %d: %+v %v", i, r, err)
		}
		wantBalance(t, f, user, credit.Balance{Daily: 10, Purchased: 4, Kickstart: 5})
	}
	if _, err := f.store.Refund(f.ctx, user, uuid.NewString(), "", f.clock.Now()); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("refund of an unknown operation: %v", err)
	}

	// Credits taken from a daily grant that has expired since are not restored.
	op2 := uuid.NewString()
	if _, err := f.store.Consume(f.ctx, user, op2, 12, "ai.chat", f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(credit.NextMidnight(f.clock.Now()).Add(time.Minute))
	r, err := f.store.Refund(f.ctx, user, op2, "late", f.clock.Now())
	if err != nil || r.Refunded != 2 {
		t.Fatalf("late refund: %+v %v", r, err)
	}
	wantBalance(t, f, user, credit.Balance{Daily: 10, Purchased: 4, Kickstart: 5})
}

// TestConcurrentConsumes: 1,000 consumes of 1 credit against a balance of 100, from a
// bounded pool of goroutines: exactly 100 succeed, 900 are refused, the balance ends at 0.
func TestConcurrentConsumes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	f.grantPurchased(t, user, 100)
	const requests, workers = 1000, 32
	var ok, refused, other int
	var mu sync.Mutex
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				err := f.consume(t, user, 1)
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case apperr.CodeOf(err) == apperr.InsufficientCredits:
					refused++
				default:
					other++
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	for range requests {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	if ok != 100 || refused != 900 || other != 0 {
		t.Fatalf("succeeded %d, refused %d, failed %d; want 100, 900, 0", ok, refused, other)
	}
	wantBalance(t, f, user, credit.Balance{})
}

// TestSameOperationConcurrently: one operation id sent 10 times at once charges once.
func TestSameOperationConcurrently(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	f.grantPurchased(t, user, 20)
	op := uuid.NewString()
	var wg sync.WaitGroup
	results := make([]error, 10)
	charged := make([]int, 10)
	for i := range 10 {
		wg.Go(func() {
			r, err := f.store.Consume(f.ctx, user, op, 7, "ai.chat", f.clock.Now())
			results[i], charged[i] = err, r.Charged
		})
	}
	wg.Wait()
	for i := range 10 {
		if results[i] != nil || charged[i] != 7 {
			t.Fatalf("call %d: charged %d, %v", i, charged[i], results[i])
		}
	}
	wantBalance(t, f, user, credit.Balance{Purchased: 13})
}

// TestLedgerProperty runs random sequences of grants, consumes, refunds and day changes
// and checks after every step that balance = grants − consumes + refunds − expiries (from
// the test's own tally and the expire rows), that the ledger and the grants agree, and
// that nothing is ever negative.
func TestLedgerProperty(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed) // to replay a failing sequence
	rng := rand.New(rand.NewPCG(7, seed))
	for seq := range 8 {
		user := newUser()
		f.clock.Set(start)
		f.signUp(t, user)
		granted, consumed, refunded := credit.KickstartAmount, 0, 0
		var ops []string
		for step := range 40 {
			switch r := rng.IntN(10); {
			case r < 5:
				op := uuid.NewString()
				res, err := f.store.Consume(f.ctx, user, op, 1+rng.IntN(8), "ai.chat", f.clock.Now())
				if err == nil {
					consumed += res.Charged
					ops = append(ops, op)
				} else if apperr.CodeOf(err) != apperr.InsufficientCredits {
					t.Fatal(err)
				}
			case r < 7 && len(ops) > 0:
				i := rng.IntN(len(ops))
				res, err := f.store.Refund(f.ctx, user, ops[i], "", f.clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				if !res.Replayed {
					refunded += res.Refunded
				}
			case r < 8:
				n := 1 + rng.IntN(20)
				f.grantPurchased(t, user, n)
				granted += n
			default:
				f.clock.Advance(time.Duration(1+rng.IntN(20)) * time.Hour)
			}
			b := f.balance(t, user)
			var dailyGranted, expired int
			if err := f.pool.QueryRow(f.ctx, `SELECT coalesce(sum(amount), 0) FROM credit_grants WHERE user_id = $1 AND kind = 'daily'`, user).Scan(&dailyGranted); err != nil {
				t.Fatal(err)
			}
			if err := f.pool.QueryRow(f.ctx, `SELECT coalesce(-sum(amount), 0) FROM credit_ledger WHERE user_id = $1 AND operation = 'expire'`, user).Scan(&expired); err != nil {
				t.Fatal(err)
			}
			want := granted + dailyGranted - consumed + refunded - expired
			if b.Total() != want || b.Total() < 0 || b.Daily < 0 || b.Kickstart < 0 || b.Purchased < 0 {
				t.Fatalf("sequence %d step %d: balance %+v, want total %d (granted %d+%d daily, consumed %d, refunded %d, expired %d)",
					seq, step, b, want, granted, dailyGranted, consumed, refunded, expired)
			}
			if l, g := f.ledgerSum(t, user); l != want || g != want {
				t.Fatalf("sequence %d step %d: ledger %d, grants %d, want %d", seq, step, l, g, want)
			}
		}
	}
}

// TestSweepExpired: the job writes the expire rows of idle users without granting them
// a new day.
func TestSweepExpired(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := newUser()
	f.signUp(t, user)
	f.clock.Set(credit.NextMidnight(start))
	mustConsume(t, f, user, 3) // today's daily grant, 7 left
	f.clock.Advance(24 * time.Hour)
	n, err := f.store.SweepExpired(f.ctx, f.clock.Now(), 100)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if c := f.count(t, `SELECT count(*) FROM credit_grants WHERE user_id = $1 AND kind = 'daily'`, user); c != 1 {
		t.Fatalf("the sweep made a daily grant: %d", c)
	}
	if c := f.count(t, `SELECT count(*) FROM credit_ledger WHERE user_id = $1 AND operation = 'expire' AND amount = -7`, user); c != 1 {
		t.Fatalf("expire rows: %d", c)
	}
	if n, _ := f.store.SweepExpired(f.ctx, f.clock.Now(), 100); n != 0 {
		t.Fatalf("second sweep found %d users", n)
	}
}
