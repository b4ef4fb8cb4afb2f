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
	// DatabaseURL is an existing, empty database the services use (each migrates its own
	// schema into it). Start makes a fresh pgtest database when it is empty; New needs it.
	DatabaseURL string
	// Dir holds the logs, the NATS store and the signing key. Empty: a temporary
	// directory (the test's for Start; one that Close removes for New).
	Dir string
}

// Stack is a running system.
type Stack struct {
	GatewayURL  string
	URLs        map[string]string // service → http://127.0.0.1:port
	NATSURL     string
	DatabaseURL string
	KeyFile     string

	t       testing.TB // nil for a stack made by New
	binDir  string
	logDir  string
	tempDir string // removed by Close (New only)
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
		// The services build in the workspace even when the caller runs with GOWORK=off
		// (a module that is not in go.work yet, like the benchmark before it is added).
		cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
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
	if o.DatabaseURL == "" {
		o.DatabaseURL = pgtest.NewDatabase(t, "e2e", func(context.Context, string) error { return nil })
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := launch(o)
	if s != nil {
		s.t = t
		t.Cleanup(s.stopAll)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// New is Start for programs that are not tests (the benchmark command): o.DatabaseURL is
// required, errors are returned, and the caller stops everything with Close. A stack from
// New answers the error-returning methods (AwaitReady, Launch, StartNATSErr, Pid); the
// methods that fail a test (WaitReady, Restart, StartNATS, SignIn) need a stack from Start.
func New(o Options) (*Stack, error) {
	if o.DatabaseURL == "" {
		return nil, errors.New("stack: New needs Options.DatabaseURL")
	}
	var tempDir string
	if o.Dir == "" {
		var err error
		if tempDir, err = os.MkdirTemp("", "perpetua-stack-"); err != nil {
			return nil, err
		}
		o.Dir = tempDir
	}
	s, err := launch(o)
	if s != nil {
		s.tempDir = tempDir
	}
	if err != nil {
		if s != nil {
			_ = s.Close()
		} else if tempDir != "" {
			_ = os.RemoveAll(tempDir)
		}
		return nil, err
	}
	return s, nil
}

// Close stops the services (gateway first) and the broker, and removes the temporary
// directory New made. For a stack from Start the test's cleanup does this.
func (s *Stack) Close() error {
	s.stopAll()
	if s.tempDir != "" {
		return os.RemoveAll(s.tempDir)
	}
	return nil
}

// launch starts everything; on error the returned stack (when not nil) holds what was
// started, for the caller to stop.
func launch(o Options) (*Stack, error) {
	bin, err := binaries()
	if err != nil {
		return nil, err
	}
	s := &Stack{binDir: bin, procs: map[string]*exec.Cmd{}, envs: map[string][]string{}, URLs: map[string]string{}}
	s.logDir = filepath.Join(o.Dir, "logs")
	s.natsDir = filepath.Join(o.Dir, "nats")
	for _, d := range []string{s.logDir, s.natsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	s.nats, err = natsembed.Start(natsembed.Options{StoreDir: s.natsDir})
	if err != nil {
		return nil, err
	}
	s.NATSURL = s.nats.ClientURL()
	s.DatabaseURL = o.DatabaseURL
	s.KeyFile = filepath.Join(o.Dir, "signing.pem")
	if err := authn.GenerateKeyFile(s.KeyFile); err != nil {
		return s, err
	}
	ports := map[string]int{}
	for _, name := range Services {
		p, err := freePort()
		if err != nil {
			return s, err
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
	// The four domain services migrate their own schemas at start; start them together.
	for _, name := range Services[:4] {
		if err := s.startProcess(name); err != nil {
			return s, err
		}
	}
	for _, name := range Services[:4] {
		if err := s.AwaitReady(name, 90*time.Second); err != nil {
			return s, err
		}
	}
	if err := s.Launch("gateway"); err != nil {
		return s, err
	}
	return s, nil
}

func environ(m map[string]string) []string {
	// The Go runtime's own knobs pass through, so a run can be tuned from outside.
	keep := []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"}
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

func (s *Stack) startProcess(name string) error {
	logf, err := os.OpenFile(filepath.Join(s.logDir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.binDir, name))
	cmd.Env = s.envs[name]
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	s.mu.Lock()
	s.procs[name] = cmd
	s.mu.Unlock()
	go func() { _ = cmd.Wait(); logf.Close() }()
	return nil
}

// WaitReady polls the service's /health/ready until it answers 200.
func (s *Stack) WaitReady(name string, timeout time.Duration) {
	s.t.Helper()
	if err := s.AwaitReady(name, timeout); err != nil {
		s.t.Fatal(err)
	}
}

// AwaitReady polls the service's /health/ready until it answers 200, and fails early when
// the process exits.
func (s *Stack) AwaitReady(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := client.Get(s.URLs[name] + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
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
	return fmt.Errorf("%s not ready within %v; its log ends:\n%s", name, timeout, s.LogTail(name, 40))
}

// Launch starts a stopped or killed service again and waits until it is ready.
func (s *Stack) Launch(name string) error {
	if err := s.startProcess(name); err != nil {
		return err
	}
	return s.AwaitReady(name, 60*time.Second)
}

// Pid is the process id of a running service, or 0.
func (s *Stack) Pid(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cmd := s.procs[name]; cmd != nil && cmd.Process != nil {
		return cmd.Process.Pid
	}
	return 0
}

// LogPath is the file a service writes its log to.
func (s *Stack) LogPath(name string) string { return filepath.Join(s.logDir, name+".log") }

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
	if err := s.Launch(name); err != nil {
		s.t.Fatal(err)
	}
}

// StopNATS shuts the broker down; StartNATS brings it back on the same port and store.
func (s *Stack) StopNATS() {
	s.nats.Shutdown()
	s.nats.WaitForShutdown()
}

// StartNATS restarts the broker after StopNATS, on the same address and store.
func (s *Stack) StartNATS() {
	s.t.Helper()
	if err := s.StartNATSErr(); err != nil {
		s.t.Fatal(err)
	}
}

// StartNATSErr is StartNATS returning its error.
func (s *Stack) StartNATSErr() error {
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
	return err
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
	if s.t != nil && s.t.Failed() {
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
		s.nats = nil
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
