package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

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

func down(err error) bool {
	var connect *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connect), errors.As(err, &netErr), pgconn.Timeout(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &pgErr):
		// Class 08 connection exception; 57P01–57P03 shutdown or not yet accepting; 53300
		// too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	// pgx reports a connection lost mid-transaction as a closed conn or a closed pool.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool")
}
