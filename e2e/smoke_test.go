package e2e_test

import (
	"net/http"
	"testing"

	"github.com/perpetua-flow/backend/e2e/stack"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The whole system comes up from this checkout and answers through the gateway.
func TestStackComesUpReady(t *testing.T) {
	t.Parallel()
	s := stack.Start(t, stack.Options{})
	c := s.NewClient()
	r := c.Must(http.StatusOK, "GET", "/health/ready", nil, nil)
	if r.Header.Get("X-Request-ID") == "" {
		t.Fatal("no X-Request-ID through the gateway")
	}
	u := s.SignIn("smoke@example.com")
	var me struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Tier  string `json:"tier"`
	}
	u.Must(http.StatusOK, "GET", "/api/v1/users/me", nil, nil).Data(t, &me)
	if me.ID != u.UserID || me.Email != "smoke@example.com" || me.Tier != "free" {
		t.Fatalf("me = %+v", me)
	}
}
