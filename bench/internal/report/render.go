package report

import (
	"fmt"
	"strings"
)

// Markdown renders the report; prev (may be nil) is the run before, for the change table.
// chart is the PNG's file name relative to the report.
func Markdown(r Run, prev *Run, chart string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("# Benchmark report\n\n")
	w("Written by `make bench` (`go run ./bench/cmd/bench`) on %s, %s phases%s. ",
		r.Date.UTC().Format("2006-01-02 15:04 UTC"), r.Duration, map[bool]string{true: " (-quick)", false: ""}[r.Quick])
	w("Postgres, NATS, the five services and the load generator all ran on this one machine; ")
	w("every number depends on what else the machine was doing (the load average is below). ")
	w("The previous report is kept as [REPORT.previous.md](REPORT.previous.md); the raw numbers are in [REPORT.json](REPORT.json).\n\n")

	w("## Machine and settings\n\n")
	w("| | |\n|---|---|\n")
	w("| CPUs | %d × %s |\n", r.Machine.CPUs, r.Machine.CPUModel)
	w("| memory | %s |\n", r.Machine.MemTotal)
	w("| load average before → after | %s → %s |\n", r.Machine.LoadBefore, r.Machine.LoadAfter)
	w("| Go | %s |\n", r.Machine.GoVersion)
	w("| PostgreSQL | %s |\n", r.Machine.Postgres)
	for _, s := range r.Settings {
		k, v, _ := strings.Cut(s, "=")
		w("| %s | %s |\n", k, v)
	}
	w("\n")

	w("## Targets of the issue\n\n| target | want | got | |\n|---|---|---|---|\n")
	for _, t := range Targets(r) {
		mark := "not measured"
		switch {
		case t.Known && t.Met:
			mark = "met"
		case t.Known:
			mark = "**missed**"
		}
		w("| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, mark)
	}
	w("\n")

	w("## Requests\n\n")
	w("Latencies are vegeta's, from the request leaving to the whole answer read. req/s counts successful answers per second; errors are every non-2xx answer and transport failure.\n\n")
	w("![latency percentiles per endpoint](%s)\n\n", chart)
	phaseTable(&b, r.Phases, func(p Phase) bool { return p.Via == "gateway" || p.Via == "direct" })

	w("## Floors: what this machine can do at best\n\n")
	w("Measured in the same run at the same concurrency: a bare `net/http` handler answering a fixed JSON body of a task's size, and raw pgx transactions on the same database (select of one task by primary key; insert of a task plus its outbox row with `events.Enqueue`, in `pg.InTx` as the services do and the old way, in a plain transaction where it calls `pg_notify`; in a schema of their own).\n\n")
	phaseTable(&b, r.Phases, func(p Phase) bool { return p.Via == "floor" })

	w("## Ratios (max-rate throughput)\n\n| ratio | value | target |\n|---|---|---|\n")
	for _, ra := range Ratios(r) {
		val, tgt := "not measured", "–"
		if ra.Available {
			val = fmt.Sprintf("%.2f×", ra.Value)
		}
		if ra.Target > 0 {
			tgt = fmt.Sprintf("≥ %.2f×", ra.Target)
		}
		w("| %s | %s | %s |\n", ra.Name, val, tgt)
	}
	w("\n")

	w("## Credits over NATS (`svc.billing.credits.consume`)\n\n")
	phaseTable(&b, r.Phases, func(p Phase) bool { return p.Via == "nats" })

	w("## Event latency (commit in the producer's transaction → applied by the consumer)\n\n")
	w("| event path | events | p50 | p99 | max | note |\n|---|---|---|---|---|---|\n")
	for _, e := range r.Events {
		w("| %s | %d | %s | %s | %s | %s |\n", e.Name, e.Count, ms(e.P50), ms(e.P99), ms(e.Max), e.Note)
	}
	w("\n")

	w("## Reminders due at once\n\n")
	if rm := r.Reminders; rm != nil {
		w("Created through the API (two per task, in the requests table above), then moved in the database — reminder rows and their River jobs alike — to one moment a few seconds ahead. Delay is from that moment to the reminder's `fired_at` (the notification's commit).\n\n")
		w("| reminders | fired | fired/s | delay p50 | p99 | max | note |\n|---|---|---|---|---|---|---|\n")
		w("| %d | %d | %.0f | %s | %s | %s | %s |\n\n", rm.Count, rm.Fired, rm.PerSecond, ms(rm.P50), ms(rm.P99), ms(rm.Max), rm.Note)
	} else {
		w("Not measured (see the notes).\n\n")
	}

	w("## Resident memory (VmRSS)\n\n| service | idle | under load (max seen) |\n|---|---|---|\n")
	for _, m := range r.Memory {
		w("| %s | %.1f MB | %.1f MB |\n", m.Service, float64(m.IdleKB)/1024, float64(m.LoadKB)/1024)
	}
	w("\n")

	w("## Change since the previous run\n\n")
	if prev == nil {
		w("No previous run.\n\n")
	} else {
		w("Previous run: %s, load average before %s. Throughput and p99 of each phase present in both runs.\n\n",
			prev.Date.UTC().Format("2006-01-02 15:04 UTC"), prev.Machine.LoadBefore)
		w("| phase | req/s before → now | change | p99 before → now |\n|---|---|---|---|\n")
		for _, p := range r.Phases {
			q, ok := prev.Phase(p.Key)
			if !ok {
				continue
			}
			change := "–"
			if q.Throughput > 0 {
				change = fmt.Sprintf("%+.0f%%", (p.Throughput/q.Throughput-1)*100)
			}
			w("| %s %s %s | %.0f → %.0f | %s | %s → %s |\n", p.Via, p.Name, p.Mode(), q.Throughput, p.Throughput, change, ms(q.P99), ms(p.P99))
		}
		w("\n")
	}

	if len(r.Notes) > 0 {
		w("## Notes\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	return b.String()
}

func phaseTable(b *strings.Builder, ps []Phase, keep func(Phase) bool) {
	fmt.Fprintf(b, "| via | what | rate | conns | requests | req/s | p50 | p90 | p99 | max | errors | answers |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range ps {
		if !keep(p) {
			continue
		}
		answers := codes(p.Codes)
		if p.Note != "" {
			answers = strings.TrimSpace(answers + " " + p.Note)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %.0f | %s | %s | %s | %s | %d | %s |\n",
			p.Via, p.Name, p.Mode(), p.Conns, p.Requests, p.Throughput, ms(p.P50), ms(p.P90), ms(p.P99), ms(p.Max), p.Errors, answers)
	}
	fmt.Fprintln(b)
}
