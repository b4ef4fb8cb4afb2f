package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/pgcluster"
)

// DatabaseName is the database the services share (one schema each) in the private cluster.
const DatabaseName = "perpetua"

// errNoPostgres explains what to do when there is no server and no way to install one.
var errNoPostgres = errors.New("no PostgreSQL server binaries (initdb, pg_ctl) on this machine.\n" +
	"  Either install them (Debian/Ubuntu: sudo apt-get install -y postgresql; macOS: brew install postgresql)\n" +
	"  or point the stack at a server you have: DATABASE_URL=postgres://user:pass@host:5432/db make run")

// startPostgres starts (creating on first use) the durable private cluster under dir and
// returns the URL of DatabaseName in it. Without server binaries it installs the
// distribution's package when it can (root with apt-get), else explains what to do.
func startPostgres(ctx context.Context, dir string, out io.Writer) (*pgcluster.Cluster, string, error) {
	if _, err := pgcluster.FindBinaries(); errors.Is(err, pgcluster.ErrNoBinaries) {
		if err := installPostgres(ctx, out); err != nil {
			return nil, "", err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	if err := stopLeftover(filepath.Join(dir, "data"), out); err != nil {
		return nil, "", err
	}
	fmt.Fprintf(out, "[stack] starting PostgreSQL under %s\n", dir)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: true})
	if err != nil {
		return nil, "", fmt.Errorf("postgres: %w\n  (the data directory is %s; its log is %s)", err, dir, filepath.Join(dir, "postgres.log"))
	}
	if err := ensureDatabase(ctx, c.URL("postgres"), DatabaseName); err != nil {
		_ = c.Stop()
		return nil, "", err
	}
	return c, c.URL(DatabaseName), nil
}

func installPostgres(ctx context.Context, out io.Writer) error {
	apt, err := exec.LookPath("apt-get")
	if os.Geteuid() != 0 || err != nil {
		return errNoPostgres
	}
	fmt.Fprintln(out, "[stack] no PostgreSQL server binaries: installing the postgresql package with apt-get")
	install := func() error {
		cmd := exec.CommandContext(ctx, apt, "install", "-y", "--no-install-recommends", "postgresql")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = out, out
		return cmd.Run()
	}
	if err := install(); err != nil {
		// A fresh machine has no package lists yet.
		update := exec.CommandContext(ctx, apt, "update")
		update.Stdout, update.Stderr = out, out
		if uerr := update.Run(); uerr != nil {
			return fmt.Errorf("apt-get update: %w\n%w", uerr, errNoPostgres)
		}
		if err := install(); err != nil {
			return fmt.Errorf("apt-get install postgresql: %w\n%w", err, errNoPostgres)
		}
	}
	if _, err := pgcluster.FindBinaries(); err != nil {
		return fmt.Errorf("postgresql installed but %w", err)
	}
	return nil
}

// ensureDatabase creates db on the server of adminURL unless it exists.
func ensureDatabase(ctx context.Context, adminURL, db string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("postgres: create database %s: %w", db, err)
	}
	return nil
}

// stopLeftover stops a server an earlier run left behind (the stack was killed before it
// could stop it): it holds the data directory, and the new one could not start. The
// postmaster's pid is the first line of postmaster.pid; SIGINT is its fast shutdown.
func stopLeftover(dataDir string, out io.Writer) error {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return nil // not running (or never initialised)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return nil // a stale file; pg_ctl start copes with it
	}
	fmt.Fprintf(out, "[stack] a PostgreSQL left by an earlier run is still up (pid %d); stopping it\n", pid)
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("postgres: stop the server left by an earlier run (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: the server left by an earlier run (pid %d) did not stop within 30s", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
