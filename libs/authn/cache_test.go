package authn_test

import (
	"crypto/rsa"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
)

// verifyCached verifies raw and reports whether the answer came from the cache (no full
// verification happened).
func (b *bundle) verifyCached(t *testing.T, raw string) (authn.Claims, bool, error) {
	t.Helper()
	before := authn.FullVerifications(b.verifier)
	c, err := b.verifier.Verify(b.ctx, raw)
	return c, err == nil && authn.FullVerifications(b.verifier) == before, err
}

func (b *bundle) tokenFor(t *testing.T, s *authn.Signer, ttl time.Duration) string {
	t.Helper()
	raw, err := s.Sign(b.claims(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// expiredToken ended a minute ago.
func (b *bundle) expiredToken(t *testing.T) string {
	t.Helper()
	c := b.claims()
	c.IssuedAt = b.clock.Now().Add(-authn.AccessTokenTTL - time.Minute)
	raw, err := b.signer.Sign(c, authn.AccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestCacheAnswersARepeatedTokenWithTheSameClaims(t *testing.T) {
	t.Parallel()
	b := setup(t)
	raw := b.token(t, b.signer)
	first, cached, err := b.verifyCached(t, raw)
	if err != nil || cached {
		t.Fatalf("first Verify: cached %v, %v", cached, err)
	}
	second, cached, err := b.verifyCached(t, raw)
	if err != nil || !cached {
		t.Fatalf("second Verify: cached %v, %v", cached, err)
	}
	if first != second {
		t.Fatalf("claims differ:\n%+v\n%+v", first, second)
	}
	// A caller changing its copy changes nobody else's.
	second.UserID, second.Tier = "someone else", authn.TierPro+"!"
	third, _, err := b.verifyCached(t, raw)
	if err != nil || third != first {
		t.Fatalf("after a caller edited its claims: %+v, %v", third, err)
	}
}

// Claims are copied out of the cache by value; that shares nothing only while every
// field is a string or a time. A slice, map or pointer added later must be deep-copied
// by the cache: this test fails to say so.
func TestClaimsHoldNoSharedMutableState(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[authn.Claims]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type.Kind() != reflect.String && f.Type != reflect.TypeFor[time.Time]() {
			t.Errorf("Claims.%s is a %s: copy it in the token cache (cache.go) before handing it out", f.Name, f.Type)
		}
	}
}

func TestCachedTokenStillExpiresAtExp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A token that ends well within the cache's own TTL.
	raw := b.tokenFor(t, b.signer, 30*time.Second)
	if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(29 * time.Second)
	if _, cached, err := b.verifyCached(t, raw); err != nil || !cached {
		t.Fatalf("a second before exp: cached %v, %v", cached, err)
	}
	b.clock.Advance(time.Second) // exp itself is too late
	_, err := b.verifier.Verify(b.ctx, raw)
	requireCode(t, err, apperr.TokenExpired)
	if _, err := b.verifier.Verify(b.ctx, raw); apperr.CodeOf(err) != apperr.TokenExpired {
		t.Fatalf("again: %v", err)
	}
}

func TestCacheEntryLivesAtMostTheTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	raw := b.token(t, b.signer) // valid for 15 min
	if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(authn.DefaultTokenCacheTTL - time.Second)
	if _, cached, err := b.verifyCached(t, raw); err != nil || !cached {
		t.Fatalf("within the TTL: cached %v, %v", cached, err)
	}
	b.clock.Advance(time.Second)
	if _, cached, err := b.verifyCached(t, raw); err != nil || cached {
		t.Fatalf("at the TTL: cached %v, %v (want verified afresh)", cached, err)
	}
	// A clock set back before the verification does not find the entry either.
	b.clock.Advance(-time.Hour)
	if _, cached, _ := b.verifyCached(t, raw); cached {
		t.Fatal("answered from the cache at a time before the entry was made")
	}
}

// twoKeys serves the JWKS of b's key and keyB with a short max-age, and returns a signer
// of keyB alone (its tokens carry keyB's kid).
func twoKeys(t *testing.T, b *bundle) *authn.Signer {
	t.Helper()
	both, err := authn.NewSigner([]*rsa.PrivateKey{b.key, keyB()}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	b.jwks.set("max-age=60", http.StatusOK)
	b.jwks.setKeys(t, both.JWKS())
	onlyB, err := authn.NewSigner([]*rsa.PrivateKey{keyB()}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	return onlyB
}

func TestTokenOfARemovedKeyStopsVerifyingWhenTheSetExpires(t *testing.T) {
	t.Parallel()
	b := setup(t)
	signerB := twoKeys(t, b)
	raw := b.token(t, signerB)
	for range 2 {
		if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if _, cached, err := b.verifyCached(t, raw); err != nil || !cached {
		t.Fatalf("cached %v, %v", cached, err)
	}
	// keyB leaves the JWKS; the verifier learns of it when its set expires (60 s), well
	// within the token cache's TTL.
	b.jwks.setKeys(t, b.signer.JWKS())
	b.clock.Advance(61 * time.Second)
	_, err := b.verifier.Verify(b.ctx, raw)
	requireCode(t, err, apperr.InvalidToken)
	if n := authn.CachedTokens(b.verifier); n != 0 {
		t.Fatalf("%d tokens still cached after their key left", n)
	}
}

func TestTokenOfARemovedKeyStopsVerifyingWhenAnotherTokenRefetches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	signerB := twoKeys(t, b)
	rawB, rawA := b.token(t, signerB), b.token(t, b.signer)
	for _, raw := range []string{rawB, rawA, rawB, rawA} {
		if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	// auth swaps keyB for keyC; a token of keyC makes the verifier refetch (its set has
	// not expired), and the new set no longer has keyB.
	withC, err := authn.NewSigner([]*rsa.PrivateKey{b.key, keyC()}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	b.jwks.setKeys(t, withC.JWKS())
	b.clock.Advance(30 * time.Second) // past the refetch interval, within the set's 60 s
	if _, err := b.verifier.Verify(b.ctx, b.token(t, withC)); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	_, err = b.verifier.Verify(b.ctx, rawB)
	requireCode(t, err, apperr.InvalidToken)
	// keyA stayed: its token is still answered from the cache.
	if _, cached, err := b.verifyCached(t, rawA); err != nil || !cached {
		t.Fatalf("token of the key that stayed: cached %v, %v", cached, err)
	}
}

func TestTamperedTokenIsNeverServedFromTheCache(t *testing.T) {
	t.Parallel()
	b := setup(t)
	raw := b.token(t, b.signer)
	for range 2 {
		if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	// Every position, changed to another byte that keeps the token in the JWT alphabet.
	for i := range len(raw) {
		tampered := []byte(raw)
		switch tampered[i] {
		case 'A':
			tampered[i] = 'B'
		case '.':
			tampered[i] = '_'
		default:
			tampered[i] = 'A'
		}
		if _, err := b.verifier.Verify(b.ctx, string(tampered)); err == nil {
			t.Fatalf("byte %d changed (%q → %q): verified", i, raw[i], tampered[i])
		}
	}
	// The token itself is unharmed and still cached.
	if _, cached, err := b.verifyCached(t, raw); err != nil || !cached {
		t.Fatalf("original after the attempts: cached %v, %v", cached, err)
	}
}

func TestFailedVerificationsAreNotCached(t *testing.T) {
	t.Parallel()
	b := setup(t)
	expired := b.expiredToken(t)
	for range 3 {
		_, err := b.verifier.Verify(b.ctx, expired)
		requireCode(t, err, apperr.TokenExpired)
	}
	if n := authn.CachedTokens(b.verifier); n != 0 {
		t.Fatalf("%d cached after failures", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const size = 32
	v := authn.NewVerifier(authn.VerifierConfig{
		JWKSURL: b.jwks.url, Clock: b.clock, TokenCacheSize: size,
	})
	for range 2 * size {
		if _, err := v.Verify(b.ctx, b.token(t, b.signer)); err != nil {
			t.Fatal(err)
		}
	}
	if n := authn.CachedTokens(v); n == 0 || n > size {
		t.Fatalf("%d tokens cached, want 1..%d", n, size)
	}
	// A token in use survives the churn of one-off tokens around it.
	hot := b.token(t, b.signer)
	for range 2 * size {
		if _, err := v.Verify(b.ctx, hot); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(b.ctx, b.token(t, b.signer)); err != nil {
			t.Fatal(err)
		}
	}
	before := authn.FullVerifications(v)
	if _, err := v.Verify(b.ctx, hot); err != nil || authn.FullVerifications(v) != before {
		t.Fatalf("the token in use was evicted (%v)", err)
	}
}

func TestCacheCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v := authn.NewVerifier(authn.VerifierConfig{JWKSURL: b.jwks.url, Clock: b.clock, TokenCacheSize: -1})
	raw := b.token(t, b.signer)
	for range 3 {
		if _, err := v.Verify(b.ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := authn.FullVerifications(v); n != 3 {
		t.Fatalf("%d full verifications, want 3", n)
	}
}

// TestCacheUnderConcurrency runs verifications of good, expired and tampered tokens from
// many goroutines while the clock moves and the key set changes under them (go test
// -race checks the sharing). Good tokens of the key that stays always verify; the others
// never do.
func TestCacheUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	signerB := twoKeys(t, b)
	var good []string
	for range 8 {
		good = append(good, b.token(t, b.signer))
	}
	ofB := b.token(t, signerB)
	expired := b.expiredToken(t)
	tampered := good[0][:len(good[0])-2] + "AA"
	if good[0][len(good[0])-2:] == "AA" {
		tampered = good[0][:len(good[0])-2] + "BB"
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				raw := good[(g+i)%len(good)]
				if _, err := b.verifier.Verify(b.ctx, raw); err != nil {
					t.Errorf("good token: %v", err)
					return
				}
				if _, err := b.verifier.Verify(b.ctx, expired); err == nil {
					t.Error("expired token verified")
					return
				}
				if _, err := b.verifier.Verify(b.ctx, tampered); err == nil {
					t.Error("tampered token verified")
					return
				}
				_, _ = b.verifier.Verify(b.ctx, ofB) // its key comes and goes
			}
		})
	}
	for i := range 12 { // 12 × 61 s: the good tokens (15 min) outlive the test
		if i%2 == 0 {
			b.jwks.setKeys(t, b.signer.JWKS())
		} else {
			twoKeys(t, b)
		}
		b.clock.Advance(61 * time.Second) // the set expires: the next Verify refetches
		if _, err := b.verifier.Verify(b.ctx, good[0]); err != nil {
			t.Errorf("good token after a key change: %v", err)
		}
		_, err := b.verifier.Verify(b.ctx, ofB)
		if removed := i%2 == 0; removed != (err != nil) {
			t.Errorf("round %d: key B removed %v, its token: %v", i, removed, err)
		}
	}
	close(stop)
	wg.Wait()
}
