package report_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/bench/internal/report"
)

func sample(getRate float64) report.Run {
	ph := func(key, via string, rate int, tput float64, p99 time.Duration) report.Phase {
		return report.Phase{Key: key, Name: key, Via: via, Rate: rate, Conns: 64, Requests: 100, Throughput: tput,
			P50: p99 / 4, P90: p99 / 2, P99: p99, Max: p99 * 2, Codes: map[string]int{"200": 100}}
	}
	return report.Run{
		Date: time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC), Duration: "8s",
		Machine: report.Machine{CPUs: 2, LoadBefore: "0.50 0.40 0.30"},
		Phases: []report.Phase{
			ph("gateway/get/max", "gateway", 0, getRate, 15*time.Millisecond),
			ph("direct/get/max", "direct", 0, 4000, 10*time.Millisecond),
			ph("gateway/create/max", "gateway", 0, 1200, 40*time.Millisecond),
			ph("floor/pg-select/max", "floor", 0, 8000, 2*time.Millisecond),
			ph("floor/pg-insert-outbox/max", "floor", 0, 2000, 30*time.Millisecond),
			ph("nats/credits-1000-users/max", "nats", 0, 2500, 20*time.Millisecond),
		},
		Memory: []report.Memory{{Service: "tasks", IdleKB: 20 * 1024, LoadKB: 40 * 1024}},
	}
}

func TestRatiosAndTargets(t *testing.T) {
	t.Parallel()
	r := sample(3600)
	got := map[string]report.Ratio{}
	for _, ra := range report.Ratios(r) {
		got[ra.Name] = ra
	}
	if ra := got["GET task: gateway / direct"]; !ra.Available || ra.Value != 0.9 {
		t.Fatalf("gateway/direct = %+v, want 0.9", ra)
	}
	if ra := got["list (25): gateway / direct"]; ra.Available {
		t.Fatalf("list ratio without list phases: %+v", ra)
	}
	met := map[string]bool{}
	for _, tg := range report.Targets(r) {
		met[tg.Name] = tg.Known && tg.Met
	}
	if !met["GET task, 64 connections"] || !met["create, 64 connections"] || met["list (25), 64 connections"] {
		t.Fatalf("targets = %v", met)
	}
}

func TestGetTargetReadsTheLatencyAtTheTargetRate(t *testing.T) {
	t.Parallel()
	at := func(p99 time.Duration, tput float64) report.Phase {
		return report.Phase{Key: "gateway/get/at-target", Via: "gateway", Rate: report.GetTargetRate, Conns: 64, Requests: 100, Throughput: tput, P99: p99}
	}
	get := func(r report.Run) report.Target {
		for _, tg := range report.Targets(r) {
			if tg.Name == "GET task, 64 connections" {
				return tg
			}
		}
		t.Fatal("no GET target")
		return report.Target{}
	}
	for _, tc := range []struct {
		name string
		max  float64
		at   *report.Phase
		met  bool
	}{
		{"fast enough, p99 low at the target rate although high at max rate", 5000, &report.Phase{}, true},
		{"p99 over 20 ms at the target rate", 5000, nil, false},
		{"the target rate was not kept up", 5000, &report.Phase{Throughput: 3000}, false},
		{"max rate under the target", 3000, &report.Phase{}, false},
	} {
		r := sample(tc.max)
		r.Phases[0].P99 = 40 * time.Millisecond // max rate: queueing of 64 connections
		switch {
		case tc.at == nil:
			r.Phases = append(r.Phases, at(25*time.Millisecond, report.GetTargetRate))
		case tc.at.Throughput > 0:
			r.Phases = append(r.Phases, at(5*time.Millisecond, tc.at.Throughput))
		default:
			r.Phases = append(r.Phases, at(5*time.Millisecond, report.GetTargetRate))
		}
		if tg := get(r); !tg.Known || tg.Met != tc.met {
			t.Errorf("%s: %+v, want met = %v", tc.name, tg, tc.met)
		}
	}
}

func TestMarkdownShowsTheChange(t *testing.T) {
	t.Parallel()
	prev, cur := sample(1000), sample(3600)
	md := report.Markdown(cur, &prev, "latency.png")
	for _, want := range []string{"| gateway gateway/get/max max | 1000 → 3600 | +260% |", "![latency percentiles per endpoint](latency.png)", "## Floors"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if md := report.Markdown(cur, nil, "latency.png"); !strings.Contains(md, "No previous run.") {
		t.Error("first report does not say there is no previous run")
	}
}

func TestChartAndSaveRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := sample(3600)
	png := filepath.Join(dir, "latency.png")
	if err := report.Chart(r, png); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("chart is not a PNG (%v)", err)
	}
	js := filepath.Join(dir, "REPORT.json")
	if err := report.Save(js, r); err != nil {
		t.Fatal(err)
	}
	back, err := report.Load(js)
	if err != nil || back == nil || len(back.Phases) != len(r.Phases) || back.Phases[0].P99 != r.Phases[0].P99 {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if none, err := report.Load(filepath.Join(dir, "missing.json")); none != nil || err != nil {
		t.Fatalf("missing file: %v, %v", none, err)
	}
}
