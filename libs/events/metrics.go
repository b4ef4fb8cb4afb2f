package events

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the relay and the consumers of one service. Make one with NewMetrics and pass
// it in RelayConfig.Metrics and every ConsumerConfig.Metrics; nil disables metrics.
type Metrics struct {
	// Backlog is the number of unpublished outbox rows after the relay's last pass.
	Backlog prometheus.Gauge
	// Lag is the age in seconds of the oldest unpublished outbox row (0 when none): how
	// late the events of this service are.
	Lag prometheus.Gauge
	// Published counts outbox rows published and marked; Duplicates those JetStream
	// reported as already stored (a republish after a crash before the mark).
	Published  prometheus.Counter
	Duplicates prometheus.Counter
	// PublishErrors counts rows whose publish failed (retried on the next pass).
	PublishErrors prometheus.Counter
	// Handled counts consumed messages by consumer and outcome: ok, duplicate, retry,
	// dead_letter.
	Handled *prometheus.CounterVec
}

// Outcomes of a consumed message (the outcome label of Handled).
const (
	OutcomeOK         = "ok"
	OutcomeDuplicate  = "duplicate"
	OutcomeRetry      = "retry"
	OutcomeDeadLetter = "dead_letter"
)

// NewMetrics registers the events metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "events_outbox_backlog", Help: "Unpublished outbox rows after the relay's last pass.",
		}),
		Lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "events_outbox_lag_seconds", Help: "Age of the oldest unpublished outbox row after the relay's last pass.",
		}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "events_outbox_published_total", Help: "Outbox rows published to JetStream and marked.",
		}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "events_outbox_duplicates_total", Help: "Outbox publishes JetStream dropped as duplicates (republish after a crash).",
		}),
		PublishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "events_outbox_publish_errors_total", Help: "Outbox publishes that failed and will be retried.",
		}),
		Handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_consumer_messages_total", Help: "Consumed event messages by consumer and outcome.",
		}, []string{"consumer", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.Backlog, m.Lag, m.Published, m.Duplicates, m.PublishErrors, m.Handled} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("events: register metrics: %w", err)
		}
	}
	return m, nil
}
