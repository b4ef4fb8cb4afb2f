package svc

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// RunFunc serves until ctx ends; ready (may be nil) receives the bound address.
type RunFunc func(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string)) error

// MigrateFunc applies a service's migrations and returns.
type MigrateFunc func(ctx context.Context, getenv func(string) string, stdout io.Writer) error

// Main is every service's main: a context ended by SIGINT or SIGTERM, then `migrate`
// (when given as the first argument and migrate is not nil) or run, and exit code 1 with
// the error on stderr when it fails.
func Main(name string, run RunFunc, migrate MigrateFunc) {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], run, migrate)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, run RunFunc, migrate MigrateFunc) error {
	switch {
	case len(args) > 0 && args[0] == "migrate" && migrate != nil:
		return migrate(ctx, os.Getenv, os.Stdout)
	case len(args) > 0:
		return fmt.Errorf("unknown command %q (the only one is migrate)", args[0])
	default:
		return run(ctx, os.Getenv, os.Stdout, nil)
	}
}
