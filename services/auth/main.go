// Command auth is Perpetua Flow's identity service: Google sign-in, our access and refresh
// tokens, sessions, the user profile and the signing keys' JWKS. `auth migrate` applies
// the schema's migrations and exits.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		err = Migrate(ctx, os.Getenv, os.Stdout)
	} else {
		err = Run(ctx, os.Getenv, os.Stdout, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "auth:", err)
		os.Exit(1)
	}
}
