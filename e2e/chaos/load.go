// Package chaos drives a steady, bounded load through a running stack while faults are
// injected (a service killed, the broker or the database stopped), records what every
// request was answered, and afterwards proves against the database and the broker that
// nothing acknowledged was lost and nothing was applied twice. The orchestration (which
// faults, how long) lives in the test that uses it (e2e/chaos_test.go).
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// User is a signed-in user of the load.
type User struct {
	ID    string
	Token string
}

// Op names one kind of request of the load.
type Op string

// The operations of the mixed load.
const (
	OpCreate   Op = "create"
	OpGet      Op = "get"
	OpList     Op = "list"
	OpUpdate   Op = "update"
	OpComplete Op = "complete"
)

// MaxCreatesPerUser keeps every user under the free tier's 50 tasks, so a refusal for the
// limit never hides a real failure.
const MaxCreatesPerUser = 45

// Outcome is how one request ended. Status is 0 when no HTTP answer came (connection
// refused, reset or timed out).
type Outcome struct {
	At     time.Time
	Op     Op
	Status int
	Code   string // error code of the envelope, if any
	Err    string // transport error
}

// Class sorts an outcome for the report.
func (o Outcome) Class() string {
	switch {
	case o.Status == 0:
		return "no answer"
	case o.Status >= 200 && o.Status < 300:
		return "2xx"
	case o.Status == http.StatusConflict:
		return "409"
	case o.Status == http.StatusInternalServerError:
		return "500"
	case o.Status == http.StatusBadGateway, o.Status == http.StatusServiceUnavailable, o.Status == http.StatusGatewayTimeout:
		return "502/503/504"
	default:
		return fmt.Sprintf("%d", o.Status)
	}
}

// Acked is a task a create answered 2xx for, with the highest version an answer reported.
type Acked struct {
	UserID  string
	Version int
	At      time.Time // when the create was sent
}

// LostRead is a GET of an acknowledged task that answered 404.
type LostRead struct {
	TaskID string
	At     time.Time
}

// Load sends a mixed request profile at a fixed rate through the gateway.
type Load struct {
	base    string
	users   []User
	rate    int
	workers int
	client  *http.Client

	mu       sync.Mutex
	outcomes []Outcome
	acked    map[string]*Acked   // task id → what the answers said
	tasks    map[string][]string // user id → acknowledged task ids
	creates  map[string]int      // user id → creates sent
	lost     []LostRead
	dropped  atomic.Int64 // ticks skipped because every worker was busy

	next   atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

// NewLoad prepares a load of rate requests per second over workers connections (at most
// workers requests in flight: the load never grows while the system is slow).
func NewLoad(gatewayURL string, users []User, rate, workers int) *Load {
	return &Load{
		base: gatewayURL, users: users, rate: rate, workers: workers,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, IdleConnTimeout: 30 * time.Second,
		}},
		acked: map[string]*Acked{}, tasks: map[string][]string{}, creates: map[string]int{},
	}
}

// Start begins sending; Stop ends it and waits for the requests in flight.
func (l *Load) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	ticks := make(chan struct{})
	var wg sync.WaitGroup
	for range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ticks {
				l.one(ctx)
			}
		}()
	}
	go func() {
		defer close(l.done)
		defer wg.Wait()
		defer close(ticks)
		t := time.NewTicker(time.Second / time.Duration(l.rate))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case ticks <- struct{}{}:
				default:
					l.dropped.Add(1)
				}
			}
		}
	}()
}

// Stop ends the load and waits for the requests in flight.
func (l *Load) Stop() {
	l.cancel()
	<-l.done
}

// Dropped is how many ticks found every connection busy.
func (l *Load) Dropped() int64 { return l.dropped.Load() }

// one sends the next request of the profile for the next user.
func (l *Load) one(ctx context.Context) {
	n := l.next.Add(1)
	u := l.users[int(n)%len(l.users)]
	l.mu.Lock()
	ids := l.tasks[u.ID]
	canCreate := l.creates[u.ID] < MaxCreatesPerUser
	l.mu.Unlock()

	op := pick(n, len(ids) > 0, canCreate)
	switch op {
	case OpCreate:
		l.mu.Lock()
		l.creates[u.ID]++
		l.mu.Unlock()
		o, body := l.do(ctx, u, op, "POST", "/api/v1/tasks", map[string]any{"title": "chaos " + uuid.NewString()[:8]})
		if o.Status == http.StatusCreated {
			var t struct {
				Data struct {
					ID      string
					Version int
				}
			}
			if json.Unmarshal(body, &t) == nil && t.Data.ID != "" {
				l.mu.Lock()
				l.acked[t.Data.ID] = &Acked{UserID: u.ID, Version: t.Data.Version, At: o.At}
				l.tasks[u.ID] = append(l.tasks[u.ID], t.Data.ID)
				l.mu.Unlock()
			}
		}
	case OpGet:
		id := ids[int(n/7)%len(ids)]
		o, _ := l.do(ctx, u, op, "GET", "/api/v1/tasks/"+id, nil)
		if o.Status == http.StatusNotFound {
			l.mu.Lock()
			l.lost = append(l.lost, LostRead{TaskID: id, At: o.At})
			l.mu.Unlock()
		}
	case OpList:
		l.do(ctx, u, op, "GET", "/api/v1/tasks?limit=25", nil)
	case OpUpdate, OpComplete:
		id := ids[int(n/5)%len(ids)]
		l.mu.Lock()
		version := l.acked[id].Version
		l.mu.Unlock()
		body := map[string]any{"title": "edited " + uuid.NewString()[:8], "version": version}
		if op == OpComplete {
			// No version: a client toggling completion applies to the current version.
			body = map[string]any{"completed": true}
		}
		o, resp := l.do(ctx, u, op, "PATCH", "/api/v1/tasks/"+id, body)
		if o.Status == http.StatusOK {
			var t struct{ Data struct{ Version int } }
			if json.Unmarshal(resp, &t) == nil {
				l.mu.Lock()
				if a := l.acked[id]; t.Data.Version > a.Version {
					a.Version = t.Data.Version
				}
				l.mu.Unlock()
			}
		}
	}
}

// pick is the profile: of every 20 requests 6 create, 7 read one task, 2 list, 4 update
// with the version read, 1 completes. Without tasks yet it creates; at the create cap it
// reads.
func pick(n int64, haveTasks, canCreate bool) Op {
	if !haveTasks {
		if canCreate {
			return OpCreate
		}
		return OpList
	}
	switch r := n % 20; {
	case r < 6:
		if canCreate {
			return OpCreate
		}
		return OpGet
	case r < 13:
		return OpGet
	case r < 15:
		return OpList
	case r < 19:
		return OpUpdate
	default:
		return OpComplete
	}
}

func (l *Load) do(ctx context.Context, u User, op Op, method, path string, body any) (Outcome, []byte) {
	o := Outcome{At: time.Now(), Op: op}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, rd)
	if err != nil {
		o.Err = err.Error()
		l.record(o)
		return o, nil
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+u.Token)
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return o, nil // the load is stopping: not an outcome of the system
		}
		o.Err = err.Error()
		l.record(o)
		return o, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	o.Status = resp.StatusCode
	if err != nil {
		o.Err = err.Error()
	}
	if o.Status >= 400 {
		var env struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(b, &env)
		o.Code = env.Error.Code
	}
	l.record(o)
	return o, b
}

func (l *Load) record(o Outcome) {
	l.mu.Lock()
	l.outcomes = append(l.outcomes, o)
	l.mu.Unlock()
}

// Outcomes is a copy of every outcome so far, in completion order.
func (l *Load) Outcomes() []Outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Outcome(nil), l.outcomes...)
}

// AckedTasks is a copy of the acknowledged tasks (id → owner and highest version).
func (l *Load) AckedTasks() map[string]Acked {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Acked, len(l.acked))
	for id, a := range l.acked {
		out[id] = *a
	}
	return out
}

// LostReads are GETs of acknowledged tasks that answered 404.
func (l *Load) LostReads() []LostRead {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LostRead(nil), l.lost...)
}

// OKSince counts 2xx outcomes completed after t: the load is flowing again.
func (l *Load) OKSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := len(l.outcomes) - 1; i >= 0 && l.outcomes[i].At.After(t); i-- {
		if s := l.outcomes[i].Status; s >= 200 && s < 300 {
			n++
		}
	}
	return n
}

// Tally counts outcomes by class between from and to.
func Tally(os []Outcome, from, to time.Time) map[string]int {
	m := map[string]int{}
	for _, o := range os {
		if !o.At.Before(from) && o.At.Before(to) {
			m[o.Class()]++
		}
	}
	return m
}
