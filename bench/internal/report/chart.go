package report

import (
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Chart draws p50, p90 and p99 of every HTTP phase (and the floors) as horizontal grouped
// bars, in milliseconds, to a PNG at path.
func Chart(r Run, path string) error {
	var labels []string
	var p50, p90, p99 plotter.Values
	// Bars are drawn bottom-up; walk the phases backwards so the chart reads top-down in
	// the report's order.
	for i := len(r.Phases) - 1; i >= 0; i-- {
		ph := r.Phases[i]
		if ph.Via == "nats" || ph.Requests == 0 {
			continue
		}
		labels = append(labels, fmt.Sprintf("%s %s %s", ph.Via, ph.Name, ph.Mode()))
		p50 = append(p50, msf(ph.P50))
		p90 = append(p90, msf(ph.P90))
		p99 = append(p99, msf(ph.P99))
	}
	if len(labels) == 0 {
		return fmt.Errorf("report: no phases to chart")
	}
	p := plot.New()
	p.Title.Text = "Latency percentiles per endpoint (ms, 64 connections)"
	p.X.Label.Text = "milliseconds"
	p.X.Min = 0
	w := vg.Points(6)
	series := []struct {
		name string
		vals plotter.Values
		col  color.RGBA
		off  vg.Length
	}{
		{"p50", p50, color.RGBA{R: 0x4c, G: 0x9a, B: 0x2a, A: 0xff}, -w},
		{"p90", p90, color.RGBA{R: 0xe0, G: 0xa1, B: 0x00, A: 0xff}, 0},
		{"p99", p99, color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff}, w},
	}
	for _, s := range series {
		bars, err := plotter.NewBarChart(s.vals, w)
		if err != nil {
			return err
		}
		bars.Horizontal = true
		bars.Color = s.col
		bars.LineStyle.Width = 0
		bars.Offset = s.off
		p.Add(bars)
		p.Legend.Add(s.name, bars)
	}
	// Room on the right for the legend and above the first bar for the title.
	var most float64
	for _, vs := range []plotter.Values{p50, p90, p99} {
		for _, v := range vs {
			most = max(most, v)
		}
	}
	p.X.Max = most * 1.2
	p.Legend.Top = true
	p.NominalY(labels...)
	p.Y.Min, p.Y.Max = -0.8, float64(len(labels))-0.2
	p.Add(plotter.NewGrid())
	height := vg.Length(len(labels))*3*w + 2*vg.Inch
	return p.Save(11*vg.Inch, height, path)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
