// Command ai is Perpetua Flow's AI service: streamed chat with suggested actions, subtask
// suggestions, note-to-task conversion and voice transcription, paid for with credits
// reserved from billing before each provider call and refunded when the call fails.
// `ai migrate` applies the migrations and exits.
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
		fmt.Fprintln(os.Stderr, "ai:", err)
		os.Exit(1)
	}
}
