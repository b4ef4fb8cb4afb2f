package e2e_test

import (
	"net/http"
	"testing"

	"github.com/perpetua-flow/backend/e2e/stack"
)

// The whole system comes up from this checkout and answers through the gateway.
func testStackComesUpReady(t *testing.T, s *stack.Stack) {
	c := s.NewClient().For(t)
	r := c.Must(http.StatusOK, "GET", "/health/ready", nil, nil)
	if r.Header.Get("X-Request-ID") == "" {
		t.Fatal("no X-Request-ID through the gateway")
	}
	addr := email()
	u := s.SignIn(addr).For(t)
	var me struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Tier  string `json:"tier"`
	}
	u.Must(http.StatusOK, "GET", "/api/v1/users/me", nil, nil).Data(t, &me)
	if me.ID != u.UserID || me.Email != addr || me.Tier != "free" {
		t.Fatalf("me = %+v", me)
	}
}
