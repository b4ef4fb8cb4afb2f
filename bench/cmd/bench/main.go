// Command bench is `make bench`: it starts the whole system (or uses a running one),
// signs in a pool of users, seeds their tasks, and measures the API through the gateway
// and straight at the tasks service with vegeta at fixed and maximum rates over 64
// connections, next to the floors of this machine measured in the same run (a bare
// net/http handler, raw pgx transactions), plus event latency, credit consumes over NATS
// and the services' resident memory. It writes bench/REPORT.md (keeping the previous one
// as REPORT.previous.md), bench/REPORT.json and bench/latency.png.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// The load generator shares the two cores with what it measures: it collects as
		// rarely as the services do (libs/svc DefaultGCPercent).
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	url         string // a running gateway instead of starting the stack
	tasksURL    string
	databaseURL string
	natsURL     string
	out         string
	quick       bool
	phase       time.Duration
	rate        int
	conns       int
	users       int
	tasksPer    int
	durable     bool
	logLevel    string
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "", "gateway of a running stack (default: start one); needs -tasks-url, -database-url and -nats-url")
	fs.StringVar(&o.tasksURL, "tasks-url", "", "the running stack's tasks service, for the direct phases")
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "database of the running stack, or an empty database for the started one (default: a private durable cluster)")
	fs.StringVar(&o.natsURL, "nats-url", "", "NATS of the running stack")
	fs.StringVar(&o.out, "out", "", "directory for REPORT.md, REPORT.json and latency.png (default: bench/ of the repository)")
	fs.BoolVar(&o.quick, "quick", false, "short phases (about a minute in all)")
	fs.DurationVar(&o.phase, "phase", 0, "length of each phase (default 6s, 2s with -quick)")
	fs.IntVar(&o.rate, "rate", 500, "requests per second of the fixed-rate phases")
	fs.IntVar(&o.conns, "conns", 64, "connections (and in-flight requests) of every phase")
	fs.IntVar(&o.users, "users", 64, "signed-in users whose tasks are read and updated")
	fs.IntVar(&o.tasksPer, "tasks-per-user", 100, "tasks seeded per user")
	fs.BoolVar(&o.durable, "durable", true, "the private cluster syncs to disk (fsync, synchronous_commit) like production")
	fs.StringVar(&o.logLevel, "log-level", "warn", "LOG_LEVEL of the started services")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.phase == 0 {
		o.phase = 6 * time.Second
		if o.quick {
			o.phase = 2 * time.Second
		}
	}
	if o.url != "" && (o.tasksURL == "" || o.databaseURL == "" || o.natsURL == "") {
		return o, fmt.Errorf("-url needs -tasks-url, -database-url and -nats-url")
	}
	if o.out == "" {
		root, err := repoRoot()
		if err != nil {
			return o, err
		}
		o.out = filepath.Join(root, "bench")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := newBench(ctx, o, log)
	if err != nil {
		return err
	}
	defer b.close()
	rep, err := b.all(ctx)
	if err != nil {
		return err
	}
	return write(o.out, rep, log)
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
			return "", fmt.Errorf("go.work not found above %s: run from the repository", dir)
		}
		dir = parent
	}
}
