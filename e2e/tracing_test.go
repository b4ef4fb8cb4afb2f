package e2e_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/perpetua-flow/backend/e2e/contract"
	"github.com/perpetua-flow/backend/e2e/fakes"
	"github.com/perpetua-flow/backend/e2e/stack"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
)

// TestInstrumentedStack runs the checks that need a stack exporting its traces (to an
// in-test OTLP/HTTP collector) on one stack, since five services take seconds to start:
// one trace per request across the gateway, a service and JetStream; every documented
// route is mounted; /metrics of each service; /docs and the documents the gateway serves.
func TestInstrumentedStack(t *testing.T) {
	t.Parallel()
	col := newCollector(t)
	openai := fakes.NewOpenAI(t)
	s := stack.Start(t, stack.Options{
		Env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL,
			"OTEL_BSP_SCHEDULE_DELAY":     "100", // ms: spans reach the collector quickly
		},
		ServiceEnv: map[string]map[string]string{
			"ai": {"OPENAI_API_KEY": "sk-e2e", "OPENAI_BASE_URL": openai.BaseURL},
		},
	})
	for name, f := range map[string]func(*testing.T, *stack.Stack){
		"SignUpTrace":      func(t *testing.T, s *stack.Stack) { testSignUpTrace(t, s, col) },
		"AchievementTrace": func(t *testing.T, s *stack.Stack) { testAchievementTrace(t, s, col) },
		"AIChatTrace":      func(t *testing.T, s *stack.Stack) { testAIChatTrace(t, s, col) },
		"DocumentedRoutes": testDocumentedRoutesAreMounted,
		"ContractTour":     testContractTour,
		"Metrics":          testMetrics,
		"Docs":             testDocs,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, s)
		})
	}
}

// A sign-up is one trace: the gateway's server span, auth's server span (the proxy passed
// the context on), and billing's consumer span for auth.user.created (the outbox row kept
// the context, the relay published it in the message headers, the consumer continued it).
func testSignUpTrace(t *testing.T, s *stack.Stack, col *collector) {
	ua := "e2e-trace-" + uuid.NewString()
	r := s.NewClient().For(t).Do("POST", "/api/v1/auth/dev/login",
		map[string]string{"email": email(), "name": "Trace"}, map[string]string{"User-Agent": ua})
	if r.Status != http.StatusOK {
		t.Fatalf("dev login: %d %s", r.Status, r.Body)
	}
	col.requireTrace(t, ua, []spanWant{
		{service: "gateway", kind: "server"},
		{service: "auth", kind: "server", name: "POST /api/v1/auth/dev/login"},
		{service: "billing", kind: "consumer", name: "process auth.user.created"},
	})
}

// An AI chat is one trace: the gateway, ai's server span, ai's request-reply call to
// billing for the credit and billing's handling of it.
func testAIChatTrace(t *testing.T, s *stack.Stack, col *collector) {
	u := s.SignIn(email()).For(t)
	waitBalance(t, u, func(b balance) bool { return b.Kickstart == 5 })
	ua := "e2e-trace-" + uuid.NewString()
	u.Must(200, "POST", "/api/v1/ai/chat", map[string]any{"message": "Where do I start?"},
		map[string]string{"Idempotency-Key": uuid.NewString(), "User-Agent": ua})
	col.requireTrace(t, ua, []spanWant{
		{service: "gateway", kind: "server"},
		{service: "ai", kind: "server", name: "POST /api/v1/ai/chat"},
		{service: "ai", kind: "client", name: billingrpc.SubjectConsume},
		{service: "billing", kind: "server", name: billingrpc.SubjectConsume},
	})
}

// The fifth completion unlocks tasks_5 (API.md §3): the trace runs from the gateway
// through tasks to billing's consumer of tasks.achievement.unlocked.
func testAchievementTrace(t *testing.T, s *stack.Stack, col *collector) {
	u := s.SignIn(email()).For(t)
	ids := make([]string, 5)
	for i := range ids {
		var tk task
		u.Must(201, "POST", "/api/v1/tasks", map[string]any{"title": fmt.Sprintf("step %d", i)}, nil).Data(t, &tk)
		ids[i] = tk.ID
	}
	for _, id := range ids[:4] {
		u.Must(200, "PATCH", "/api/v1/tasks/"+id, map[string]any{"completed": true}, nil)
	}
	ua := "e2e-trace-" + uuid.NewString()
	r := u.Must(200, "PATCH", "/api/v1/tasks/"+ids[4], map[string]any{"completed": true}, map[string]string{"User-Agent": ua})
	var answer struct {
		Unlocked []struct {
			ID string `json:"id"`
		} `json:"unlocked_achievements"`
	}
	r.JSON(t, &answer)
	unlocked := false
	for _, a := range answer.Unlocked {
		unlocked = unlocked || a.ID == "tasks_5"
	}
	if !unlocked {
		t.Fatalf("the fifth completion did not unlock tasks_5: %s", r.Body)
	}
	col.requireTrace(t, ua, []spanWant{
		{service: "gateway", kind: "server"},
		{service: "tasks", kind: "server", name: "PATCH /api/v1/tasks/{id}"},
		{service: "billing", kind: "consumer", name: "process tasks.achievement.unlocked"},
	})
}

// collector is a fake OTLP/HTTP trace collector: it decodes the protobuf export requests
// the services post to /v1/traces and keeps their spans.
type collector struct {
	URL   string
	mu    sync.Mutex
	spans []span
}

type span struct {
	Service, Name, Kind       string
	TraceID, SpanID, ParentID string
	Attrs                     map[string]string
}

type spanWant struct{ service, kind, name string }

func newCollector(t *testing.T) *collector {
	c := &collector{}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []span
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, kv := range sp.GetAttributes() {
					attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
				}
				got = append(got, span{
					Service:  service,
					Name:     sp.GetName(),
					Kind:     strings.ToLower(strings.TrimPrefix(sp.GetKind().String(), "SPAN_KIND_")),
					TraceID:  hex.EncodeToString(sp.GetTraceId()),
					SpanID:   hex.EncodeToString(sp.GetSpanId()),
					ParentID: hex.EncodeToString(sp.GetParentSpanId()),
					Attrs:    attrs,
				})
			}
		}
	}
	c.mu.Lock()
	c.spans = append(c.spans, got...)
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// requireTrace finds the gateway's server span of the request sent with user agent ua,
// then waits until its trace holds a span matching each of want, and fails with the
// trace's spans (and what else arrived) when one never comes.
func (c *collector) requireTrace(t *testing.T, ua string, want []spanWant) {
	t.Helper()
	var traceID string
	var missing []spanWant
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		spans := append([]span(nil), c.spans...)
		c.mu.Unlock()
		if traceID == "" {
			for _, sp := range spans {
				if sp.Service == "gateway" && sp.Kind == "server" && sp.Attrs["user_agent.original"] == ua {
					traceID = sp.TraceID
				}
			}
		}
		if traceID != "" {
			missing = missing[:0]
			for _, w := range want {
				found := false
				for _, sp := range spans {
					found = found || sp.TraceID == traceID && sp.Service == w.service && sp.Kind == w.kind && (w.name == "" || sp.Name == w.name)
				}
				if !found {
					missing = append(missing, w)
				}
			}
			if len(missing) == 0 {
				t.Logf("one trace %s: %s", traceID, c.describe(traceID))
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if traceID == "" {
		t.Fatalf("no gateway server span with user agent %q reached the collector (%d spans arrived)", ua, c.count())
	}
	t.Fatalf("trace %s lacks %+v; it holds: %s", traceID, missing, c.describe(traceID))
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spans)
}

// describe lists the spans of one trace as service/kind/name, sorted.
func (c *collector) describe(traceID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, sp := range c.spans {
		if sp.TraceID == traceID {
			out = append(out, fmt.Sprintf("%s/%s %q", sp.Service, sp.Kind, sp.Name))
		}
	}
	sort.Strings(out)
	var b bytes.Buffer
	for _, l := range out {
		b.WriteString("\n  " + l)
	}
	return b.String()
}

// Each service's /metrics has the RED metrics of its HTTP routes (labelled by route
// pattern) and, for the four services with an outbox, the relay's backlog and published
// counts; billing, which consumed the sign-ups' auth.user.created, counts consumed
// messages by consumer and outcome (redeliveries are outcome="retry", dead letters
// outcome="dead_letter").
func testMetrics(t *testing.T, s *stack.Stack) {
	// Traffic first, so every service has answered a routed request.
	u := s.SignIn(email()).For(t)
	u.Must(200, "GET", "/api/v1/tasks", nil, nil)
	waitBalance(t, u, func(b balance) bool { return b.Kickstart == 5 })
	u.Must(200, "POST", "/api/v1/ai/chat", map[string]any{"message": "Hello"}, map[string]string{"Idempotency-Key": uuid.NewString()})
	s.NewClient().For(t).Must(200, "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": u.Refresh}, nil)
	stack.Eventually(t, 20*time.Second, func() error {
		b := scrape(t, s, "billing")
		if !strings.Contains(b, `events_consumer_messages_total{consumer="billing-user-created",outcome="ok"}`) {
			return stack.Errorf("billing has not counted a consumed auth.user.created yet")
		}
		return nil
	})
	exposed := map[string]bool{}
	for _, name := range stack.Services {
		body := scrape(t, s, name)
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "# TYPE ") {
				exposed[strings.Fields(line)[2]] = true
			}
		}
		want := []string{
			"http_requests_total{", "http_request_duration_seconds_bucket{", "http_requests_in_flight{",
			`route="/api/v1/`,
		}
		if name != "gateway" {
			want = append(want, "events_outbox_backlog ", "events_outbox_published_total ", "events_outbox_publish_errors_total ")
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s /metrics lacks %s", name, w)
			}
		}
	}

	// Every metric the Grafana dashboard queries is one a service exports.
	path, err := contract.RepoPath("deploy/grafana/perpetua.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllStringSubmatch(tg.Expr, -1) {
				name := strings.TrimSuffix(m[1], "_bucket")
				if !exposed[name] {
					t.Errorf("dashboard panel %q queries %s, which no service exports", p.Title, m[1])
				}
			}
		}
	}
}

// metricName finds the metric of each selector in a PromQL expression.
var metricName = regexp.MustCompile(`([a-z_][a-z0-9_]*)[{[]`)

func scrape(t *testing.T, s *stack.Stack, service string) string {
	t.Helper()
	resp, err := http.Get(s.URLs[service] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s /metrics: %d %v", service, resp.StatusCode, err)
	}
	return string(b)
}
