// Package stack runs the whole system on one machine for `make run`: an embedded NATS
// server with JetStream, PostgreSQL (DATABASE_URL, or a private durable cluster under the
// data directory), an RSA signing key kept under the data directory, and the five
// services built from this checkout and run as child processes with prefixed logs. It
// waits until every service is ready, prints how to use it, and on Ctrl-C/SIGTERM stops
// the services (gateway first), then NATS and Postgres.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/natsembed"
)

// Options of a run.
type Options struct {
	// Root is the repository root (the directory holding go.work).
	Root string
	// Port is the gateway's port on 127.0.0.1 (HTTP_ADDR in Environ wins when set).
	Port int
	// Environ is the stack's environment, passed on to every service.
	Environ []string
	// Out receives the prefixed logs and the summary.
	Out io.Writer
	// ReadyTimeout bounds the wait for each service (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// StopGrace is how long a service gets to stop after SIGTERM (default DefaultStopGrace).
	StopGrace time.Duration
	// Force, when closed after ctx ends, kills what is still stopping (a second Ctrl-C).
	Force <-chan struct{}
	// BinDir overrides where binaries are looked up and built (default DATA_DIR/bin); with
	// SkipBuild the binaries there are used as they are (tests).
	BinDir    string
	SkipBuild bool
	// Ready, when not nil, receives the wiring once every service is ready (tests).
	Ready func(Wiring)
}

// Defaults of Options.
const (
	DefaultReadyTimeout = 120 * time.Second
	DefaultStopGrace    = 30 * time.Second
	DefaultDataDir      = ".data"
)

// Run brings the stack up, serves until ctx ends, and brings it down. It returns an error
// when something is missing or a service fails, with what to do about it.
func Run(ctx context.Context, o Options) (err error) {
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopGrace == 0 {
		o.StopGrace = DefaultStopGrace
	}
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = ctx.Err() // interrupted: not a failure to report
		}
	}()
	getenv := lookup(o.Environ)
	out := &lockedWriter{w: o.Out}
	say := func(format string, args ...any) { fmt.Fprintf(out, "[stack] "+format+"\n", args...) }

	dataDir := getenv("DATA_DIR")
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	if !filepath.IsAbs(dataDir) {
		dataDir = filepath.Join(o.Root, dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	gatewayAddr := getenv("HTTP_ADDR")
	if gatewayAddr == "" {
		gatewayAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port))
	}
	addrs, err := AllocateAddrs(gatewayAddr)
	if err != nil {
		return err
	}
	w := Wiring{Addrs: addrs}

	// Teardown runs in reverse order of start-up, whatever happened.
	var teardown []func()
	defer func() {
		for i := len(teardown) - 1; i >= 0; i-- {
			teardown[i]()
		}
	}()

	binDir := o.BinDir
	if binDir == "" {
		binDir = filepath.Join(dataDir, "bin")
	}
	present, err := presentServices(o.Root, binDir, o.SkipBuild)
	if err != nil {
		return err
	}
	if !o.SkipBuild {
		say("building %s into %s", strings.Join(present, ", "), binDir)
		began := time.Now()
		if err := build(ctx, o.Root, binDir, present, out); err != nil {
			return err
		}
		say("built in %s", time.Since(began).Round(100*time.Millisecond))
	}

	if w.NATSURL = getenv("NATS_URL"); w.NATSURL == "" {
		storeDir := filepath.Join(dataDir, "nats")
		ns, err := natsembed.Start(natsembed.Options{StoreDir: storeDir})
		if err != nil {
			return fmt.Errorf("embedded NATS: %w", err)
		}
		teardown = append(teardown, func() {
			ns.Shutdown()
			ns.WaitForShutdown()
			say("NATS stopped")
		})
		w.NATSURL = ns.ClientURL()
		say("NATS with JetStream at %s (store %s)", w.NATSURL, storeDir)
	}

	if w.DatabaseURL = getenv("DATABASE_URL"); w.DatabaseURL == "" {
		cluster, url, err := startPostgres(ctx, filepath.Join(dataDir, "postgres"), out)
		if err != nil {
			return err
		}
		teardown = append(teardown, func() {
			if err := cluster.Stop(); err != nil {
				say("stopping PostgreSQL: %v", err)
				return
			}
			say("PostgreSQL stopped")
		})
		w.DatabaseURL = url
		say("PostgreSQL at %s", url)
	}

	if w.SigningKeys = getenv("AUTH_SIGNING_KEYS"); w.SigningKeys == "" {
		if w.SigningKeys, err = ensureSigningKey(filepath.Join(dataDir, "keys")); err != nil {
			return err
		}
	}

	procs := map[string]*proc{}
	var mu sync.Mutex
	stopAll := func() {
		mu.Lock()
		defer mu.Unlock()
		if p := procs["gateway"]; p != nil {
			p.stop(o.StopGrace, o.Force)
		}
		var wg sync.WaitGroup
		for _, name := range Backends {
			if p := procs[name]; p != nil {
				wg.Go(func() { p.stop(o.StopGrace, o.Force) })
			}
		}
		wg.Wait()
		procs = map[string]*proc{}
	}
	teardown = append(teardown, func() {
		say("stopping the services")
		stopAll()
	})
	start := func(name string) (*proc, error) {
		p, err := startProc(name, filepath.Join(binDir, name), w.URL(name), ServiceEnv(o.Environ, name, w), out)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		procs[name] = p
		mu.Unlock()
		return p, nil
	}

	startedAt := time.Now()
	var backends []*proc
	for _, name := range Backends {
		if !contains(present, name) {
			say("WARNING: %s is missing (no main package, or no binary with -no-build); the gateway answers 503 for its routes", name)
			continue
		}
		p, err := start(name)
		if err != nil {
			return err
		}
		backends = append(backends, p)
	}
	if err := waitAll(ctx, backends, o.ReadyTimeout); err != nil {
		return err
	}
	if !contains(present, "gateway") {
		return errors.New("services/gateway has no main package: nothing to serve the API")
	}
	gw, err := start("gateway")
	if err != nil {
		return err
	}
	if len(backends) == len(Backends) {
		err = waitAll(ctx, []*proc{gw}, o.ReadyTimeout)
	} else {
		err = waitLive(ctx, gw, o.ReadyTimeout) // not ready while a service is missing
	}
	if err != nil {
		return err
	}
	say("every service ready %s after start", time.Since(startedAt).Round(100*time.Millisecond))
	fmt.Fprint(out, Summary(w, dataDir))
	if o.Ready != nil {
		o.Ready(w)
	}

	// Serve until Ctrl-C, or until a service dies: a half stack only confuses.
	all := append(backends, gw)
	died := make(chan *proc, len(all))
	for _, p := range all {
		go func() {
			select {
			case <-p.exited:
				died <- p
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		say("shutting down")
		return nil
	case p := <-died:
		return fmt.Errorf("%s %w (%v); its log ends:\n%s", p.name, errExited, p.err, p.log.Tail())
	}
}

// waitAll waits for every proc's readiness in parallel and returns the first failure.
func waitAll(ctx context.Context, ps []*proc, timeout time.Duration) error {
	errs := make(chan error, len(ps))
	for _, p := range ps {
		go func() { errs <- p.waitFor(ctx, "/health/ready", timeout) }()
	}
	var first error
	for range ps {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// waitLive waits for /health/live only (a gateway whose upstreams are incomplete is
// never ready).
func waitLive(ctx context.Context, p *proc, timeout time.Duration) error {
	return p.waitFor(ctx, "/health/live", timeout)
}

// Summary is what the stack prints once everything is ready.
func Summary(w Wiring, dataDir string) string {
	gw := w.URL("gateway")
	var b strings.Builder
	fmt.Fprintf(&b, "\n[stack] Perpetua Flow is ready.\n\n")
	fmt.Fprintf(&b, "  API (gateway)   %s/api/v1\n", gw)
	fmt.Fprintf(&b, "  Docs            %s/docs   (OpenAPI: %s/openapi.json)\n", gw, gw)
	fmt.Fprintf(&b, "  Health          %s/health/ready\n", gw)
	for _, s := range Backends {
		fmt.Fprintf(&b, "  %-15s %s\n", s, w.URL(s))
	}
	fmt.Fprintf(&b, "  NATS            %s\n", w.NATSURL)
	fmt.Fprintf(&b, "  PostgreSQL      %s\n", redactURL(w.DatabaseURL))
	fmt.Fprintf(&b, "  Data            %s\n\n", dataDir)
	fmt.Fprintf(&b, "  Sign in locally (AUTH_DEV_LOGIN=true), then call the API with the token:\n\n")
	fmt.Fprintf(&b, "    curl -X POST %s/api/v1/auth/dev/login -H 'Content-Type: application/json' -d '{\"email\":\"me@example.com\",\"name\":\"Me\"}'\n\n", gw)
	fmt.Fprintf(&b, "    TOKEN=$(curl -s -X POST %s/api/v1/auth/dev/login -H 'Content-Type: application/json' \\\n", gw)
	fmt.Fprintf(&b, "      -d '{\"email\":\"me@example.com\",\"name\":\"Me\"}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n")
	fmt.Fprintf(&b, "    curl -s %s/api/v1/users/me -H \"Authorization: Bearer $TOKEN\"\n", gw)
	fmt.Fprintf(&b, "    curl -s -X POST %s/api/v1/tasks -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{\"title\":\"Write documentation\"}'\n\n", gw)
	fmt.Fprintf(&b, "  Ctrl-C stops everything (twice to kill at once).\n\n")
	return b.String()
}

// redactURL hides a password in a connection string.
func redactURL(s string) string {
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	userinfo := s[scheme+3 : at]
	if u, _, ok := strings.Cut(userinfo, ":"); ok {
		return s[:scheme+3] + u + ":***" + s[at:]
	}
	return s
}

// ensureSigningKey makes the stack's RSA key on first start and returns the directory,
// which is what AUTH_SIGNING_KEYS names (every *.pem in it is published, the newest signs).
func ensureSigningKey(dir string) (string, error) {
	pems, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	if len(pems) > 0 {
		return dir, nil
	}
	err := authn.GenerateKeyFile(filepath.Join(dir, "signing-"+time.Now().UTC().Format("20060102")+".pem"))
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("signing key: %w", err)
	}
	return dir, nil
}

// presentServices lists the services that have a main package (or, with skipBuild, a
// binary): during development some may not exist yet, and the stack runs without them.
func presentServices(root, binDir string, skipBuild bool) ([]string, error) {
	var present []string
	for _, s := range Services {
		path := filepath.Join(root, "services", s, "main.go")
		if skipBuild {
			path = filepath.Join(binDir, s)
		}
		if _, err := os.Stat(path); err == nil {
			present = append(present, s)
		}
	}
	if len(present) == 0 {
		return nil, fmt.Errorf("no services found under %s/services: run from the repository root", root)
	}
	return present, nil
}

// build compiles the services in one go build (packages build in parallel).
func build(ctx context.Context, root, binDir string, services []string, out io.Writer) error {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-o", binDir + string(os.PathSeparator)}
	for _, s := range services {
		args = append(args, "./services/"+s)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	pw := newPrefixWriter("build", out.(*lockedWriter))
	cmd.Stdout, cmd.Stderr = pw, pw
	err := cmd.Run()
	pw.flush()
	if err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func lookup(environ []string) func(string) string {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return func(k string) string { return m[k] }
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
