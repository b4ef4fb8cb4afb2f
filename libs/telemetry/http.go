package telemetry

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/felixge/httpsnoop"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/perpetua-flow/backend/libs/httpx"
)

// UnmatchedRoute is the route label of requests no route matched, so scanners probing
// random paths cannot blow up the metric's cardinality.
const UnmatchedRoute = "unmatched"

// durationBuckets reach past the usual 10 s because SSE streams (AI chat) live long.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

var labels = []string{"service", "method", "route", "status"}

type httpMetrics struct {
	service  string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec

	// series caches each label set's counter and histogram: WithLabelValues hashes and
	// validates all four labels (and the status needs formatting) on every call. The
	// key space is the vectors' own: methods and routes are bounded, so is the status.
	mu     sync.RWMutex
	series map[seriesKey]*series
}

type seriesKey struct {
	method, route string
	status        int
}

// series is the counter and histogram of one label set.
type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// seriesOf is the series of the service's method, route and status.
func (m *httpMetrics) seriesOf(method, route string, status int) *series {
	k := seriesKey{method: method, route: route, status: status}
	m.mu.RLock()
	s, ok := m.series[k]
	m.mu.RUnlock()
	if ok {
		return s
	}
	code := strconv.Itoa(status)
	s = &series{
		requests: m.requests.WithLabelValues(m.service, method, route, code),
		duration: m.duration.WithLabelValues(m.service, method, route, code),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if got, ok := m.series[k]; ok {
		return got
	}
	m.series[k] = s
	return s
}

// HTTPMetrics counts and times every request by chi route pattern (rate, errors,
// duration) and wraps it in an OpenTelemetry server span continued from the caller's
// traceparent. It works both as chi middleware (r.Use) and around a whole router: when no
// chi routing context exists yet it provides one, so the route is known once the router
// has run. The response writer keeps its optional interfaces (http.Flusher for SSE,
// Hijacker, ReaderFrom). The request's logger gains trace_id and span_id.
//
// Order: after httpx.RequestID (which replaces the request's logger, so it must come
// first for trace_id to stay on it) and before authn.Middleware and httpx.Recover, so
// refused and panicking requests are counted too.
//
// Metrics: http_requests_total and http_request_duration_seconds with labels service,
// method, route, status; http_requests_in_flight by service.
func HTTPMetrics(reg *prometheus.Registry, service string) func(http.Handler) http.Handler {
	m := &httpMetrics{
		service: service,
		series:  map[seriesKey]*series{},
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern and status.",
		}, labels)),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time from request to the end of the response, by route pattern and status.",
			Buckets: durationBuckets,
		}, labels)),
		inFlight: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "Requests being served now (open SSE streams included).",
		}, []string{"service"})),
	}
	inFlight := m.inFlight.WithLabelValues(service)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			rctx := chi.RouteContext(ctx)
			if rctx == nil {
				rctx = chi.NewRouteContext()
				ctx = context.WithValue(ctx, chi.RouteCtxKey, rctx)
			}
			method := methodLabel(r.Method)
			ctx = propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
			ctx, span := otel.GetTracerProvider().Tracer(scope).Start(ctx, method,
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("http.request.method", r.Method),
					attribute.String("url.path", r.URL.Path),
					attribute.String("url.scheme", scheme(r)),
					attribute.String("user_agent.original", r.UserAgent()),
				))
			defer span.End()
			if sc := span.SpanContext(); sc.IsValid() {
				ctx = httpx.WithLogAttrs(ctx, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
			}

			inFlight.Inc()
			defer inFlight.Dec()
			snoop := httpsnoop.CaptureMetricsFn(w, func(w http.ResponseWriter) {
				next.ServeHTTP(w, r.WithContext(ctx))
			})

			route := rctx.RoutePattern()
			if route == "" {
				route = UnmatchedRoute
			} else {
				span.SetName(method + " " + route)
				span.SetAttributes(attribute.String("http.route", route))
			}
			span.SetAttributes(attribute.Int("http.response.status_code", snoop.Code))
			if snoop.Code >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, http.StatusText(snoop.Code))
			}
			ser := m.seriesOf(method, route, snoop.Code)
			ser.requests.Inc()
			ser.duration.Observe(snoop.Duration.Seconds())
		})
	}
}

// register adds c to reg, or returns the collector already there (HTTPMetrics may be
// built more than once over one registry, in tests or for two routers).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a different metric of the same name: a programming error
	}
	return c
}

// methodLabel keeps the label set small: made-up methods all count as OTHER.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
