package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TailLines is how much of a service's log a failure message shows.
const TailLines = 30

// prefixWriter writes each complete line to out as "[name] line" and remembers the last
// TailLines lines for error messages. Lines of several services never interleave: out
// is shared behind one mutex.
type prefixWriter struct {
	prefix string
	out    *lockedWriter

	mu   sync.Mutex
	buf  []byte
	tail []string
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newPrefixWriter(name string, out *lockedWriter) *prefixWriter {
	return &prefixWriter{prefix: "[" + name + "] ", out: out}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.line(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) line(s string) {
	s = strings.TrimRight(s, "\r")
	p.tail = append(p.tail, s)
	if len(p.tail) > TailLines {
		p.tail = p.tail[len(p.tail)-TailLines:]
	}
	_, _ = p.out.Write([]byte(p.prefix + s + "\n"))
}

// flush writes a last line without its newline.
func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.line(string(p.buf))
		p.buf = nil
	}
}

// Tail is the last lines written.
func (p *prefixWriter) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// proc is one running service.
type proc struct {
	name   string
	url    string
	cmd    *exec.Cmd
	log    *prefixWriter
	exited chan struct{} // closed when the process has exited
	err    error         // the exit status, once exited is closed
}

// startProc runs bin with env in a process group of its own: Ctrl-C in the terminal
// reaches only the stack, which then stops the services in order.
func startProc(name, bin, url string, env []string, out *lockedWriter) (*proc, error) {
	p := &proc{name: name, url: url, log: newPrefixWriter(name, out), exited: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Should the stack itself be killed, the services do not outlive it.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.log.flush()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM to the group, waits up to grace (or until force is closed), then
// kills it.
func (p *proc) stop(grace time.Duration, force <-chan struct{}) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		return
	case <-t.C:
		fmt.Fprintf(p.log.out, "[stack] %s did not stop within %s; killing it\n", p.name, grace)
	case <-force:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// ReadyPoll is the interval between two readiness probes.
const ReadyPoll = 100 * time.Millisecond

// waitFor polls url+path (/health/ready) until it answers 200. It gives up when the
// process exits, ctx ends or timeout passes, naming the service and showing the tail of
// its log.
func (p *proc) waitFor(ctx context.Context, path string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(ReadyPoll)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready (%v); its log ends:\n%s", p.name, p.err, p.log.Tail())
		case <-deadline.C:
			return fmt.Errorf("%s not ready within %s (last %s: %s); its log ends:\n%s", p.name, timeout, path, last, p.log.Tail())
		case <-tick.C:
		}
	}
}

// errExited is returned when a service stops on its own while the stack runs.
var errExited = errors.New("exited")
