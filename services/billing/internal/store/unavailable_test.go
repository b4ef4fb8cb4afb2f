package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want apperr.Code
	}{
		{"admin shutdown", fmt.Errorf("pg: begin: %w", &pgconn.PgError{Code: "57P01"}), apperr.ServiceUnavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, apperr.ServiceUnavailable},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), apperr.ServiceUnavailable},
		{"unique violation stays internal", &pgconn.PgError{Code: "23505"}, apperr.Internal},
		{"an app error passes", apperr.New(apperr.NotFound, "x"), apperr.NotFound},
		{"plain error", errors.New("boom"), apperr.Internal},
	}
	for _, tt := range tests {
		if got := apperr.CodeOf(store.Unavailable(tt.err)); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	// A refused connection, for real.
	f := setup(t)
	f.pool.Close()
	_, err := f.store.Consume(f.ctx, newUser(), "op", 1, "x", f.clock.Now())
	if got := apperr.CodeOf(store.Unavailable(err)); got != apperr.ServiceUnavailable {
		t.Fatalf("closed pool: %v", err)
	}
}
