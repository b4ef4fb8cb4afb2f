package apperr

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
)

// Unavailable turns a failure to reach a dependency (a refused or broken connection, a
// database shutting down or refusing connections, a timeout) into SERVICE_UNAVAILABLE, so
// clients see a dependency that is down as such, and retry, rather than as an internal
// error. Errors that already carry a code, and all others, pass through unchanged. Both
// edges (httpx.WriteError, rpc replies) apply it, so a store need not.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := As(err); ok || errors.Is(err, context.Canceled) {
		return err
	}
	if DependencyDown(err) {
		return Wrap(err, ServiceUnavailable, "a dependency is unavailable; try again shortly")
	}
	return err
}

// sqlStater is what a Postgres error (pgconn.PgError) offers, without importing pgx here.
type sqlStater interface{ SQLState() string }

// DependencyDown reports errors that mean "could not reach it", not "it said no".
func DependencyDown(err error) bool {
	var netErr net.Error
	var st sqlStater
	switch {
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &st):
		// Class 08 connection exception; 57P01–57P03 shutdown or not yet accepting;
		// 53300 too many connections.
		code := st.SQLState()
		return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03" || code == "53300"
	}
	// pgx reports a connection lost mid-transaction, or a pool that cannot connect, in words.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool") ||
		strings.Contains(msg, "failed to connect to")
}
