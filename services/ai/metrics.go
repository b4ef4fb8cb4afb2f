package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
)

// observedStore counts every provider call as it is logged, so /metrics shows what the
// request log holds: calls by kind and outcome, latency, credits kept and tokens.
type observedStore struct {
	assistant.Store
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	credits  *prometheus.CounterVec
	tokens   *prometheus.CounterVec
}

func newObservedStore(s assistant.Store, reg prometheus.Registerer) (*observedStore, error) {
	o := &observedStore{
		Store: s,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_provider_requests_total", Help: "AI provider calls by kind and outcome.",
		}, []string{"kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ai_provider_latency_seconds", Help: "Time of AI provider calls by kind.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60},
		}, []string{"kind"}),
		credits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_credits_charged_total", Help: "Credits kept for answered AI calls, by kind.",
		}, []string{"kind"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ai_tokens_total", Help: "Model tokens by kind and direction (prompt, completion).",
		}, []string{"kind", "direction"}),
	}
	for _, c := range []prometheus.Collector{o.requests, o.latency, o.credits, o.tokens} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *observedStore) observe(l assistant.RequestLog) {
	kind := string(l.Kind)
	o.requests.WithLabelValues(kind, l.Outcome).Inc()
	o.latency.WithLabelValues(kind).Observe(l.Latency.Seconds())
	o.credits.WithLabelValues(kind).Add(float64(l.Credits))
	o.tokens.WithLabelValues(kind, "prompt").Add(float64(l.Usage.PromptTokens))
	o.tokens.WithLabelValues(kind, "completion").Add(float64(l.Usage.CompletionTokens))
}

func (o *observedStore) LogRequest(ctx context.Context, l assistant.RequestLog) error {
	err := o.Store.LogRequest(ctx, l)
	o.observe(l)
	return err
}

func (o *observedStore) LogNoteConverted(ctx context.Context, l assistant.RequestLog, noteID string) error {
	err := o.Store.LogNoteConverted(ctx, l, noteID)
	o.observe(l)
	return err
}

func (o *observedStore) FinishVoiceNote(ctx context.Context, l assistant.RequestLog, r assistant.VoiceNoteResult) error {
	err := o.Store.FinishVoiceNote(ctx, l, r)
	if err == nil {
		o.observe(l)
	}
	return err
}
