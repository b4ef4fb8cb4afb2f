package apperr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/perpetua-flow/backend/libs/apperr"
)

func TestEveryCodeOfAPIHasItsStatus(t *testing.T) {
	t.Parallel()
	// API.md §9, one row per status.
	want := map[int][]apperr.Code{
		400: {apperr.Validation, apperr.IdempotencyKeyRequired, apperr.AudioDurationExceeded, apperr.InvalidAction},
		401: {apperr.Unauthorized, apperr.InvalidToken, apperr.TokenExpired, apperr.GoogleAuthFailed, apperr.InvalidRefreshToken, apperr.RefreshTokenReused, apperr.InvalidSignature},
		402: {apperr.InsufficientCredits},
		403: {apperr.ProTierRequired},
		404: {apperr.NotFound, apperr.TaskNotFound},
		409: {apperr.Conflict, apperr.LimitExceeded, apperr.Archived, apperr.FocusSessionActive, apperr.AlreadySubscribed, apperr.IdempotencyInProgress},
		413: {apperr.PayloadTooLarge},
		415: {apperr.UnsupportedMediaType},
		422: {apperr.IdempotencyKeyReused},
		429: {apperr.RateLimitExceeded, apperr.AITaskLimitReached},
		500: {apperr.Internal},
		503: {apperr.ServiceUnavailable, apperr.AIServiceUnavailable, apperr.TranscriptionServiceUnavailable},
	}
	for status, codes := range want {
		for _, c := range codes {
			if c.Status() != status {
				t.Errorf("%s → %d, want %d", c, c.Status(), status)
			}
		}
	}
	if apperr.Code("NOPE").Status() != http.StatusInternalServerError {
		t.Error("unknown codes must be 500")
	}
}

func TestErrorsIsAndAsThroughWrapping(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("store: %w", apperr.New(apperr.NotFound, "task not found"))
	if !errors.Is(err, apperr.New(apperr.NotFound, "")) {
		t.Fatal("errors.Is must match by code")
	}
	if errors.Is(err, apperr.New(apperr.Conflict, "")) {
		t.Fatal("different codes must not match")
	}
	if apperr.CodeOf(err) != apperr.NotFound || apperr.CodeOf(errors.New("x")) != apperr.Internal {
		t.Fatal("CodeOf")
	}
	var v apperr.Validator
	v.Check(true, "a", "fine")
	if v.Err() != nil {
		t.Fatal("no failures, no error")
	}
	v.Check(false, "title", "required")
	v.Add("priority", "must be low, medium or high")
	e, _ := apperr.As(v.Err())
	if e.Code != apperr.Validation || len(e.Details) != 2 {
		t.Fatalf("validator error = %+v", e)
	}
}

type fakePgError struct{ code string }

func (e fakePgError) Error() string    { return "pg: " + e.code }
func (e fakePgError) SQLState() string { return e.code }

func TestUnavailableClassifiesDependencyFailures(t *testing.T) {
	t.Parallel()
	down := []error{
		&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")},
		fmt.Errorf("query: %w", io.ErrUnexpectedEOF),
		fakePgError{"57P01"},
		fakePgError{"08006"},
		errors.New("failed to connect to `host=127.0.0.1`: dial error"),
	}
	for _, err := range down {
		if apperr.CodeOf(apperr.Unavailable(err)) != apperr.ServiceUnavailable {
			t.Errorf("%v: want SERVICE_UNAVAILABLE", err)
		}
	}
	notDown := []error{fakePgError{"23505"}, errors.New("boom"), apperr.New(apperr.NotFound, "x"), context.Canceled}
	for _, err := range notDown {
		if apperr.CodeOf(apperr.Unavailable(err)) == apperr.ServiceUnavailable {
			t.Errorf("%v: must not be SERVICE_UNAVAILABLE", err)
		}
	}
}
