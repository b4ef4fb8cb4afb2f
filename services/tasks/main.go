// Command tasks is the tasks service of Perpetua Flow: tasks, subtasks, notes, recovery,
// activity and notifications (API.md §3). `tasks migrate` applies the migrations and exits.
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
		fmt.Fprintln(os.Stderr, "tasks:", err)
		os.Exit(1)
	}
}
