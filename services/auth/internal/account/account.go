// Package account owns the rules of users, sessions and refresh tokens: who a user is,
// what a valid profile change is, how long tokens live, and when a presented refresh
// token may be rotated. It is pure: no SQL, HTTP, NATS or JSON.
package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Token lifetimes and sizes (API.md §2).
const (
	// AccessTokenTTL is the life of our access JWT; expires_in in the token answer.
	AccessTokenTTL = 15 * time.Minute
	// RefreshTokenTTL is the life of one refresh token; each rotation issues a fresh one.
	RefreshTokenTTL = 7 * 24 * time.Hour
	// RefreshTokenBytes is 256 random bits.
	RefreshTokenBytes = 32
	// RevokedSessionRetention keeps a revoked session (and its tokens) for this long so a
	// replayed token is still recognised and answered consistently, then the purge job
	// removes it.
	RevokedSessionRetention = 7 * 24 * time.Hour
)

// Profile rules (API.md §2).
const (
	NameMinLen = 1
	NameMaxLen = 100
	// DefaultTimezone is a new user's timezone until they set one.
	DefaultTimezone = "UTC"
)

// Tiers, as carried by the access token.
const (
	TierFree = "free"
	TierPro  = "pro"
)

// ValidTier reports whether s is a tier we know.
func ValidTier(s string) bool { return s == TierFree || s == TierPro }

// User is one account.
type User struct {
	ID        string
	GoogleID  string // "" for dev-login users
	Email     string
	Name      string
	AvatarURL string
	Timezone  string
	Tier      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Identity is who signed in: from a verified Google ID token, or from a dev login.
type Identity struct {
	GoogleID  string // the Google "sub"; "" for dev login
	Email     string
	Name      string
	AvatarURL string
}

// Session is one signed-in device: a family of refresh tokens that rotate within it.
type Session struct {
	ID         string
	UserID     string
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time // expiry of its newest refresh token
	RevokedAt  *time.Time
	UserAgent  string
	IP         string
}

// RefreshToken is the stored form of one refresh token: only its hash.
type RefreshToken struct {
	Hash      []byte
	SessionID string
	IssuedAt  time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Client describes the device that signs in, shown in the sessions list.
type Client struct {
	UserAgent string
	IP        string
}

// MaxUserAgentLen bounds what we keep of a User-Agent header.
const MaxUserAgentLen = 512

// NewClient trims what a client tells about itself to what we store.
func NewClient(userAgent, ip string) Client {
	if len(userAgent) > MaxUserAgentLen {
		userAgent = strings.ToValidUTF8(userAgent[:MaxUserAgentLen], "")
	}
	return Client{UserAgent: userAgent, IP: ip}
}

// Errors of this domain. Each is an *apperr.Error so the edges map it once.
var (
	ErrInvalidRefreshToken = apperr.New(apperr.InvalidRefreshToken, "the refresh token is not valid; sign in again")
	ErrRefreshTokenReused  = apperr.New(apperr.RefreshTokenReused, "the refresh token was already used; the session has been signed out")
	ErrUserNotFound        = apperr.New(apperr.NotFound, "user not found")
	ErrSessionNotFound     = apperr.New(apperr.NotFound, "session not found")
)

// NewRefreshToken returns a fresh opaque refresh token (base64url, no padding) and the
// SHA-256 hash that is the only form stored.
func NewRefreshToken() (raw string, hash []byte, err error) {
	b := make([]byte, RefreshTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	raw = base64.RawURLEncoding.EncodeToString(b)
	return raw, HashRefreshToken(raw), nil
}

// HashRefreshToken is the lookup key of a presented token.
func HashRefreshToken(raw string) []byte {
	sum := sha256.Sum256([]byte(raw))
	return sum[:]
}

// WellFormedRefreshToken reports whether raw could be one of ours, so garbage never
// reaches the database.
func WellFormedRefreshToken(raw string) bool {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	return err == nil && len(b) == RefreshTokenBytes
}

// RotationError decides whether tok (of session s) may be rotated at now. An expired
// token is ErrInvalidRefreshToken. A token already used means it was rotated before:
// someone holds a copy, so the whole session must be revoked (RFC 9700 reuse detection)
// and the caller gets ErrRefreshTokenReused, also when an earlier reuse already revoked
// the session (of many concurrent replays, each is told the same). An unused token of a
// revoked session is ErrInvalidRefreshToken.
func RotationError(tok RefreshToken, s Session, now time.Time) error {
	switch {
	case !now.Before(tok.ExpiresAt):
		return ErrInvalidRefreshToken
	case tok.UsedAt != nil:
		return ErrRefreshTokenReused
	case s.RevokedAt != nil:
		return ErrInvalidRefreshToken
	}
	return nil
}

// ProfileChange is a PATCH of /users/me; nil fields are left alone.
type ProfileChange struct {
	Name     *string
	Timezone *string
}

// Validate checks every field and reports all bad ones at once. loadLocation is
// time.LoadLocation (a parameter so the rule is testable without a tz database).
func (c ProfileChange) Validate(loadLocation func(string) (*time.Location, error)) error {
	var v apperr.Validator
	if c.Name != nil {
		n := utf8.RuneCountInString(strings.TrimSpace(*c.Name))
		v.Check(n >= NameMinLen && n <= NameMaxLen, "name", "must be 1 to 100 characters")
	}
	if c.Timezone != nil {
		v.Check(ValidTimezone(*c.Timezone, loadLocation), "timezone", "must be an IANA time zone name such as Europe/Berlin")
	}
	return v.Err()
}

// Apply returns u with the change made (names trimmed).
func (c ProfileChange) Apply(u User) User {
	if c.Name != nil {
		u.Name = strings.TrimSpace(*c.Name)
	}
	if c.Timezone != nil {
		u.Timezone = *c.Timezone
	}
	return u
}

// ValidTimezone accepts IANA names only. time.LoadLocation also accepts "" and "Local",
// which name no zone a client could mean, and file-system paths, which we refuse.
func ValidTimezone(tz string, loadLocation func(string) (*time.Location, error)) bool {
	if tz == "" || tz == "Local" || strings.Contains(tz, "..") || strings.HasPrefix(tz, "/") || len(tz) > 64 {
		return false
	}
	_, err := loadLocation(tz)
	return err == nil
}

// ProfileName is the name to store for a sign-in: the one the identity provider gives,
// else the part of the email before the @, cut to NameMaxLen characters.
func ProfileName(id Identity) string {
	name := strings.TrimSpace(id.Name)
	if name == "" {
		name, _, _ = strings.Cut(id.Email, "@")
	}
	if utf8.RuneCountInString(name) > NameMaxLen {
		name = string([]rune(name)[:NameMaxLen])
	}
	return name
}

// NormalizeEmail lower-cases an address so one person has one account.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// TierChange is a subscription fact from billing. Seq orders one user's changes; when
// billing leaves it zero, OccurredAt does.
type TierChange struct {
	UserID     string
	Tier       string
	Seq        int64
	OccurredAt time.Time
}

// MaxEmailLen is the longest address RFC 5321 allows.
const MaxEmailLen = 254

// ValidateDevLogin checks the body of POST /auth/dev/login.
func ValidateDevLogin(email, name string) error {
	var v apperr.Validator
	addr, err := mail.ParseAddress(email)
	v.Check(err == nil && addr.Address == strings.TrimSpace(email) && len(email) <= MaxEmailLen, "email", "must be an email address")
	v.Check(utf8.RuneCountInString(strings.TrimSpace(name)) <= NameMaxLen, "name", "must be at most 100 characters")
	return v.Err()
}
