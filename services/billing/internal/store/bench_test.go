package store_test

import (
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkConsume measures consumes per second through the store (one transaction with
// the row lock, the ledger rows and the outbox event each): every goroutine on one hot
// user, whose consumes serialise on its lock, and spread over 1,000 users, who never
// block each other.
func BenchmarkConsume(b *testing.B) {
	f := setup(b)
	const plenty = 100_000_000
	hot := newUser()
	f.grantPurchased(b, hot, plenty)
	users := make([]string, 1000)
	for i := range users {
		users[i] = newUser()
		f.grantPurchased(b, users[i], plenty)
	}
	run := func(b *testing.B, parallelism int, pick func(i int64) string) {
		var n atomic.Int64
		b.SetParallelism(parallelism)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				user := pick(n.Add(1))
				if _, err := f.store.Consume(f.ctx, user, uuid.NewString(), 1, "bench", f.clock.Now()); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "consumes/s")
	}
	b.Run("hot_user", func(b *testing.B) { run(b, 4, func(int64) string { return hot }) })
	b.Run("1000_users", func(b *testing.B) { run(b, 8, func(i int64) string { return users[i%int64(len(users))] }) })
}
