// Command gateway is Perpetua Flow's only public listener: it verifies access tokens,
// applies the rate limits of API.md §1 and reverse-proxies every path to the service that
// owns it (TEAM.md's routing table), streaming SSE through unbuffered.
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
	if err := Run(ctx, os.Getenv, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}
