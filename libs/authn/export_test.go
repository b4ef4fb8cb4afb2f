package authn

// Test hooks into the verified-token cache.

// CachedTokens is how many verified tokens v holds.
func CachedTokens(v *Verifier) int {
	if v.cache == nil {
		return 0
	}
	return v.cache.len()
}

// FullVerifications is how many tokens v has verified without the cache.
func FullVerifications(v *Verifier) int64 { return v.verified.Load() }
