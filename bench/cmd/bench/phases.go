package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/perpetua-flow/backend/bench/internal/report"
)

// attack runs one vegeta phase over b.o.conns connections: at rate per second, or as fast
// as the connections allow when rate is 0. onResult, when set, sees every result.
func (b *bench) attack(ctx context.Context, key, name, via string, rate int, tr vegeta.Targeter, onResult func(*vegeta.Result)) report.Phase {
	conns := b.o.conns
	a := vegeta.NewAttacker(
		vegeta.Workers(uint64(conns)), vegeta.MaxWorkers(uint64(conns)),
		vegeta.Connections(conns), vegeta.MaxConnections(conns),
		vegeta.KeepAlive(true), vegeta.HTTP2(false), vegeta.Timeout(30*time.Second),
	)
	pace := vegeta.Rate{Freq: rate, Per: time.Second}
	var m vegeta.Metrics
	var errs uint64
	codes := map[string]int{}
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	for res := range a.Attack(tr, pace, b.o.phase, key) {
		if res.Error == vegeta.ErrNoTargets.Error() {
			continue // a targeter with a fixed number of requests ran out: the end, not a request
		}
		m.Add(res)
		if res.Code < 200 || res.Code > 299 || res.Error != "" {
			errs++
		}
		c := strconv.Itoa(int(res.Code))
		if res.Code == 0 {
			c = "no answer"
		}
		codes[c]++
		if onResult != nil {
			onResult(res)
		}
	}
	m.Close()
	p := report.Phase{
		Key: key, Name: name, Via: via, Rate: rate, Conns: conns, Requests: m.Requests,
		Throughput: m.Throughput, P50: m.Latencies.P50, P90: m.Latencies.P90, P99: m.Latencies.P99, Max: m.Latencies.Max,
		Errors: errs, Codes: codes,
	}
	if len(m.Errors) > 0 {
		p.Note = "first error: " + m.Errors[0]
	}
	b.log.Info("phase", "via", via, "what", name, "mode", p.Mode(), "req/s", int(p.Throughput),
		"p50", p.P50.Round(10*time.Microsecond), "p99", p.P99.Round(10*time.Microsecond), "errors", errs)
	return p
}

func authHeader(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

func jsonHeader(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
}

// getTargets reads every seeded task in turn, each with its owner's token.
func (b *bench) getTargets(base string) vegeta.Targeter {
	ts := make([]vegeta.Target, len(b.tasks))
	for i, t := range b.tasks {
		ts[i] = vegeta.Target{Method: "GET", URL: base + "/api/v1/tasks/" + t.ID, Header: authHeader(b.users[t.Owner].Token)}
	}
	return vegeta.NewStaticTargeter(ts...)
}

// listTargets reads the first page (25) of every reader in turn.
func (b *bench) listTargets(base string) vegeta.Targeter {
	ts := make([]vegeta.Target, len(b.users))
	for i, u := range b.users {
		ts[i] = vegeta.Target{Method: "GET", URL: base + "/api/v1/tasks?limit=25", Header: authHeader(u.Token)}
	}
	return vegeta.NewStaticTargeter(ts...)
}

// createTargets creates tasks for the given users in turn.
func (b *bench) createTargets(users []user) vegeta.Targeter {
	ts := make([]vegeta.Target, len(users))
	for i, u := range users {
		body := fmt.Sprintf(`{"title":"Benchmark task %d","description":"created under load","priority":"high"}`, i)
		ts[i] = vegeta.Target{Method: "POST", URL: b.gateway + "/api/v1/tasks", Header: jsonHeader(u.Token), Body: []byte(body)}
	}
	return vegeta.NewStaticTargeter(ts...)
}

// versions tracks the version of every seeded task so a PATCH can send the one it read:
// the answers of earlier PATCHes move it on.
type versions struct {
	v    []atomic.Int64
	next atomic.Int64
	idx  map[string]int
}

func newVersions(tasks []task) *versions {
	vs := &versions{v: make([]atomic.Int64, len(tasks)), idx: make(map[string]int, len(tasks))}
	for i, t := range tasks {
		vs.v[i].Store(1)
		vs.idx[t.ID] = i
	}
	return vs
}

// observe takes the version out of a successful PATCH answer.
func (vs *versions) observe(res *vegeta.Result) {
	if res.Method != "PATCH" || res.Code != http.StatusOK {
		return
	}
	var body struct {
		Data struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		} `json:"data"`
	}
	if json.Unmarshal(res.Body, &body) != nil {
		return
	}
	if i, ok := vs.idx[body.Data.ID]; ok {
		for {
			cur := vs.v[i].Load()
			if body.Data.Version <= cur || vs.v[i].CompareAndSwap(cur, body.Data.Version) {
				return
			}
		}
	}
}

// patchTarget fills t with a PATCH of the next task (round robin: with thousands of tasks
// and 64 in flight, no two PATCHes of one task overlap) carrying the version it holds.
func (b *bench) patchTarget(vs *versions, t *vegeta.Target) {
	i := int(vs.next.Add(1)-1) % len(b.tasks)
	tk := b.tasks[i]
	t.Method, t.URL, t.Header = "PATCH", b.gateway+"/api/v1/tasks/"+tk.ID, jsonHeader(b.users[tk.Owner].Token)
	t.Body = []byte(fmt.Sprintf(`{"title":"Edited under load %d","version":%d}`, i, vs.v[i].Load()))
}

func (b *bench) patchTargets(vs *versions) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		if t == nil {
			return vegeta.ErrNilTarget
		}
		b.patchTarget(vs, t)
		return nil
	}
}

// mixedTargets is the mixed profile: of every 20 requests 12 read a task, 4 list, 3
// update with the version read and 1 creates (80% reads, 15% updates, 5% creates).
func (b *bench) mixedTargets(vs *versions) vegeta.Targeter {
	get, list, create := b.getTargets(b.gateway), b.listTargets(b.gateway), b.createTargets(b.users)
	var n atomic.Int64
	return func(t *vegeta.Target) error {
		if t == nil {
			return vegeta.ErrNilTarget
		}
		i := n.Add(1) % 20
		switch {
		case i < 12:
			return get(t)
		case i < 16:
			return list(t)
		case i < 19:
			b.patchTarget(vs, t)
			return nil
		default:
			return create(t)
		}
	}
}

// httpPhases measures the API through the gateway and straight at the tasks service.
func (b *bench) httpPhases(ctx context.Context) []report.Phase {
	vs := newVersions(b.tasks)
	type spec struct {
		key, name, via string
		tr             func() vegeta.Targeter
		fixed          bool
		observe        func(*vegeta.Result)
	}
	specs := []spec{
		{"gateway/get", "GET /api/v1/tasks/{id}", "gateway", func() vegeta.Targeter { return b.getTargets(b.gateway) }, true, nil},
		{"direct/get", "GET /api/v1/tasks/{id}", "direct", func() vegeta.Targeter { return b.getTargets(b.tasksURL) }, true, nil},
		{"gateway/list", "GET /api/v1/tasks (25)", "gateway", func() vegeta.Targeter { return b.listTargets(b.gateway) }, true, nil},
		{"direct/list", "GET /api/v1/tasks (25)", "direct", func() vegeta.Targeter { return b.listTargets(b.tasksURL) }, true, nil},
		{"gateway/create", "POST /api/v1/tasks (64 users)", "gateway", func() vegeta.Targeter { return b.createTargets(b.writers) }, true, nil},
		{"gateway/create-one-user", "POST /api/v1/tasks (one user)", "gateway", func() vegeta.Targeter { return b.createTargets([]user{b.one}) }, false, nil},
		{"gateway/patch", "PATCH /api/v1/tasks/{id} with version", "gateway", func() vegeta.Targeter { return b.patchTargets(vs) }, true, vs.observe},
		{"gateway/mixed", "mixed 80% read / 15% update / 5% create", "gateway", func() vegeta.Targeter { return b.mixedTargets(vs) }, true, vs.observe},
	}
	// Warm up (connections, the services' statement caches, the token cache) unrecorded.
	b.attack(ctx, "warm-up", "warm-up", "gateway", b.o.rate, b.mixedTargets(vs), vs.observe)
	var out []report.Phase
	for _, s := range specs {
		if s.fixed {
			out = append(out, b.attack(ctx, s.key+"/fixed", s.name, s.via, b.o.rate, s.tr(), s.observe))
		}
		out = append(out, b.attack(ctx, s.key+"/max", s.name, s.via, 0, s.tr(), s.observe))
		if s.key == "gateway/get" {
			// The latency bound is read at its throughput target (report.getTarget).
			out = append(out, b.attack(ctx, s.key+"/at-target", s.name, s.via, report.GetTargetRate, s.tr(), s.observe))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out
}
