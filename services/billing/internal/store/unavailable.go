package store

import (
	"context"
	"errors"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Unavailable turns a failure to reach Postgres (refused or broken connection, server
// shutting down, too many connections, a timeout) into SERVICE_UNAVAILABLE, so callers
// see a dependency that is down as such (and retry, with the same operation id) rather
// than as an internal error. Other errors pass through unchanged.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := apperr.As(err); ok || errors.Is(err, context.Canceled) {
		return err
	}
	if down(err) {
		return apperr.Wrap(err, apperr.ServiceUnavailable, "the billing database is unavailable; try again shortly")
	}
	return err
}

func down(err error) bool { return apperr.DependencyDown(err) }
