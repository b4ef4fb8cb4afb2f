package httpx_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/logging"
)

type createReq struct {
	Title string                   `json:"title"`
	Due   httpx.Optional[string]   `json:"due"`
	Count int                      `json:"count"`
	Tags  httpx.Optional[[]string] `json:"tags"`
}

// serve runs h behind the middleware every service uses and decodes the error envelope.
func serve(t *testing.T, h http.HandlerFunc, req *http.Request) (*httptest.ResponseRecorder, httpx.ErrorBody) {
	t.Helper()
	chain := httpx.RequestID(logging.Discard())(httpx.SecurityHeaders(httpx.Recover(httpx.LimitBody(h))))
	rec := httptest.NewRecorder()
	chain.ServeHTTP(rec, req)
	var body httpx.ErrorBody
	if rec.Code >= 400 {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("error body is not the envelope: %v: %s", err, rec.Body)
		}
	}
	return rec, body
}

func decodeHandler(w http.ResponseWriter, r *http.Request) {
	var req createReq
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusCreated, req)
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantCode    apperr.Code
		wantField   string
	}{
		{"no content type", "", `{"title":"a"}`, 415, apperr.UnsupportedMediaType, ""},
		{"text plain", "text/plain", `{"title":"a"}`, 415, apperr.UnsupportedMediaType, ""},
		{"unknown field", "application/json", `{"title":"a","nope":1}`, 400, apperr.Validation, "nope"},
		{"wrong type", "application/json", `{"title":5}`, 400, apperr.Validation, "title"},
		{"malformed", "application/json", `{"title":`, 400, apperr.Validation, "body"},
		{"syntax", "application/json", `{"title" "a"}`, 400, apperr.Validation, "body"},
		{"empty", "application/json", ``, 400, apperr.Validation, "body"},
		{"two values", "application/json", `{"title":"a"} {"title":"b"}`, 400, apperr.Validation, "body"},
		{"too large", "application/json", `{"title":"` + strings.Repeat("a", httpx.MaxBodyBytes) + `"}`, 413, apperr.PayloadTooLarge, ""},
		{"charset ok", "application/json; charset=utf-8", `{"title":"a"}`, 201, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec, body := serve(t, decodeHandler, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode == "" {
				return
			}
			if body.Error.Code != tt.wantCode {
				t.Fatalf("code = %s, want %s", body.Error.Code, tt.wantCode)
			}
			if body.Error.RequestID == "" || body.Error.RequestID != rec.Header().Get("X-Request-ID") {
				t.Fatalf("request_id %q must equal X-Request-ID %q", body.Error.RequestID, rec.Header().Get("X-Request-ID"))
			}
			if tt.wantField != "" && (len(body.Error.Details) == 0 || body.Error.Details[0].Field != tt.wantField) {
				t.Fatalf("details = %+v, want field %q", body.Error.Details, tt.wantField)
			}
		})
	}
}

func TestOptionalDistinguishesAbsentNullAndValue(t *testing.T) {
	t.Parallel()
	var a, b, c createReq
	for s, dst := range map[string]*createReq{`{}`: &a, `{"due":null}`: &b, `{"due":"2026-01-01"}`: &c} {
		if err := httpx.DecodeBytes([]byte(s), dst); err != nil {
			t.Fatal(err)
		}
	}
	if a.Due.Set || !b.Due.Set || !b.Due.Null || !c.Due.Has() || c.Due.Value != "2026-01-01" {
		t.Fatalf("absent=%+v null=%+v value=%+v", a.Due, b.Due, c.Due)
	}
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	h := func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, errors.New("pq: password authentication failed for user secret"))
	}
	rec, body := serve(t, h, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 500 || body.Error.Code != apperr.Internal || strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

func TestPanicBecomesInternalError(t *testing.T) {
	t.Parallel()
	rec, body := serve(t, func(http.ResponseWriter, *http.Request) { panic("boom") }, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 500 || body.Error.Code != apperr.Internal {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

func TestTypedErrorMapsToStatusWithDetailsAndHeaders(t *testing.T) {
	t.Parallel()
	h := func(w http.ResponseWriter, r *http.Request) {
		e := apperr.New(apperr.Conflict, "stale version", apperr.Field("version", "current version is 7"))
		httpx.WriteError(w, r, e)
	}
	rec, body := serve(t, h, httptest.NewRequest(http.MethodPatch, "/", nil))
	if rec.Code != http.StatusConflict || body.Error.Details[0].Message != "current version is 7" {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	wrapped := func(w http.ResponseWriter, r *http.Request) {
		e := apperr.New(apperr.RateLimitExceeded, "slow down")
		e.Headers = map[string]string{"Retry-After": "12"}
		httpx.WriteError(w, r, e)
	}
	rec, _ = serve(t, wrapped, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "12" {
		t.Fatalf("got %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestRequestIDEchoedWhenSaneAndReplacedOtherwise(t *testing.T) {
	t.Parallel()
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Request-ID", "abc-123")
	rec, _ := serve(t, ok, req)
	if got := rec.Header().Get("X-Request-ID"); got != "abc-123" {
		t.Fatalf("sane id not echoed: %q", got)
	}
	req = httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Request-ID", "bad id\n<script>")
	rec, _ = serve(t, ok, req)
	if got := rec.Header().Get("X-Request-ID"); got == "" || strings.Contains(got, "<") {
		t.Fatalf("insane id echoed: %q", got)
	}
	for h, want := range map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "DENY",
		"Referrer-Policy":           "no-referrer",
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
		"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
	} {
		if rec.Header().Get(h) != want {
			t.Errorf("%s = %q, want %q", h, rec.Header().Get(h), want)
		}
	}
}

func TestParsePage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query   string
		want    httpx.Page
		wantErr bool
	}{
		{"", httpx.Page{Offset: 0, Limit: 25}, false},
		{"offset=10&limit=100", httpx.Page{Offset: 10, Limit: 100}, false},
		{"limit=0", httpx.Page{}, true},
		{"limit=101", httpx.Page{}, true},
		{"offset=-1", httpx.Page{}, true},
		{"limit=abc", httpx.Page{}, true},
	}
	for _, tt := range tests {
		p, err := httpx.ParsePage(httptest.NewRequest(http.MethodGet, "/?"+tt.query, nil))
		if (err != nil) != tt.wantErr {
			t.Fatalf("%q: err = %v", tt.query, err)
		}
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("%q: code %s", tt.query, apperr.CodeOf(err))
			}
			continue
		}
		if p != tt.want {
			t.Fatalf("%q: %+v, want %+v", tt.query, p, tt.want)
		}
	}
	l := httpx.NewList[int](nil, httpx.Page{Offset: 0, Limit: 2}, 0)
	b, _ := json.Marshal(l)
	if string(b) != `{"data":[],"pagination":{"offset":0,"limit":2,"total":0,"has_more":false}}` {
		t.Fatalf("empty list = %s", b)
	}
	if l := httpx.NewList([]int{1, 2}, httpx.Page{Offset: 0, Limit: 2}, 3); !l.Pagination.HasMore {
		t.Fatal("has_more must be true when items remain")
	}
}

func TestReadyReportsFailingChecks(t *testing.T) {
	t.Parallel()
	h := httpx.Ready(
		httpx.Check{Name: "database", Fn: func(context.Context) error { return nil }},
		httpx.Check{Name: "nats", Fn: func(context.Context) error { return errors.New("down") }},
	)
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/health/ready", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"nats":"failed"`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

func TestServerShutsDownGracefully(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	srv, err := httpx.Listen("127.0.0.1:0", h, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(srv.URL())
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-started
	cancel() // shutdown begins while a request is in flight
	close(release)
	if s := <-got; s != "done" {
		t.Fatalf("in-flight request got %q, want it drained", s)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

func TestOpsEndpointsAnswerOnlyReads(t *testing.T) {
	mux := http.NewServeMux()
	httpx.MountOps(mux, prometheus.NewRegistry())
	for _, path := range []string{"/health/live", "/health/ready", "/metrics"} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(m, path, nil))
			if rec.Code != http.StatusOK {
				t.Errorf("%s %s = %d, want 200", m, path, rec.Code)
			}
		}
		for _, m := range []string{http.MethodPost, http.MethodDelete, http.MethodPut} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(m, path, strings.NewReader("{}")))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s = %d Allow %q, want 405 with Allow: GET, HEAD", m, path, rec.Code, rec.Header().Get("Allow"))
			}
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != string(apperr.MethodNotAllowed) {
				t.Errorf("%s %s body %q, want METHOD_NOT_ALLOWED", m, path, rec.Body.String())
			}
		}
	}
}
