package rpc_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/trace"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/rpc"
)

type echoReq struct {
	Text string `json:"text"`
}

type echoResp struct {
	Text      string `json:"text"`
	RequestID string `json:"request_id"`
	TraceID   string `json:"trace_id"`
	Deadline  bool   `json:"deadline"`
}

type fixture struct {
	url    string
	server *nats.Conn // the service side
	client *nats.Conn // the caller side
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func setup(t *testing.T) fixture {
	t.Helper()
	url := natsembed.StartTest(t)
	return fixture{url: url, server: connect(t, url), client: connect(t, url)}
}

func newService(t *testing.T, nc *nats.Conn, name string) *rpc.Service {
	t.Helper()
	s, err := rpc.NewService(nc, name, "1.0.0", logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func subject() string { return "svc.test." + strings.ReplaceAll(uuid.NewString(), "-", "") }

func echo(ctx context.Context, req echoReq) (echoResp, error) {
	_, hasDeadline := ctx.Deadline()
	return echoResp{
		Text:      strings.ToUpper(req.Text),
		RequestID: httpx.RequestIDFrom(ctx),
		TraceID:   trace.SpanContextFromContext(ctx).TraceID().String(),
		Deadline:  hasDeadline,
	}, nil
}

func TestRoundTripCarriesRequestIDTraceAndDeadline(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newService(t, f.server, "test")
	subj := subject()
	if err := rpc.Handle(s, subj, echo); err != nil {
		t.Fatal(err)
	}

	traceID := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	ctx = httpx.WithRequestID(ctx, "req-"+uuid.NewString())

	resp, err := rpc.Call[echoReq, echoResp](ctx, f.client, subj, echoReq{Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	want := echoResp{Text: "HELLO", RequestID: httpx.RequestIDFrom(ctx), TraceID: traceID.String(), Deadline: true}
	if resp != want {
		t.Fatalf("reply = %+v, want %+v", resp, want)
	}
}

func TestHandlerGetsCallersRemainingTime(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newService(t, f.server, "test")
	subj := subject()
	got := make(chan time.Duration, 1)
	if err := rpc.Handle(s, subj, func(ctx context.Context, _ echoReq) (echoResp, error) {
		d, _ := ctx.Deadline()
		got <- time.Until(d)
		return echoResp{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := rpc.Call[echoReq, echoResp](ctx, f.client, subj, echoReq{}); err != nil {
		t.Fatal(err)
	}
	if d := <-got; d <= 0 || d > 2*time.Second {
		t.Fatalf("handler's remaining time = %s, want (0, 2s]", d)
	}
	// Without a deadline of its own the caller sends the default.
	if _, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subj, echoReq{}); err != nil {
		t.Fatal(err)
	}
	if d := <-got; d <= 2*time.Second || d > rpc.DefaultTimeout {
		t.Fatalf("handler's remaining time = %s, want about %s", d, rpc.DefaultTimeout)
	}
}

func TestTypedErrorRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newService(t, f.server, "test")

	typed := &apperr.Error{
		Code:    apperr.InsufficientCredits,
		Message: "not enough credits\nfor this",
		Details: []apperr.Detail{{Field: "balance", Message: "3"}, {Field: "required", Message: "5"}},
		Headers: map[string]string{"Retry-After": "7"},
	}
	tests := []struct {
		name    string
		err     error
		wantErr *apperr.Error
	}{
		{name: "typed with details", err: typed, wantErr: typed},
		{name: "wrapped typed", err: errors.Join(errors.New("ctx"), apperr.New(apperr.NotFound, "no such task")),
			wantErr: apperr.New(apperr.NotFound, "no such task")},
		{name: "plain error is internal", err: errors.New("db on fire: password=secret"),
			wantErr: apperr.New(apperr.Internal, "internal error")},
		{name: "unknown code is internal", err: apperr.New(apperr.Code("MADE_UP"), "x"),
			wantErr: apperr.New(apperr.Internal, "internal error")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subj := subject()
			if err := rpc.Handle(s, subj, func(context.Context, echoReq) (echoResp, error) { return echoResp{}, tt.err }); err != nil {
				t.Fatal(err)
			}
			_, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subj, echoReq{Text: "x"})
			e, ok := apperr.As(err)
			if !ok {
				t.Fatalf("err = %v, want *apperr.Error", err)
			}
			if e.Code != tt.wantErr.Code || e.Message != tt.wantErr.Message ||
				!reflect.DeepEqual(e.Details, tt.wantErr.Details) || !reflect.DeepEqual(e.Headers, tt.wantErr.Headers) {
				t.Fatalf("err = %#v, want %#v", e, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("internal detail leaked: %v", err)
			}
		})
	}
}

func TestPanicIsInternalError(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newService(t, f.server, "test")
	subj := subject()
	if err := rpc.Handle(s, subj, func(context.Context, echoReq) (echoResp, error) { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	_, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subj, echoReq{})
	if apperr.CodeOf(err) != apperr.Internal {
		t.Fatalf("err = %v, want INTERNAL_ERROR", err)
	}
	// The service still answers afterwards.
	if err := rpc.Handle(s, subj+".ok", echo); err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subj+".ok", echoReq{}); err != nil {
		t.Fatal(err)
	}
}

func TestTimeoutIsServiceUnavailable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newService(t, f.server, "test")
	subj := subject()
	handlerErr := make(chan error, 1)
	if err := rpc.Handle(s, subj, func(ctx context.Context, _ echoReq) (echoResp, error) {
		<-ctx.Done() // a slow handler; it gives up when the caller does
		handlerErr <- ctx.Err()
		return echoResp{}, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := rpc.Call[echoReq, echoResp](ctx, f.client, subj, echoReq{})
	e, ok := apperr.As(err)
	// Either the caller's own timeout or the handler's reply that it ran out of time,
	// whichever comes first; both are SERVICE_UNAVAILABLE.
	if !ok || e.Code != apperr.ServiceUnavailable {
		t.Fatalf("err = %v, want SERVICE_UNAVAILABLE timeout", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("call took %s, want about 300ms", el)
	}
	select {
	case herr := <-handlerErr:
		if !errors.Is(herr, context.DeadlineExceeded) {
			t.Fatalf("handler ctx err = %v, want deadline exceeded", herr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler's context never ended")
	}
}

func TestCallerTimeoutSaysSo(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newService(t, f.server, "test")
	subj := subject()
	release := make(chan struct{})
	if err := rpc.Handle(s, subj, func(context.Context, echoReq) (echoResp, error) {
		<-release // ignores its deadline, so only the caller's timeout can end the call
		return echoResp{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release) }) // runs before the service's Stop waits
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := rpc.Call[echoReq, echoResp](ctx, f.client, subj, echoReq{})
	e, ok := apperr.As(err)
	if !ok || e.Code != apperr.ServiceUnavailable || !strings.Contains(e.Message, subj+" did not answer within") {
		t.Fatalf("err = %v, want SERVICE_UNAVAILABLE saying it did not answer", err)
	}
}

func TestCancelledContextIsNotServiceUnavailable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := rpc.Call[echoReq, echoResp](ctx, f.client, subject(), echoReq{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestNoRespondersIsServiceUnavailable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	start := time.Now()
	_, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subject(), echoReq{})
	if apperr.CodeOf(err) != apperr.ServiceUnavailable {
		t.Fatalf("err = %v, want SERVICE_UNAVAILABLE", err)
	}
	// Below the 5 s default timeout with room for a loaded machine: the answer must come
	// from the server's no-responders status, not from waiting the timeout out.
	if el := time.Since(start); el >= rpc.DefaultTimeout-time.Second {
		t.Fatalf("no-responders took %s; it should not wait for the timeout", el)
	}
}

func TestMalformedRequestIsValidationError(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newService(t, f.server, "test")
	subj := subject()
	ran := make(chan struct{}, 10)
	if err := rpc.Handle(s, subj, func(ctx context.Context, req echoReq) (echoResp, error) {
		ran <- struct{}{}
		return echo(ctx, req)
	}); err != nil {
		t.Fatal(err)
	}

	// A caller with a newer or wrong contract: an unknown field is refused with its name.
	type wrongReq struct {
		Text  string `json:"text"`
		Extra int    `json:"extra"`
	}
	_, err := rpc.Call[wrongReq, echoResp](context.Background(), f.client, subj, wrongReq{Text: "x", Extra: 1})
	e, ok := apperr.As(err)
	if !ok || e.Code != apperr.Validation || len(e.Details) != 1 || e.Details[0].Field != "extra" {
		t.Fatalf("err = %#v, want VALIDATION_ERROR on field extra", err)
	}

	// Raw garbage from any NATS client gets the micro error headers.
	for _, body := range []string{"not json", "", `{"text": 5}`, `{"text":"a"} {"text":"b"}`} {
		msg, err := f.client.Request(subj, []byte(body), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Header.Get(micro.ErrorCodeHeader); got != string(apperr.Validation) {
			t.Fatalf("body %q: error code header = %q, want VALIDATION_ERROR", body, got)
		}
		if msg.Header.Get(micro.ErrorHeader) == "" {
			t.Fatalf("body %q: no error description header", body)
		}
	}
	if len(ran) != 0 {
		t.Fatalf("handler ran %d times for malformed requests", len(ran))
	}
}

func TestReplicasShareTheLoadThroughAQueueGroup(t *testing.T) {
	t.Parallel()
	f := setup(t)
	subj := subject()
	var mu sync.Mutex
	served := map[string]int{}
	for _, instance := range []string{"a", "b"} {
		s := newService(t, connect(t, f.url), "shared")
		if err := rpc.Handle(s, subj, func(context.Context, echoReq) (echoResp, error) {
			mu.Lock()
			served[instance]++
			mu.Unlock()
			return echoResp{Text: instance}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	const calls = 60
	for range calls {
		if _, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subj, echoReq{}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if served["a"]+served["b"] != calls {
		t.Fatalf("served %v, want %d requests answered exactly once in total", served, calls)
	}
	// With random queue-group delivery, one replica getting all 60 has odds of 2^-59.
	if served["a"] == 0 || served["b"] == 0 {
		t.Fatalf("served %v, want both replicas used", served)
	}
}

func TestHandlesRequestsConcurrently(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newService(t, f.server, "test")
	subj := subject()
	const n = 8
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	if err := rpc.Handle(s, subj, func(ctx context.Context, _ echoReq) (echoResp, error) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return echoResp{}, ctx.Err()
		}
		return echoResp{Text: "ok"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subj, echoReq{})
			errs <- err
		}()
	}
	// All n are inside the handler at once: one slow request does not hold up the others.
	for range n {
		select {
		case <-arrived:
		case <-time.After(4 * time.Second):
			t.Fatal("requests were not handled concurrently")
		}
	}
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestStopWaitsForRunningRequests(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s, err := rpc.NewService(f.server, "test", "1.0.0", logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	subj := subject()
	arrived := make(chan struct{})
	release := make(chan struct{})
	if err := rpc.Handle(s, subj, func(context.Context, echoReq) (echoResp, error) {
		close(arrived)
		<-release
		return echoResp{Text: "finished"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		resp echoResp
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subj, echoReq{})
		done <- result{resp, err}
	}()
	select {
	case <-arrived:
	case r := <-done:
		t.Fatalf("call ended before the handler ran: %+v", r)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	// Stop has begun once the service no longer answers its discovery ping.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := f.client.Request("$SRV.PING.test", nil, time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service still answers ping after Stop: %v", err)
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a request was running", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.resp.Text != "finished" {
		t.Fatalf("call = %+v, want the answer of the running request", r)
	}
	// After Stop nobody answers.
	if _, err := rpc.Call[echoReq, echoResp](context.Background(), f.client, subj, echoReq{}); apperr.CodeOf(err) != apperr.ServiceUnavailable {
		t.Fatalf("after stop: err = %v, want SERVICE_UNAVAILABLE", err)
	}
}
