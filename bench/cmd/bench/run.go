package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/perpetua-flow/backend/bench/internal/report"
)

// all runs every measurement in order: the event latencies on the idle system first, then
// the HTTP phases, the floors and the credits.
func (b *bench) all(ctx context.Context) (report.Run, error) {
	start := time.Now()
	evs, notes := b.eventPhases(ctx)
	b.run.Events = evs
	b.run.Notes = append(b.run.Notes, notes...)
	hasReminders, note := b.remindersExist(ctx)
	if note != "" {
		b.run.Notes = append(b.run.Notes, note)
	}

	b.run.Phases = append(b.run.Phases, b.httpPhases(ctx)...)
	if err := ctx.Err(); err != nil {
		return b.run, err
	}
	// After the reads: the reminders land on the seeded tasks, whose answers they enlarge.
	if hasReminders {
		n := 10_000
		if b.o.quick {
			n = 1_000
		}
		created, rem, err := b.remindersDue(ctx, n)
		b.run.Phases = append(b.run.Phases, created)
		if err != nil {
			return b.run, fmt.Errorf("reminders: %w", err)
		}
		b.run.Reminders = rem
	}
	hf, err := b.httpFloor(ctx)
	if err != nil {
		return b.run, fmt.Errorf("HTTP floor: %w", err)
	}
	b.run.Phases = append(b.run.Phases, hf)
	pf, err := b.pgFloors(ctx)
	b.run.Phases = append(b.run.Phases, pf...)
	if err != nil {
		return b.run, fmt.Errorf("database floors: %w", err)
	}
	cp, err := b.creditPhases(ctx)
	if err != nil {
		return b.run, fmt.Errorf("credits: %w", err)
	}
	b.run.Phases = append(b.run.Phases, cp...)

	if b.rss != nil {
		b.rss.stop()
		b.run.Memory = b.rss.result()
	} else {
		b.run.Notes = append(b.run.Notes, "Resident memory not measured: the stack is not this command's (-url).")
	}
	b.run.Machine.LoadAfter = loadAvg()
	b.run.Notes = append(b.run.Notes, loadNote(b.run.Machine), fmt.Sprintf("The measurements took %v.", time.Since(start).Round(time.Second)))
	return b.run, nil
}

// loadNote says whether the machine was busy with other work, which makes the numbers
// lower than the machine can do.
func loadNote(m report.Machine) string {
	f := strings.Fields(m.LoadBefore)
	if len(f) == 0 {
		return "Load average unknown."
	}
	l, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "Load average unknown."
	}
	if l > float64(m.CPUs) {
		return fmt.Sprintf("The machine was busy before the run (1-minute load %.1f on %d CPUs): other work competed with every phase, so these numbers are below what the machine can do and not comparable with the targets.", l, m.CPUs)
	}
	return fmt.Sprintf("The machine was otherwise quiet before the run (1-minute load %.1f on %d CPUs).", l, m.CPUs)
}

// write keeps the previous report as REPORT.previous.md (and .json) and writes the new
// REPORT.md, REPORT.json and latency.png into dir.
func write(dir string, r report.Run, log *slog.Logger) error {
	md, js := filepath.Join(dir, "REPORT.md"), filepath.Join(dir, "REPORT.json")
	prev, err := report.Load(js)
	if err != nil {
		log.Warn("previous run unreadable; no change table", "err", err)
		prev = nil
	}
	for _, f := range []string{md, js} {
		old := strings.TrimSuffix(f, filepath.Ext(f)) + ".previous" + filepath.Ext(f)
		if err := os.Rename(f, old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	const chart = "latency.png"
	if err := report.Chart(r, filepath.Join(dir, chart)); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := report.Save(js, r); err != nil {
		return err
	}
	if err := os.WriteFile(md, []byte(report.Markdown(r, prev, chart)), 0o644); err != nil {
		return err
	}
	log.Info("report written", "report", md, "chart", filepath.Join(dir, chart))
	return nil
}

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }
