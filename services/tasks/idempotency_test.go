package main

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/google/uuid"
)

func (e *env) taskCount(t testing.TB, userID string) int {
	t.Helper()
	var n int
	if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM tasks WHERE user_id = $1`, userID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestScenario5Idempotency is API.md §10 scenario 5.
func TestScenario5Idempotency(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	key := uuid.NewString()
	first := u.do(t, "POST", "/api/v1/tasks", `{"title":"once"}`, "Idempotency-Key", key)
	want(t, first, http.StatusCreated)
	again := u.do(t, "POST", "/api/v1/tasks", `{"title":"once"}`, "Idempotency-Key", key)
	want(t, again, http.StatusCreated)
	if again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(first.Body) {
		t.Fatalf("replay: %v %s", again.Header, again.Body)
	}
	if n := e.taskCount(t, u.ID); n != 1 {
		t.Fatalf("%d tasks after a replay, want 1", n)
	}
	wantError(t, u.do(t, "POST", "/api/v1/tasks", `{"title":"other"}`, "Idempotency-Key", key), 422, "IDEMPOTENCY_KEY_REUSED")
	// Keys are per user: another user's identical key is a new request.
	o := e.user(t, "free")
	want(t, o.do(t, "POST", "/api/v1/tasks", `{"title":"once"}`, "Idempotency-Key", key), http.StatusCreated)

	// 50 concurrent identical requests create one task; the others wait their turn (409)
	// or get the replay.
	key2 := uuid.NewString()
	var wg sync.WaitGroup
	res := make([]response, 50)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = u.do(t, "POST", "/api/v1/tasks", `{"title":"burst"}`, "Idempotency-Key", key2)
		}()
	}
	wg.Wait()
	created := 0
	for _, r := range res {
		switch r.Status {
		case http.StatusCreated:
			if r.Header.Get("Idempotent-Replayed") != "true" {
				created++
			}
		case http.StatusConflict:
			wantError(t, r, 409, "IDEMPOTENCY_IN_PROGRESS")
		default:
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
	}
	if created != 1 {
		t.Fatalf("%d requests ran, want 1", created)
	}
	if n := e.taskCount(t, u.ID); n != 2 {
		t.Fatalf("%d tasks, want 2", n)
	}
	// Mutations other than POST are covered too: a replayed PATCH does not bump the version.
	tk := first.data(t)
	k3 := uuid.NewString()
	p1 := u.do(t, "PATCH", "/api/v1/tasks/"+id(tk), `{"hidden":true}`, "Idempotency-Key", k3)
	want(t, p1, 200)
	want(t, u.do(t, "PATCH", "/api/v1/tasks/"+id(tk), `{"hidden":true}`, "Idempotency-Key", k3), 200)
	if v := u.do(t, "GET", "/api/v1/tasks/"+id(tk), nil).data(t)["version"]; v != float64(2) {
		t.Fatalf("version %v", v)
	}
}
