package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/perpetua-flow/backend/bench/internal/report"
	"github.com/perpetua-flow/backend/e2e/stack"
)

// rssSampler reads each service's VmRSS from /proc/<pid>/status: once when idle, then
// every 200 ms while the load runs, keeping the largest value.
type rssSampler struct {
	st   *stack.Stack
	mu   sync.Mutex
	idl  map[string]int64
	peak map[string]int64
	quit chan struct{}
	done chan struct{}
}

func newRSSSampler(st *stack.Stack) *rssSampler {
	return &rssSampler{st: st, idl: map[string]int64{}, peak: map[string]int64{}}
}

// vmRSS is the resident set of pid in kB.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			_, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func (s *rssSampler) sample(into map[string]int64) {
	for _, name := range stack.Services {
		if kb, err := vmRSS(s.st.Pid(name)); err == nil {
			s.mu.Lock()
			if kb > into[name] {
				into[name] = kb
			}
			s.mu.Unlock()
		}
	}
}

func (s *rssSampler) idle() { s.sample(s.idl) }

func (s *rssSampler) start() {
	s.quit, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.sample(s.peak)
			}
		}
	}()
}

func (s *rssSampler) stop() {
	if s.quit != nil {
		close(s.quit)
		<-s.done
		s.quit = nil
	}
}

func (s *rssSampler) result() []report.Memory {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]report.Memory, 0, len(stack.Services))
	for _, name := range stack.Services {
		out = append(out, report.Memory{Service: name, IdleKB: s.idl[name], LoadKB: s.peak[name]})
	}
	return out
}
