package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/httprate"
	"github.com/redis/go-redis/v9"
)

// MemoryCounter is a fixed-window httprate.LimitCounter for one replica. It keeps only the
// current window's counts, so memory is bounded by the callers of one window.
type MemoryCounter struct {
	mu      sync.Mutex
	current time.Time
	counts  map[string]int
}

var _ httprate.LimitCounter = (*MemoryCounter)(nil)

// NewMemoryCounter is an empty counter.
func NewMemoryCounter() *MemoryCounter { return &MemoryCounter{counts: map[string]int{}} }

// Config is part of httprate.LimitCounter; the window comes with every call.
func (c *MemoryCounter) Config(int, time.Duration) {}

// Increment adds one request in window.
func (c *MemoryCounter) Increment(key string, window time.Time) error {
	return c.IncrementBy(key, window, 1)
}

// IncrementBy adds n requests in window; a new window forgets the old one.
func (c *MemoryCounter) IncrementBy(key string, window time.Time, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case window.After(c.current):
		c.current = window
		c.counts = map[string]int{}
	case window.Before(c.current):
		return nil // a request that straddled the boundary; its window is gone
	}
	c.counts[key] += n
	return nil
}

// Get is the count in the current window; the previous one never counts (fixed window).
func (c *MemoryCounter) Get(key string, current, _ time.Time) (int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !current.Equal(c.current) {
		return 0, 0, nil
	}
	return c.counts[key], 0, nil
}

// RedisTimeout bounds every Redis round trip: a slow Redis must not slow the API.
const RedisTimeout = 250 * time.Millisecond

// RedisCounter is a fixed-window counter in Redis (INCRBY + PEXPIRE on
// "<prefix>:<key>:<window start>"), shared by every gateway replica. When Redis fails it
// counts in memory instead, so the API stays up with per-replica limits until it is back.
//
// httprate reads the count and then increments it, so replicas racing on one key can let
// a few requests more than the limit through in a window; the limit is never lower.
type RedisCounter struct {
	client   *redis.Client
	prefix   string
	window   time.Duration
	fallback *MemoryCounter
	logger   *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time
}

var _ httprate.LimitCounter = (*RedisCounter)(nil)

// NewRedisCounter counts under prefix (one per class) in client.
func NewRedisCounter(client *redis.Client, prefix string, logger *slog.Logger) *RedisCounter {
	return &RedisCounter{client: client, prefix: prefix, fallback: NewMemoryCounter(), logger: logger}
}

// Config records the window, which sets the keys' expiry.
func (c *RedisCounter) Config(_ int, window time.Duration) { c.window = window }

// Increment adds one request in window.
func (c *RedisCounter) Increment(key string, window time.Time) error {
	return c.IncrementBy(key, window, 1)
}

// IncrementBy adds n requests in window and makes the key expire with the window.
func (c *RedisCounter) IncrementBy(key string, window time.Time, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), RedisTimeout)
	defer cancel()
	k := c.key(key, window)
	_, err := c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.IncrBy(ctx, k, int64(n))
		// One window past its end: the key is useless then, and a clock a little off
		// between replicas still finds it.
		p.PExpire(ctx, k, 2*c.window)
		return nil
	})
	if err != nil {
		c.warn(err)
		return c.fallback.IncrementBy(key, window, n)
	}
	return nil
}

// Get is the count of the current window.
func (c *RedisCounter) Get(key string, current, previous time.Time) (int, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RedisTimeout)
	defer cancel()
	n, err := c.client.Get(ctx, c.key(key, current)).Int()
	if errors.Is(err, redis.Nil) {
		return 0, 0, nil
	}
	if err != nil {
		c.warn(err)
		return c.fallback.Get(key, current, previous)
	}
	return n, 0, nil
}

func (c *RedisCounter) key(key string, window time.Time) string {
	return c.prefix + ":" + key + ":" + strconv.FormatInt(window.Unix(), 10)
}

// warn logs a Redis failure at most every 10 s (a Redis outage would otherwise log on
// every request).
func (c *RedisCounter) warn(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.lastWarn) < 10*time.Second {
		return
	}
	c.lastWarn = time.Now()
	c.logger.Warn("rate limit redis failed; counting in memory", "err", err)
}
