package authn

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// Defaults of the verified-token cache (VerifierConfig.TokenCacheSize, TokenCacheTTL).
const (
	// DefaultTokenCacheSize bounds the remembered tokens: about 5 MB at most (some 500
	// bytes an entry), and far more than the clients one replica sees in
	// DefaultTokenCacheTTL.
	DefaultTokenCacheSize = 10_000
	// DefaultTokenCacheTTL is how long one verification is reused at most. It is short so
	// that what the cache remembers stays close to what verifying again would say, even
	// for a reason this package cannot see; a token's own exp ends its entry sooner.
	DefaultTokenCacheTTL = 2 * time.Minute
)

// tokenCacheShards spreads the entries over independent locks, so concurrent requests
// rarely wait for each other. A power of two: the shard is the low bits of the hash.
const tokenCacheShards = 16

// tokenDigest is the SHA-256 of a raw token: the cache is keyed by it rather than by the
// token, so a lookup compares digests (whose timing tells nothing usable about a valid
// token) and an entry holds 32 bytes instead of the whole token.
type tokenDigest [sha256.Size]byte

func digestOf(raw string) tokenDigest { return sha256.Sum256([]byte(raw)) }

// verifiedToken is what one successful verification established. Claims holds only
// strings and times, so handing out copies of it shares nothing a caller could change.
type verifiedToken struct {
	claims Claims
	// kid and key are the key that checked the signature: the entry is only good while
	// the key set in use still has that key under that kid. Keys are compared by pointer:
	// a fetch that finds a key unchanged keeps the pointer it had.
	kid string
	key *rsa.PublicKey
	// added is when it was verified; expires is the earlier of exp and added+TTL.
	added, expires time.Time
}

// usable reports whether the entry may answer at now: within its lifetime, and not from
// the future of a clock that was set back.
func (e *verifiedToken) usable(now time.Time) bool {
	return !now.Before(e.added) && now.Before(e.expires)
}

// tokenCache remembers successful verifications, bounded in size. Each shard keeps two
// generations: entries go into the current one, and when it is full it becomes the
// previous one and the one before is dropped whole. A hit in the previous generation
// moves the entry to the current one, so tokens in use survive and one-off tokens age out
// (an approximate LRU with O(1) work per operation and no list to maintain).
type tokenCache struct {
	ttl    time.Duration
	shards [tokenCacheShards]tokenShard
}

type tokenShard struct {
	mu        sync.Mutex
	cur, prev map[tokenDigest]verifiedToken
	// limit is the size of one generation: the shard holds at most twice as many.
	limit int
}

// newTokenCache holds at most size entries (at least two per shard, so 32 when size is
// smaller); size ≤ 0 means no cache.
func newTokenCache(size int, ttl time.Duration) *tokenCache {
	if size <= 0 || ttl <= 0 {
		return nil
	}
	c := &tokenCache{ttl: ttl}
	limit := max(1, size/(2*tokenCacheShards))
	for i := range c.shards {
		c.shards[i].limit = limit
		c.shards[i].cur = make(map[tokenDigest]verifiedToken)
	}
	return c
}

func (c *tokenCache) shard(d tokenDigest) *tokenShard {
	return &c.shards[binary.LittleEndian.Uint32(d[:4])%tokenCacheShards]
}

// get is the entry of d if it is usable at now; an entry past its time is dropped.
func (c *tokenCache) get(d tokenDigest, now time.Time) (verifiedToken, bool) {
	s := c.shard(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cur[d]
	if !ok {
		if e, ok = s.prev[d]; !ok {
			return verifiedToken{}, false
		}
		delete(s.prev, d)
		if e.usable(now) {
			s.insert(d, e)
		}
	}
	if !e.usable(now) {
		delete(s.cur, d)
		return verifiedToken{}, false
	}
	return e, true
}

// put remembers a successful verification made at now.
func (c *tokenCache) put(d tokenDigest, e verifiedToken, now time.Time) {
	e.added = now
	e.expires = now.Add(c.ttl)
	if e.claims.ExpiresAt.Before(e.expires) {
		e.expires = e.claims.ExpiresAt
	}
	if !e.usable(now) {
		return
	}
	s := c.shard(d)
	s.mu.Lock()
	delete(s.prev, d)
	s.insert(d, e)
	s.mu.Unlock()
}

// insert adds to the current generation, turning it into the previous one when full.
// The caller holds s.mu.
func (s *tokenShard) insert(d tokenDigest, e verifiedToken) {
	if _, ok := s.cur[d]; !ok && len(s.cur) >= s.limit {
		s.prev = s.cur
		s.cur = make(map[tokenDigest]verifiedToken, s.limit)
	}
	s.cur[d] = e
}

// remove forgets d.
func (c *tokenCache) remove(d tokenDigest) {
	s := c.shard(d)
	s.mu.Lock()
	delete(s.cur, d)
	delete(s.prev, d)
	s.mu.Unlock()
}

// retainKeys drops every entry whose kid the key set no longer has, or has with another
// key. It runs when a new key set is stored; lookups check the key set anyway (an entry
// added by a verification that raced the swap is caught there), so this only frees the
// memory at once.
func (c *tokenCache) retainKeys(keys map[string]*rsa.PublicKey) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, m := range []map[tokenDigest]verifiedToken{s.cur, s.prev} {
			for d, e := range m {
				if keys[e.kid] != e.key {
					delete(m, d)
				}
			}
		}
		s.mu.Unlock()
	}
}

// len is the number of entries held, usable or not (for tests).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}
