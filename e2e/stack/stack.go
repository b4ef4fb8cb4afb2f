// Package stack starts the whole system for end-to-end tests, benchmarks and fault
// injection: the five services built from this checkout and run as child processes on
// free ports, against a test database (libs/pgtest) and an in-process JetStream server,
// so a test can talk to the gateway, read the event streams, and kill or restart any
// service like an operator would.
package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/pgtest"
)

// Services in start order: the gateway last, so it is ready only when its upstreams are.
var Services = []string{"auth", "tasks", "billing", "ai", "gateway"}

// Options adjust the stack for a test.
type Options struct {
	// Env is added to every service's environment (after the defaults).
	Env map[string]string
	// ServiceEnv is added to one service's environment.
	ServiceEnv map[string]map[string]string
}

// Stack is a running system.
type Stack struct {
	GatewayURL  string
	URLs        map[string]string // service → http://127.0.0.1:port
	NATSURL     string
	DatabaseURL string
	KeyFile     string

	t       testing.TB
	binDir  string
	logDir  string
	mu      sync.Mutex
	procs   map[string]*exec.Cmd
	envs    map[string][]string
	nats    *server.Server
	natsDir string
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries builds the five services once per test binary.
func binaries() (string, error) {
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "perpetua-bin-")
		if err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-o", buildDir + string(os.PathSeparator)}
		for _, s := range Services {
			args = append(args, "./services/"+s)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	return buildDir, buildErr
}

// repoRoot is the directory holding go.work.
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
			return "", errors.New("stack: go.work not found above the working directory")
		}
		dir = parent
	}
}

// Start brings up NATS, a fresh database and the five services, and waits until the
// gateway is ready. Everything stops at the end of the test.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{t: t, binDir: bin, logDir: t.TempDir(), procs: map[string]*exec.Cmd{}, envs: map[string][]string{}, URLs: map[string]string{}}
	s.natsDir = t.TempDir()
	s.nats, err = natsembed.Start(natsembed.Options{StoreDir: s.natsDir})
	if err != nil {
		t.Fatal(err)
	}
	s.NATSURL = s.nats.ClientURL()
	s.DatabaseURL = pgtest.NewDatabase(t, "e2e", func(context.Context, string) error { return nil })
	s.KeyFile = filepath.Join(t.TempDir(), "signing.pem")
	if err := authn.GenerateKeyFile(s.KeyFile); err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{}
	for _, name := range Services {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[name] = p
		s.URLs[name] = fmt.Sprintf("http://127.0.0.1:%d", p)
	}
	s.GatewayURL = s.URLs["gateway"]
	common := map[string]string{
		"DATABASE_URL":       s.DatabaseURL,
		"DATABASE_MAX_CONNS": "10",
		"NATS_URL":           s.NATSURL,
		"LOG_LEVEL":          "info",
		"JWKS_URL":           s.URLs["auth"] + "/.well-known/jwks.json",
		"SHUTDOWN_TIMEOUT":   "10s",
	}
	defaults := map[string]map[string]string{
		"auth": {"AUTH_SIGNING_KEYS": s.KeyFile, "AUTH_DEV_LOGIN": "true"},
		"gateway": {
			"UPSTREAM_AUTH_URL": s.URLs["auth"], "UPSTREAM_TASKS_URL": s.URLs["tasks"],
			"UPSTREAM_AI_URL": s.URLs["ai"], "UPSTREAM_BILLING_URL": s.URLs["billing"],
			"RATE_LIMIT_AUTH": "10000/1m", "RATE_LIMIT_AI": "10000/1m", "RATE_LIMIT_GENERAL": "100000/1m",
		},
	}
	for _, name := range Services {
		env := map[string]string{"HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", ports[name])}
		for _, m := range []map[string]string{common, defaults[name], o.Env, o.ServiceEnv[name]} {
			for k, v := range m {
				env[k] = v
			}
		}
		s.envs[name] = environ(env)
	}
	t.Cleanup(s.stopAll)
	// The four domain services migrate their own schemas at start; start them together.
	for _, name := range Services[:4] {
		s.start(name)
	}
	for _, name := range Services[:4] {
		s.WaitReady(name, 90*time.Second)
	}
	s.start("gateway")
	s.WaitReady("gateway", 30*time.Second)
	return s
}

func environ(m map[string]string) []string {
	keep := []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR"}
	var env []string
	for _, k := range keep {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	return env
}

func (s *Stack) start(name string) {
	s.t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.logDir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(s.binDir, name))
	cmd.Env = s.envs[name]
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	s.mu.Lock()
	s.procs[name] = cmd
	s.mu.Unlock()
	go func() { _ = cmd.Wait(); logf.Close() }()
}

// WaitReady polls the service's /health/ready until it answers 200.
func (s *Stack) WaitReady(name string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := client.Get(s.URLs[name] + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		s.mu.Lock()
		cmd := s.procs[name]
		s.mu.Unlock()
		if cmd != nil && cmd.ProcessState != nil {
			break // exited
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("%s not ready within %v; its log ends:\n%s", name, timeout, s.LogTail(name, 40))
}

// Kill stops a service with SIGKILL, as a crash would.
func (s *Stack) Kill(name string) {
	s.signal(name, syscall.SIGKILL, 5*time.Second)
}

// Stop stops a service with SIGTERM and waits for it to exit.
func (s *Stack) Stop(name string) {
	s.signal(name, syscall.SIGTERM, 20*time.Second)
}

// Restart starts a stopped or killed service again and waits until it is ready.
func (s *Stack) Restart(name string) {
	s.t.Helper()
	s.start(name)
	s.WaitReady(name, 60*time.Second)
}

// StopNATS shuts the broker down; StartNATS brings it back on the same port and store.
func (s *Stack) StopNATS() {
	s.nats.Shutdown()
	s.nats.WaitForShutdown()
}

// StartNATS restarts the broker after StopNATS, on the same address and store.
func (s *Stack) StartNATS() {
	s.t.Helper()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(s.NATSURL, "nats://"))
	var p int
	fmt.Sscan(port, &p)
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.nats, err = natsembed.Start(natsembed.Options{Host: host, Port: p, StoreDir: s.natsDir})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
}

func (s *Stack) signal(name string, sig syscall.Signal, wait time.Duration) {
	s.mu.Lock()
	cmd := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if syscall.Kill(cmd.Process.Pid, 0) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

func (s *Stack) stopAll() {
	if s.t.Failed() {
		for _, name := range Services {
			s.t.Logf("--- %s log (tail) ---\n%s", name, s.LogTail(name, 30))
		}
	}
	for i := len(Services) - 1; i >= 0; i-- {
		s.Stop(Services[i])
	}
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
}

// LogTail is the last n lines a service wrote.
func (s *Stack) LogTail(name string, n int) string {
	f, err := os.Open(filepath.Join(s.logDir, name+".log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
