// Command stack is `make run`: the whole system on this machine (embedded NATS, a
// private PostgreSQL under DATA_DIR or DATABASE_URL, the five services), ready in one
// command and stopped with Ctrl-C. The work is in internal/stack.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/perpetua-flow/backend/deploy/local/internal/stack"
)

func main() {
	os.Exit(run())
}

func run() int {
	port := flag.Int("port", 8080, "the gateway's port on 127.0.0.1 (HTTP_ADDR, when set, wins)")
	readyTimeout := flag.Duration("ready-timeout", stack.DefaultReadyTimeout, "how long each service may take to become ready")
	noBuild := flag.Bool("no-build", false, "use the binaries already in DATA_DIR/bin instead of building them")
	flag.Parse()

	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "[stack]", err)
		return 1
	}
	// The first Ctrl-C stops the stack in order; a second one kills what is left.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	force := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		close(force)
	}()

	err = stack.Run(ctx, stack.Options{
		Root: root, Port: *port, Environ: os.Environ(), Out: os.Stdout,
		ReadyTimeout: *readyTimeout, Force: force, SkipBuild: *noBuild,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "[stack] error:", err)
		return 1
	}
	return 0
}

// repoRoot is the directory holding go.work, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory: run make run from the repository")
		}
		dir = parent
	}
}
