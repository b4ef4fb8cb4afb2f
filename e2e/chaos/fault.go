package chaos

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/perpetua-flow/backend/e2e/stack"
)

// Fault is one injected failure: Inject breaks something, the fault stays for Down, Repair
// undoes it (restarts the process, starts the broker again), and Probe succeeds once the
// part of the system the fault touched serves again.
type Fault struct {
	Name   string
	Inject func() error
	Down   time.Duration
	Repair func() error
	Probe  func(ctx context.Context) error
	// WhileDown, when set, is polled during the outage until it succeeds (within Down): it
	// checks how the system answers while the dependency is gone (503, never 500).
	WhileDown func(ctx context.Context) error
	// Pids reports the process id of every service; a fault that must be survived without a
	// restart (the broker, the database) compares them before and after.
	Pids func() map[string]int
}

// Result is what happened during one fault.
type Result struct {
	Name      string
	Injected  time.Time
	Repaired  time.Time // Repair returned (a restarted service is ready)
	Recovered time.Time // the probe first succeeded
	Restarted []string  // services whose process changed although the fault needed no restart
	DownErr   error     // WhileDown never succeeded during the outage
	Err       error
}

// Recovery is the time from the fault to the first successful probe.
func (r Result) Recovery() time.Duration { return r.Recovered.Sub(r.Injected) }

// AfterRepair is the time from the repair to the first successful probe: for the broker
// and the database, how long the services took to notice they are back.
func (r Result) AfterRepair() time.Duration { return r.Recovered.Sub(r.Repaired) }

// Run injects f, waits f.Down, repairs it and polls the probe until it succeeds or
// timeout passes after the repair.
func Run(ctx context.Context, f Fault, timeout time.Duration) Result {
	r := Result{Name: f.Name}
	var before map[string]int
	if f.Pids != nil {
		before = f.Pids()
	}
	r.Injected = time.Now()
	if err := f.Inject(); err != nil {
		r.Err = fmt.Errorf("inject: %w", err)
		return r
	}
	if f.WhileDown != nil {
		r.DownErr = poll(ctx, f.WhileDown, r.Injected.Add(f.Down))
	}
	if wait := time.Until(r.Injected.Add(f.Down)); wait > 0 {
		// The outage itself lasts this long; nothing waits on it for synchronisation.
		select {
		case <-ctx.Done():
			r.Err = ctx.Err()
			return r
		case <-time.After(wait):
		}
	}
	if f.Repair != nil {
		if err := f.Repair(); err != nil {
			r.Err = fmt.Errorf("repair: %w", err)
			return r
		}
	}
	r.Repaired = time.Now()
	if err := poll(ctx, f.Probe, r.Repaired.Add(timeout)); err != nil {
		r.Err = fmt.Errorf("not recovered %v after the repair: %w", timeout, err)
		return r
	}
	r.Recovered = time.Now()
	if f.Pids != nil {
		after := f.Pids()
		for name, pid := range before {
			if after[name] != pid {
				r.Restarted = append(r.Restarted, name)
			}
		}
	}
	return r
}

// poll calls f until it succeeds or the deadline passes, and returns its last error.
func poll(ctx context.Context, f func(context.Context) error, deadline time.Time) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(pctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Probe is a small HTTP client for recovery probes.
type Probe struct {
	Client *http.Client
	Base   string
}

// NewProbe calls base with a short timeout per request.
func NewProbe(base string) Probe {
	return Probe{Client: &http.Client{Timeout: 3 * time.Second}, Base: base}
}

// Expect sends a request (body marshalled to JSON when not nil) and fails unless the
// status is want; out, when not nil, receives the decoded body.
func (p Probe) Expect(ctx context.Context, want int, method, path, token string, body, out any) error {
	return stack.Call(ctx, p.Client, p.Base, method, path, token, body, want, out)
}
