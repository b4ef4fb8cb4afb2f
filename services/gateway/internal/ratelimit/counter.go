package ratelimit

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// memoryShards spreads the keys of one class over independent locks.
const memoryShards = 16

// MemoryCounter is a fixed-window Counter for one replica. It keeps only the current
// window's counts, so memory is bounded by the callers of one window.
type MemoryCounter struct {
	shards [memoryShards]memoryShard
}

type memoryShard struct {
	mu      sync.Mutex
	current time.Time
	counts  map[string]int
}

var _ Counter = (*MemoryCounter)(nil)

// NewMemoryCounter is an empty counter.
func NewMemoryCounter() *MemoryCounter {
	c := &MemoryCounter{}
	for i := range c.shards {
		c.shards[i].counts = map[string]int{}
	}
	return c
}

// Add adds n requests to key in the window starting at start; a new window forgets the
// old one. A request late enough to belong to a window already gone counts alone.
func (c *MemoryCounter) Add(key string, start time.Time, _ time.Duration, n int) (int, error) {
	s := &c.shards[fnv32(key)%memoryShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case start.After(s.current):
		s.current = start
		s.counts = map[string]int{}
	case start.Before(s.current):
		return n, nil
	}
	s.counts[key] += n
	return s.counts[key], nil
}

// len is the number of keys counted (for tests).
func (c *MemoryCounter) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.counts)
		s.mu.Unlock()
	}
	return n
}

// fnv32 is FNV-1a of s, to pick a shard.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// RedisTimeout bounds every Redis round trip: a slow Redis must not slow the API.
const RedisTimeout = 250 * time.Millisecond

// RedisCounter is a fixed-window counter in Redis (INCRBY + PEXPIRE on
// "<prefix>:<key>:<window start>" in one round trip), shared by every gateway replica.
// INCRBY answers the count it made, so replicas never race between reading and adding.
// When Redis fails it counts in memory instead, so the API stays up with per-replica
// limits until it is back.
type RedisCounter struct {
	client   *redis.Client
	prefix   string
	fallback *MemoryCounter
	logger   *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time
}

var _ Counter = (*RedisCounter)(nil)

// NewRedisCounter counts under prefix (one per class) in client.
func NewRedisCounter(client *redis.Client, prefix string, logger *slog.Logger) *RedisCounter {
	return &RedisCounter{client: client, prefix: prefix, fallback: NewMemoryCounter(), logger: logger}
}

// Add adds n requests to key in the window starting at start and makes the key expire
// with the window.
func (c *RedisCounter) Add(key string, start time.Time, length time.Duration, n int) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RedisTimeout)
	defer cancel()
	k := c.prefix + ":" + key + ":" + strconv.FormatInt(start.Unix(), 10)
	var incr *redis.IntCmd
	_, err := c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.IncrBy(ctx, k, int64(n))
		// One window past its end: the key is useless then, and a clock a little off
		// between replicas still finds it.
		p.PExpire(ctx, k, 2*length)
		return nil
	})
	if err != nil {
		c.warn(err)
		return c.fallback.Add(key, start, length, n)
	}
	return int(incr.Val()), nil
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
