package telemetry_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/telemetry"
)

// recorder receives every span of the test binary; tests find theirs by trace id.
var recorder = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
	os.Exit(m.Run())
}

// waitSpan polls for the ended span of traceID: the middleware ends it after the response
// has gone out, so the client can be ahead of it.
func waitSpan(t *testing.T, traceID trace.TraceID) sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range recorder.Ended() {
			if s.SpanContext().TraceID() == traceID && s.SpanKind() == trace.SpanKindServer {
				return s
			}
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline, not waiting for a fixed time
	}
	t.Fatalf("no server span for trace %s", traceID)
	return nil
}

// parentContext starts a client span, as a caller of the service would.
func parentContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	ctx, span := otel.Tracer("test").Start(t.Context(), "client")
	t.Cleanup(func() { span.End() })
	return ctx, span.SpanContext()
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metrics
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

type bundle struct {
	reg    *prometheus.Registry
	router chi.Router
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{reg: prometheus.NewRegistry(), router: chi.NewRouter()}
	return b
}

func TestHTTPMetricsLabelsByRoute(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"chi middleware", "around the router"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var h http.Handler = b.router
			if mode == "chi middleware" {
				b.router.Use(telemetry.HTTPMetrics(b.reg, "tasks"))
			} else {
				h = telemetry.HTTPMetrics(b.reg, "tasks")(b.router)
			}
			b.router.Route("/api/v1/tasks", func(r chi.Router) {
				r.Get("/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
				r.Post("/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
			})
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)

			ctx, parent := parentContext(t)
			do := func(method, path string, traced bool) int {
				t.Helper()
				req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if traced {
					propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				return resp.StatusCode
			}
			do(http.MethodGet, "/api/v1/tasks/0195", true)
			do(http.MethodGet, "/api/v1/tasks/0196", false)
			do(http.MethodPost, "/api/v1/tasks", false)
			do(http.MethodGet, "/wp-admin/setup.php", false)
			do("BREW", "/api/v1/tasks/1", false)

			for _, c := range []struct {
				labels map[string]string
				want   float64
			}{
				{map[string]string{"service": "tasks", "method": "GET", "route": "/api/v1/tasks/{id}", "status": "200"}, 2},
				{map[string]string{"method": "POST", "route": "/api/v1/tasks", "status": "500"}, 1},
				{map[string]string{"method": "GET", "route": telemetry.UnmatchedRoute, "status": "404"}, 1},
				{map[string]string{"method": "OTHER", "status": "405"}, 1},
			} {
				for _, name := range []string{"http_requests_total", "http_request_duration_seconds"} {
					if got, _ := counterValue(t, b.reg, name, c.labels); got != c.want {
						t.Errorf("%s%v = %v, want %v", name, c.labels, got, c.want)
					}
				}
			}
			if got, ok := counterValue(t, b.reg, "http_requests_in_flight", map[string]string{"service": "tasks"}); !ok || got != 0 {
				t.Errorf("in flight %v %v", got, ok)
			}

			// The server span continues the caller's trace and is named by the route.
			s := waitSpan(t, parent.TraceID())
			if s.Parent().SpanID() != parent.SpanID() || !s.Parent().IsRemote() {
				t.Errorf("span parent %v, want remote %v", s.Parent(), parent)
			}
			if s.Name() != "GET /api/v1/tasks/{id}" {
				t.Errorf("span name %q", s.Name())
			}
			attrs := map[string]string{}
			for _, kv := range s.Attributes() {
				attrs[string(kv.Key)] = kv.Value.String()
			}
			if attrs["http.route"] != "/api/v1/tasks/{id}" || attrs["http.response.status_code"] != "200" {
				t.Errorf("span attributes %v", attrs)
			}
		})
	}
}

func TestHTTPMetricsTwiceOnOneRegistry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := telemetry.HTTPMetrics(b.reg, "gateway")
	c := telemetry.HTTPMetrics(b.reg, "gateway")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, mw := range []func(http.Handler) http.Handler{a, c} {
		mw(ok).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}
	if got, _ := counterValue(t, b.reg, "http_requests_total", map[string]string{"route": telemetry.UnmatchedRoute}); got != 2 {
		t.Fatalf("requests %v, want 2 in one series", got)
	}
}

// TestHTTPMetricsKeepsSSEStreaming proves that an event written and flushed reaches the
// client while the handler is still running: the handler waits for the client to have
// read the first event before it writes the second.
func TestHTTPMetricsKeepsSSEStreaming(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.Use(telemetry.HTTPMetrics(b.reg, "ai"))
	clientGotFirst := make(chan struct{})
	b.router.Post("/api/v1/ai/chat", func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("the response writer lost http.Flusher")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		f.Flush()
		select {
		case <-clientGotFirst:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: second\n\n")
		f.Flush()
	})
	srv := httptest.NewServer(b.router)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v1/ai/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q %v (not flushed through the middleware?)", line, err)
	}
	close(clientGotFirst)
	rest, err := io.ReadAll(rd)
	if err != nil || !strings.Contains(string(rest), "data: second") {
		t.Fatalf("rest: %q %v", rest, err)
	}
}

func TestNATSHeadersCarryTheTrace(t *testing.T) {
	t.Parallel()
	ctx, parent := parentContext(t)
	m, err := baggage.NewMember("user_id", "0195")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx = baggage.ContextWithBaggage(ctx, bag)

	h := nats.Header{}
	telemetry.InjectNATS(ctx, h)
	if h.Get("traceparent") == "" {
		t.Fatalf("no traceparent in %v", h)
	}

	// Through a real server: the subscriber's context continues the publisher's trace.
	nc, err := nats.Connect(natsembed.StartTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("tasks.task.completed")
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("tasks.task.completed")
	telemetry.InjectNATS(ctx, msg.Header)
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	got, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rctx := telemetry.ExtractNATS(context.Background(), got.Header)
	sc := trace.SpanContextFromContext(rctx)
	if sc.TraceID() != parent.TraceID() || sc.SpanID() != parent.SpanID() || !sc.IsRemote() {
		t.Fatalf("extracted %v, want remote %v", sc, parent)
	}
	if v := baggage.FromContext(rctx).Member("user_id").Value(); v != "0195" {
		t.Fatalf("baggage user_id %q", v)
	}

	// A consumer's span is a child in the same trace.
	_, child := otel.Tracer("test").Start(rctx, "consume")
	child.End()
	if child.SpanContext().TraceID() != parent.TraceID() {
		t.Fatal("consumer span is in another trace")
	}

	// Header names in another case still link up; nil and empty headers are harmless.
	canon := nats.Header{"Traceparent": h["traceparent"]}
	if trace.SpanContextFromContext(telemetry.ExtractNATS(context.Background(), canon)).TraceID() != parent.TraceID() {
		t.Fatal("canonicalised header name not found")
	}
	telemetry.InjectNATS(ctx, nil)
	if sc := trace.SpanContextFromContext(telemetry.ExtractNATS(context.Background(), nil)); sc.IsValid() {
		t.Fatal("a trace from nothing")
	}
}

func TestTracesURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://otel-collector:4318":           "http://otel-collector:4318/v1/traces",
		"http://otel-collector:4318/":          "http://otel-collector:4318/v1/traces",
		"https://collector.example/otlp":       "https://collector.example/otlp/v1/traces",
		"http://otel-collector:4318/v1/traces": "http://otel-collector:4318/v1/traces",
		"127.0.0.1:4318":                       "http://127.0.0.1:4318/v1/traces",
	} {
		got, err := telemetry.TracesURL(in)
		if err != nil || got != want {
			t.Errorf("TracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://x", "http://", "http://[::1"} {
		if _, err := telemetry.TracesURL(bad); err == nil {
			t.Errorf("TracesURL(%q): no error", bad)
		}
	}
}

// TestSetup is not parallel on purpose: Setup replaces the process-wide tracer provider
// and propagator, which the parallel tests (run after it) must not see change under them.
// It puts the recorder back when done.
func TestSetup(t *testing.T) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
	})

	var (
		mu      sync.Mutex
		exports []*coltracepb.ExportTraceServiceRequest
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			t.Errorf("OTLP body: %v", err)
		}
		mu.Lock()
		exports = append(exports, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(collector.Close)

	ctx := t.Context()
	shutdown, err := telemetry.Setup(ctx, "tasks", collector.URL)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Join(otel.GetTextMapPropagator().Fields(), ",")
	if !strings.Contains(fields, "traceparent") || !strings.Contains(fields, "baggage") {
		t.Fatalf("global propagator fields %s", fields)
	}
	_, span := otel.Tracer("test").Start(ctx, "exported")
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var service, name string
	for _, e := range exports {
		for _, rs := range e.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					name = s.GetName()
				}
			}
		}
	}
	if service != "tasks" || name != "exported" {
		t.Fatalf("exported service.name %q span %q (%d exports)", service, name, len(exports))
	}

	// Without an endpoint: spans still get trace ids, nothing is exported.
	shutdown, err = telemetry.Setup(ctx, "tasks", "")
	if err != nil {
		t.Fatal(err)
	}
	_, span = otel.Tracer("test").Start(ctx, "local")
	if !span.SpanContext().IsValid() {
		t.Fatal("no trace id without an exporter")
	}
	if span.IsRecording() {
		t.Error("a span is recorded though nothing would export it")
	}
	span.End()
	if err := shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if _, err := telemetry.Setup(ctx, "tasks", "ftp://nowhere"); err == nil {
		t.Fatal("Setup with a bad endpoint: no error")
	}
}

func TestHTTPMetricsPutsTraceIDOnTheLogger(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var buf safeBuffer
	logger := logging.New(&buf, slog.LevelInfo, "tasks")
	h := httpx.RequestID(logger)(telemetry.HTTPMetrics(b.reg, "tasks")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.LoggerFrom(r.Context()).InfoContext(r.Context(), "handled")
	})))
	ctx, parent := parentContext(t)
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(r.Header))
	h.ServeHTTP(httptest.NewRecorder(), r)
	if out := buf.String(); !strings.Contains(out, `"trace_id":"`+parent.TraceID().String()+`"`) || !strings.Contains(out, `"request_id":"`) {
		t.Fatalf("log line %s", out)
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
