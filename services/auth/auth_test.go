package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/services/auth/internal/google"
	"github.com/perpetua-flow/backend/services/auth/internal/google/googletest"
)

func TestGoogleSignInCreatesUserAndEmitsCreated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := googletest.NewPerson()
	r := b.do("POST", "/api/v1/auth/google", "", map[string]string{"id_token": b.google.Token(t, p, b.clock.Now())})
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", r.header.Get("Cache-Control"))
	}
	var raw map[string]json.RawMessage
	r.json(t, &raw)
	for _, k := range []string{"access_token", "refresh_token", "token_type", "expires_in", "user"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("token answer lacks %s: %s", k, r.body)
		}
	}
	tok := b.mustTokens(r)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || tok.User == nil {
		t.Fatalf("answer %+v", tok)
	}
	u := tok.User
	if u.GoogleID != p.Sub || u.Email != p.Email || u.Name != p.Name || u.AvatarURL != p.Picture || u.Tier != "free" || u.Timezone != "UTC" {
		t.Fatalf("user %+v", u)
	}
	// The access token is ours: at+jwt, verifiable against the JWKS, with the claims of §2.
	h := decodeSegment(t, tok.AccessToken, 0)
	if h["typ"] != "at+jwt" || h["alg"] != "RS256" || h["kid"] == "" {
		t.Fatalf("header %v", h)
	}
	claims, err := b.verifier().Verify(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if claims.UserID != u.ID || claims.Email != p.Email || claims.Tier != "free" || claims.SessionID == "" || claims.TokenID == "" ||
		claims.ExpiresAt.Sub(claims.IssuedAt) != 15*time.Minute {
		t.Fatalf("claims %+v", claims)
	}
	// auth.user.created reached the AUTH stream through the outbox.
	ev := b.waitEvent(authevents.TypeUserCreated, u.ID)
	var data authevents.UserCreated
	if err := ev.Decode(&data); err != nil {
		t.Fatal(err)
	}
	if data.UserID != u.ID || data.Email != p.Email || data.Name != p.Name || ev.Source != authevents.Source {
		t.Fatalf("event %+v data %+v", ev, data)
	}
	// The alias answers the same way, for the same user, without a second created event.
	tok2 := b.mustTokens(b.do("POST", "/api/v1/auth/google/callback", "", map[string]string{"id_token": b.google.Token(t, p, b.clock.Now())}))
	if tok2.User.ID != u.ID {
		t.Fatalf("alias made another user %s", tok2.User.ID)
	}
	if n := b.outboxCount(authevents.TypeUserCreated, u.ID); n != 1 {
		t.Fatalf("%d created events, want 1", n)
	}
}

func TestGoogleSignInRejectsEveryBadToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.clock.Now()
	p := googletest.NewPerson()
	edit := func(f func(jwt.MapClaims, map[string]any)) string { return b.google.Token(t, p, now, f) }
	tests := []struct {
		name, token string
	}{
		{"iss", edit(func(c jwt.MapClaims, _ map[string]any) { c["iss"] = "https://accounts.evil.com" })},
		{"aud", edit(func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "not-our-client" })},
		{"exp", edit(func(c jwt.MapClaims, _ map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })},
		{"iat in the future", edit(func(c jwt.MapClaims, _ map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() })},
		{"alg HS256", b.google.HS256Token(t, p, now)},
		{"kid unknown", edit(func(_ jwt.MapClaims, h map[string]any) { h["kid"] = "unknown-kid" })},
		{"email_verified false", edit(func(c jwt.MapClaims, _ map[string]any) { c["email_verified"] = false })},
		{"signature", b.google.ForeignToken(t, p, now)},
		{"not a JWT", "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do("POST", "/api/v1/auth/google", "", map[string]string{"id_token": tt.token})
			if r.status != http.StatusUnauthorized || r.errorCode() != "GOOGLE_AUTH_FAILED" {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			// The reason is logged, not returned.
			if strings.Contains(string(r.body), "kid") || strings.Contains(string(r.body), "issuer") || strings.Contains(string(r.body), "expired") {
				t.Fatalf("reason leaked: %s", r.body)
			}
		})
	}
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("users after failed sign-ins: %d, %v", n, err)
	}
	r := b.do("POST", "/api/v1/auth/google", "", map[string]string{})
	if r.status != http.StatusBadRequest || r.errorCode() != "VALIDATION_ERROR" {
		t.Fatalf("missing id_token: %d %s", r.status, r.body)
	}
	r = b.do("POST", "/api/v1/auth/google", "", `{"id_token": "x", "extra": 1}`)
	if r.status != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %s", r.status, r.body)
	}
}

func TestGoogleRotatedKeyIsPickedUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := googletest.NewPerson()
	b.googleSignIn(p)
	b.google.Rotate(t)
	b.clock.Advance(google.DefaultRefetchInterval + time.Second)
	tok := b.googleSignIn(p)
	if tok.User.GoogleID != p.Sub {
		t.Fatalf("user %+v", tok.User)
	}
	if n := b.google.Fetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (initial + one refetch)", n)
	}
}

func TestSecondSignInRefreshesNameAndAvatarNotEmail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := googletest.NewPerson()
	first := b.googleSignIn(p)
	b.clock.Advance(time.Minute)
	changed := p
	changed.Name, changed.Picture, changed.Email = "New Name", "https://example.com/new.png", "changed-"+p.Email
	second := b.googleSignIn(changed)
	u := second.User
	if u.ID != first.User.ID || u.Name != "New Name" || u.AvatarURL != changed.Picture || u.Email != p.Email {
		t.Fatalf("after second sign-in %+v", u)
	}
	if !u.UpdatedAt.After(first.User.UpdatedAt) || !u.CreatedAt.Equal(first.User.CreatedAt) {
		t.Fatalf("times %v %v", u.CreatedAt, u.UpdatedAt)
	}
}

func TestConcurrentRefreshesYieldOnePairAndRevokeTheSession(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	tok := b.devLogin(newEmail())
	const n = 8
	results := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = b.refresh(tok.RefreshToken)
		})
	}
	close(start)
	wg.Wait()
	var winners []tokens
	reused := 0
	for _, r := range results {
		switch {
		case r.status == http.StatusOK:
			var t2 tokens
			r.json(t, &t2)
			winners = append(winners, t2)
		case r.status == http.StatusUnauthorized && r.errorCode() == "REFRESH_TOKEN_REUSED":
			reused++
		default:
			t.Fatalf("unexpected %d %s", r.status, r.body)
		}
	}
	if len(winners) != 1 || reused != n-1 {
		t.Fatalf("%d new pairs and %d reuse answers, want 1 and %d", len(winners), reused, n-1)
	}
	if winners[0].User != nil {
		t.Fatal("refresh answer carries a user")
	}
	// The losers' reuse revoked the session: the one new refresh token is dead too.
	if r := b.refresh(winners[0].RefreshToken); r.status != http.StatusUnauthorized || r.errorCode() != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("winner's token after reuse: %d %s", r.status, r.body)
	}
}

func TestRefreshRotatesAndReuseRevokesTheSession(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	first := b.devLogin(newEmail())
	b.clock.Advance(time.Minute)
	second := b.mustTokens(b.refresh(first.RefreshToken))
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh did not rotate")
	}
	c1, err := b.verifier().Verify(context.Background(), first.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := b.verifier().Verify(context.Background(), second.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c1.SessionID != c2.SessionID || c1.UserID != c2.UserID || c1.TokenID == c2.TokenID {
		t.Fatalf("claims %+v vs %+v", c1, c2)
	}
	third := b.mustTokens(b.refresh(second.RefreshToken))
	// Replaying the first (rotated) token: reuse detected, the session is revoked ...
	if r := b.refresh(first.RefreshToken); r.status != http.StatusUnauthorized || r.errorCode() != "REFRESH_TOKEN_REUSED" {
		t.Fatalf("reuse: %d %s", r.status, r.body)
	}
	// ... so the newest token of that session stops working.
	if r := b.refresh(third.RefreshToken); r.status != http.StatusUnauthorized || r.errorCode() != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("newest token after reuse: %d %s", r.status, r.body)
	}
	r := b.do("GET", "/api/v1/auth/sessions", third.AccessToken, nil)
	var list struct {
		Data []map[string]any `json:"data"`
	}
	r.json(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("revoked session still listed: %s", r.body)
	}
}

func TestRefreshRejectsUnknownExpiredAndLoggedOut(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	for _, bad := range []string{"garbage", strings.Repeat("A", 43), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		if r := b.refresh(bad); r.status != http.StatusUnauthorized || r.errorCode() != "INVALID_REFRESH_TOKEN" {
			t.Fatalf("%q: %d %s", bad, r.status, r.body)
		}
	}
	if r := b.do("POST", "/api/v1/auth/refresh", "", map[string]string{}); r.status != http.StatusBadRequest {
		t.Fatalf("missing token: %d", r.status)
	}

	// Logout, then refresh: 401. Logout answers 204 whatever it gets.
	tok := b.devLogin(newEmail())
	for range 2 {
		if r := b.do("POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": tok.RefreshToken}); r.status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", r.status, r.body)
		}
	}
	if r := b.refresh(tok.RefreshToken); r.status != http.StatusUnauthorized || r.errorCode() != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("after logout: %d %s", r.status, r.body)
	}
	for _, body := range []any{nil, "not json", map[string]string{"refresh_token": "nope"}, map[string]int{"x": 1}} {
		if r := b.do("POST", "/api/v1/auth/logout", "", body); r.status != http.StatusNoContent {
			t.Fatalf("logout %v: %d %s", body, r.status, r.body)
		}
	}

	// Expired: a refresh token lives 7 days.
	tok = b.devLogin(newEmail())
	b.clock.Advance(7*24*time.Hour + time.Second)
	if r := b.refresh(tok.RefreshToken); r.status != http.StatusUnauthorized || r.errorCode() != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("expired: %d %s", r.status, r.body)
	}
}

func TestSessionsListAndSignOutOne(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	email := newEmail()
	var devices []tokens
	for range 3 {
		devices = append(devices, b.devLogin(email))
		b.clock.Advance(time.Second)
	}
	me := devices[2]
	var list struct {
		Data []struct {
			ID        string `json:"id"`
			Current   bool   `json:"current"`
			UserAgent string `json:"user_agent"`
			IP        string `json:"ip"`
		} `json:"data"`
		Pagination struct {
			Offset, Limit, Total int
			HasMore              bool `json:"has_more"`
		} `json:"pagination"`
	}
	r := b.do("GET", "/api/v1/auth/sessions", me.AccessToken, nil)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r.json(t, &list)
	if len(list.Data) != 3 || list.Pagination.Total != 3 || !list.Data[0].Current || list.Data[1].Current ||
		list.Data[0].UserAgent != "auth-test" || list.Data[0].IP != "127.0.0.1" {
		t.Fatalf("list %s", r.body)
	}
	b.do("GET", "/api/v1/auth/sessions?limit=2&offset=0", me.AccessToken, nil).json(t, &list)
	if len(list.Data) != 2 || !list.Pagination.HasMore || list.Pagination.Limit != 2 {
		t.Fatalf("page %+v", list)
	}
	if r := b.do("GET", "/api/v1/auth/sessions?limit=0", me.AccessToken, nil); r.status != http.StatusBadRequest {
		t.Fatalf("limit=0: %d", r.status)
	}
	// Sign the oldest device out: its refresh token stops working, the others keep theirs.
	b.do("GET", "/api/v1/auth/sessions", me.AccessToken, nil).json(t, &list)
	oldest := list.Data[2].ID
	if r := b.do("DELETE", "/api/v1/auth/sessions/"+oldest, me.AccessToken, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := b.refresh(devices[0].RefreshToken); r.status != http.StatusUnauthorized {
		t.Fatalf("signed-out device refreshed: %d", r.status)
	}
	b.mustTokens(b.refresh(devices[1].RefreshToken))
	b.do("GET", "/api/v1/auth/sessions", me.AccessToken, nil).json(t, &list)
	if len(list.Data) != 2 {
		t.Fatalf("%d sessions after sign-out", len(list.Data))
	}
	// Another user's session, an unknown id and a non-UUID are all 404.
	other := b.devLogin(newEmail())
	for _, id := range []string{list.Data[0].ID, "0190b7a0-0000-7000-8000-000000000000", "not-a-uuid"} {
		if r := b.do("DELETE", "/api/v1/auth/sessions/"+id, other.AccessToken, nil); r.status != http.StatusNotFound || r.errorCode() != "NOT_FOUND" {
			t.Fatalf("delete %s as another user: %d %s", id, r.status, r.body)
		}
	}
	if r := b.do("GET", "/api/v1/auth/sessions", "", nil); r.status != http.StatusUnauthorized || r.errorCode() != "UNAUTHORIZED" {
		t.Fatalf("no token: %d %s", r.status, r.body)
	}
}

func TestDevLoginValidatesAndCreatesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	r := b.do("POST", "/api/v1/auth/dev/login", "", map[string]string{"email": "nope", "name": strings.Repeat("n", 101)})
	if r.status != http.StatusBadRequest || len(r.errorFields()) != 2 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	email := newEmail()
	a := b.devLogin(strings.ToUpper(email[:1]) + email[1:])
	c := b.devLogin(email)
	if a.User.ID != c.User.ID || a.User.GoogleID != "" || a.User.Email != email {
		t.Fatalf("users %+v %+v", a.User, c.User)
	}
	b.waitEvent(authevents.TypeUserCreated, a.User.ID)
	if n := b.outboxCount(authevents.TypeUserCreated, a.User.ID); n != 1 {
		t.Fatalf("%d created events", n)
	}
}

func TestGoogleSignInLinksTheDevUserOfItsEmail(t *testing.T) {
	t.Parallel()
	b := setup(t, withDevLogin)
	p := googletest.NewPerson()
	dev := b.devLogin(p.Email)
	g := b.googleSignIn(p)
	if g.User.ID != dev.User.ID || g.User.GoogleID != p.Sub {
		t.Fatalf("dev user %s, Google user %+v", dev.User.ID, g.User)
	}
	// Another Google account presenting the same (reassigned) address is refused rather
	// than handed this account.
	other := googletest.NewPerson()
	other.Email = p.Email
	r := b.do("POST", "/api/v1/auth/google", "", map[string]string{"id_token": b.google.Token(t, other, b.clock.Now())})
	if r.status != http.StatusUnauthorized || r.errorCode() != "GOOGLE_AUTH_FAILED" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}
