// Command billing is the billing service of Perpetua Flow: the credit ledger, Pro
// subscriptions, Checkout.com payments and webhooks (API.md §5). `billing migrate`
// applies the migrations and exits.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := Run
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		run = func(ctx context.Context, getenv func(string) string, stdout io.Writer, _ func(string)) error {
			return Migrate(ctx, getenv, stdout)
		}
	}
	if err := run(ctx, os.Getenv, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "billing:", err)
		os.Exit(1)
	}
}
