package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

// crashChildEnv carries the child's environment (JSON) and marks the child process.
const crashChildEnv = "TASKS_CRASH_CHILD"

// TestCrashChild is not a test of its own: it is the tasks service as a separate process
// for TestCrashRemindersFireOnce, which kills it with SIGKILL. It runs only in that child.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(crashChildEnv)
	if raw == "" {
		t.Skip("runs only as the child process of TestCrashRemindersFireOnce")
	}
	var vars map[string]string
	if err := json.Unmarshal([]byte(raw), &vars); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err := Run(ctx, func(k string) string { return vars[k] }, os.Stderr, func(addr string) { fmt.Printf("LISTENING %s\n", addr) })
	if err != nil {
		t.Fatal(err)
	}
}

// startChild runs the service as a child process and returns it with its base URL.
func startChild(t *testing.T, vars map[string]string) (*exec.Cmd, string) {
	t.Helper()
	b, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(b))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatal("the child service did not start")
	}
	return nil, ""
}

// TestCrashRemindersFireOnce is the crash test of issue 6: 200 reminders fall due at one
// moment; the tasks process is killed with SIGKILL while they fire; after a restart every
// reminder has fired exactly once: one notification, one tasks.reminder.fired in the
// outbox and one activity row each. Jobs the killed process left running are retried by
// River's rescuer (JOB_RESCUE_AFTER, short here) and find their reminder already fired,
// or fire it if its transaction died with the process.
func TestCrashRemindersFireOnce(t *testing.T) {
	t.Parallel()
	const (
		tasks     = 40
		reminders = tasks * 5
	)
	dbURL := pgtest.NewDatabase(t, "tasks", migrateURL)
	iss := authntest.NewIssuer(t)
	vars := map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": natsembed.StartTest(t), "HTTP_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
		"JOB_TIMEOUT": "1s", "JOB_RESCUE_AFTER": "2s",
	}
	for k, v := range iss.Env() {
		vars[k] = v
	}
	first, url := startChild(t, vars)
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = name
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &env{URL: url, Issuer: iss, Pool: pool, client: &http.Client{Timeout: 30 * time.Second}, vars: vars}
	u := e.user(t, "pro")

	due := time.Now().UTC().Add(6 * time.Second).Format(time.RFC3339Nano)
	for range tasks {
		tk := u.createTask(t, map[string]any{"title": "due together"})
		for range 5 {
			want(t, u.do(t, "POST", "/api/v1/tasks/"+id(tk)+"/reminders", map[string]any{"type": "absolute", "scheduled_at": due}), 201)
		}
	}
	ctx := context.Background()
	count := func(q string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, q, u.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	firedQ := `SELECT count(*) FROM reminders WHERE user_id = $1 AND fired`
	deadline := time.Now().Add(60 * time.Second)
	for count(firedQ) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reminder fired")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	before := count(firedQ)
	t.Logf("killed with %d of %d reminders fired", before, reminders)

	// The killed process held River's leadership; its lease would run out on its own
	// (tens of seconds) before the new process's rescuer, which runs on the leader, retries
	// the jobs left running. Ending the lease now keeps the test short; what it proves,
	// exactly one firing per reminder, does not depend on when the rescue comes.
	if _, err := pool.Exec(ctx, `DELETE FROM river_leader`); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	_, e.URL = startChild(t, vars)
	deadline = time.Now().Add(90 * time.Second)
	for count(firedQ) != reminders {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reminders fired 90 s after the restart", count(firedQ), reminders)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("all fired %v after the restart", time.Since(restarted).Round(time.Second))
	// Give a duplicate the chance to show: wait until no job of the reminders is left to run.
	eventually(t, "the reminder jobs to finish", func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'tasks.reminder.fire' AND state NOT IN ('completed', 'discarded', 'cancelled')`).Scan(&n)
		return err == nil && n == 0
	})
	if n := count(`SELECT count(*) FROM notifications WHERE user_id = $1 AND type = 'reminder'`); n != reminders {
		t.Fatalf("%d reminder notifications, want %d", n, reminders)
	}
	if n := count(`SELECT count(*) FROM outbox WHERE type = 'tasks.reminder.fired' AND payload->'data'->>'user_id' = $1::text`); n != reminders {
		t.Fatalf("%d tasks.reminder.fired events, want %d", n, reminders)
	}
	if n := count(`SELECT count(*) FROM (SELECT entity_id FROM activity WHERE user_id = $1 AND action = 'fired' GROUP BY entity_id HAVING count(*) = 1) x`); n != reminders {
		t.Fatalf("%d reminders with exactly one fired activity row, want %d", n, reminders)
	}
}
