// Package rpc is typed request-reply between services over NATS micro: a service registers
// endpoints with Handle, a caller asks with Call. Bodies are JSON; errors travel as apperr
// codes in the micro error headers (Nats-Service-Error-Code = code, Nats-Service-Error =
// message) with the full error (details, headers) as the JSON body, so Call returns an
// *apperr.Error with the same code, message and details the handler returned. The request
// id, the W3C trace context and the caller's remaining time travel in request headers.
package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/libs/telemetry"
)

const (
	// DefaultTimeout bounds a Call whose context has no sooner deadline, and a handler
	// whose caller sent no TimeoutHeader.
	DefaultTimeout = 5 * time.Second
	// MaxTimeout caps the time a caller may ask a handler to keep working.
	MaxTimeout = time.Minute
	// TimeoutHeader carries the caller's remaining time in milliseconds. A relative time,
	// not a deadline, so clock skew between hosts does not matter.
	TimeoutHeader = "Rpc-Timeout-Ms"
	// RequestIDHeader carries the request id of the HTTP request that caused the call.
	RequestIDHeader = httpx.RequestIDHeader
	// MaxConcurrent is how many requests one Service handles at once; more wait in the
	// subscription's buffer. micro alone would run one request per endpoint at a time, so
	// one slow request would hold up every other caller of that endpoint on this replica.
	MaxConcurrent = 64
)

const tracerName = "github.com/perpetua-flow/backend/libs/rpc"

// Service is one micro service (one per process and service name) with its endpoints.
// Replicas with the same name share each endpoint's load through a queue group.
type Service struct {
	nc     *nats.Conn
	micro  micro.Service
	logger *slog.Logger
	sem    chan struct{}
	busy   inflight

	mu    sync.Mutex
	stats map[string]*endpointStats // by endpoint name
}

// endpointStats add what micro cannot see when the handler runs on its own goroutine.
type endpointStats struct {
	errors     atomic.Int64
	handled    atomic.Int64
	handlingNs atomic.Int64
}

// NewService adds the micro service name (version is SemVer) on nc. Its endpoints use
// the queue group name, so replicas share the load and each request is answered once.
func NewService(nc *nats.Conn, name, version string, logger *slog.Logger) (*Service, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Service{
		nc:     nc,
		logger: logger.With("component", "rpc", "rpc_service", name),
		sem:    make(chan struct{}, MaxConcurrent),
		stats:  map[string]*endpointStats{},
	}
	m, err := micro.AddService(nc, micro.Config{
		Name:         name,
		Version:      version,
		QueueGroup:   name,
		StatsHandler: s.statsData,
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.logger.Error("rpc subscription error", "subject", e.Subject, "err", e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("rpc: add service %s: %w", name, err)
	}
	s.micro = m
	return s, nil
}

// Stop drains the endpoints (no new requests reach this replica) and waits up to
// DefaultTimeout for the requests already being handled to answer.
func (s *Service) Stop() error {
	err := s.micro.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	if werr := s.busy.wait(ctx); werr != nil {
		err = errors.Join(err, fmt.Errorf("rpc: requests still running at stop: %w", werr))
	}
	return err
}

// Worker serves until ctx ends, then stops the service. svc.RunWith stops workers after
// HTTP has drained, so requests from in-flight HTTP handlers are still answered.
func (s *Service) Worker() svc.Worker {
	return svc.Worker{Name: "rpc", Run: func(ctx context.Context) error {
		<-ctx.Done()
		return s.Stop()
	}}
}

func (s *Service) statsData(e *micro.Endpoint) any {
	s.mu.Lock()
	st := s.stats[e.Name]
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	n := st.handled.Load()
	avg := int64(0)
	if n > 0 {
		avg = st.handlingNs.Load() / n
	}
	return map[string]int64{"handled": n, "errors": st.errors.Load(), "average_handling_ns": avg}
}

// Handle adds an endpoint on subject. Each request is decoded strictly (unknown fields,
// malformed JSON → VALIDATION_ERROR with details), fn runs with a context that carries the
// caller's deadline, request id, trace context and a logger, and its result or error is
// the reply. Errors without an apperr code are logged and answered as INTERNAL_ERROR.
func Handle[Req, Resp any](s *Service, subject string, fn func(ctx context.Context, req Req) (Resp, error)) error {
	name := endpointName(subject)
	st := &endpointStats{}
	s.mu.Lock()
	s.stats[name] = st
	s.mu.Unlock()
	h := func(r micro.Request) {
		// Copy what the goroutine needs: micro's request must not be touched after this
		// callback returns (micro reads its fields for the stats).
		msg := &nats.Msg{Subject: r.Subject(), Reply: r.Reply(), Header: nats.Header(r.Headers()), Data: r.Data()}
		s.sem <- struct{}{}
		s.busy.add()
		go func() {
			defer func() { <-s.sem; s.busy.done() }()
			start := time.Now()
			failed := serve(s, msg, fn)
			st.handled.Add(1)
			st.handlingNs.Add(int64(time.Since(start)))
			if failed {
				st.errors.Add(1)
			}
		}()
	}
	if err := s.micro.AddEndpoint(name, micro.HandlerFunc(h), micro.WithEndpointSubject(subject)); err != nil {
		return fmt.Errorf("rpc: add endpoint %s: %w", subject, err)
	}
	// Once Handle returns, the server knows the subscription: a Call from another
	// connection right after it finds a responder.
	if err := s.nc.FlushTimeout(DefaultTimeout); err != nil {
		return fmt.Errorf("rpc: add endpoint %s: flush: %w", subject, err)
	}
	return nil
}

// serve handles one request and replies; it reports whether the reply is an error.
func serve[Req, Resp any](s *Service, msg *nats.Msg, fn func(ctx context.Context, req Req) (Resp, error)) (failed bool) {
	ctx, cancel := handlerContext(msg)
	defer cancel()
	rid := httpx.RequestIDFrom(ctx)
	logger := s.logger.With("request_id", rid, "subject", msg.Subject)
	ctx = httpx.WithLogger(ctx, logger)
	ctx, span := otel.Tracer(tracerName).Start(ctx, msg.Subject, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("rpc.system", "nats"), attribute.String("messaging.destination.name", msg.Subject)))
	defer span.End()

	resp, err := func() (resp Resp, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic in rpc handler: %v", p)
			}
		}()
		var req Req
		if err := httpx.DecodeBytes(msg.Data, &req); err != nil {
			return resp, err
		}
		return fn(ctx, req)
	}()
	if err != nil {
		span.SetStatus(codes.Error, string(apperr.CodeOf(err)))
		s.replyError(ctx, logger, msg, err)
		return true
	}
	body, err := json.Marshal(resp)
	if err != nil {
		s.replyError(ctx, logger, msg, fmt.Errorf("encode reply: %w", err))
		return true
	}
	if err := s.nc.Publish(msg.Reply, body); err != nil {
		logger.WarnContext(ctx, "rpc reply not sent", "err", err)
	}
	return false
}

// handlerContext is the context a handler runs in: the caller's remaining time (or the
// default), its request id (or a new one) and its trace context.
func handlerContext(msg *nats.Msg) (context.Context, context.CancelFunc) {
	timeout := DefaultTimeout
	if ms, err := strconv.ParseInt(msg.Header.Get(TimeoutHeader), 10, 64); err == nil && ms > 0 {
		timeout = min(time.Duration(ms)*time.Millisecond, MaxTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	rid := msg.Header.Get(RequestIDHeader)
	if !httpx.SaneRequestID(rid) {
		rid = httpx.NewRequestID()
	}
	ctx = httpx.WithRequestID(ctx, rid)
	ctx = telemetry.ExtractNATS(ctx, msg.Header)
	return ctx, cancel
}

// wireError is the body of an error reply; the code and message are also in the micro
// headers so generic NATS tooling (nats micro, nats req) shows them.
type wireError struct {
	Code    apperr.Code       `json:"code"`
	Message string            `json:"message"`
	Details []apperr.Detail   `json:"details,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

func (s *Service) replyError(ctx context.Context, logger *slog.Logger, msg *nats.Msg, err error) {
	e, ok := apperr.As(err)
	if !ok && errors.Is(err, context.DeadlineExceeded) {
		// The caller's time ran out while the handler worked; the caller has most likely
		// given up already, and to it this is the same as no answer.
		e, ok = apperr.Wrap(err, apperr.ServiceUnavailable, msg.Subject+" ran out of time"), true
	}
	if !ok {
		e, ok = apperr.As(apperr.Unavailable(err))
	}
	switch {
	case !ok || !e.Code.Known():
		logger.ErrorContext(ctx, "rpc request failed", "err", err)
		e = apperr.New(apperr.Internal, "internal error")
	case e.Err != nil || e.Code.Status() >= 500:
		logger.WarnContext(ctx, "rpc request failed", "code", e.Code, "err", err)
	}
	body, merr := json.Marshal(wireError{Code: e.Code, Message: e.Message, Details: e.Details, Headers: e.Headers})
	if merr != nil {
		body = nil
	}
	desc := e.Message
	if desc == "" {
		desc = string(e.Code)
	}
	reply := &nats.Msg{Subject: msg.Reply, Data: body, Header: nats.Header{}}
	// A header value must not contain a line break; the body keeps the exact message.
	reply.Header.Set(micro.ErrorHeader, strings.NewReplacer("\r", " ", "\n", " ").Replace(desc))
	reply.Header.Set(micro.ErrorCodeHeader, string(e.Code))
	if perr := s.nc.PublishMsg(reply); perr != nil {
		logger.WarnContext(ctx, "rpc error reply not sent", "err", perr)
	}
}

// Call sends req to subject and decodes the reply into Resp. It waits at most
// DefaultTimeout, or until ctx's deadline when that is sooner, and passes the remaining
// time, the request id of ctx and its trace context to the handler. A handler's apperr
// comes back as an *apperr.Error with the same code, message, details and headers; no
// responder or no answer in time is SERVICE_UNAVAILABLE. A cancelled ctx returns its error.
func Call[Req, Resp any](ctx context.Context, nc *nats.Conn, subject string, req Req) (Resp, error) {
	var zero Resp
	body, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("rpc: encode request for %s: %w", subject, err)
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > DefaultTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	remaining := time.Until(deadline)

	ctx, span := otel.Tracer(tracerName).Start(ctx, subject, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.system", "nats"), attribute.String("messaging.destination.name", subject)))
	defer span.End()

	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(TimeoutHeader, strconv.FormatInt(max(remaining.Milliseconds(), 1), 10))
	if rid := httpx.RequestIDFrom(ctx); rid != "" {
		msg.Header.Set(RequestIDHeader, rid)
	}
	telemetry.InjectNATS(ctx, msg.Header)

	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		err = callError(subject, remaining, err)
		span.SetStatus(codes.Error, err.Error())
		return zero, err
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		err := replyError(subject, code, reply)
		span.SetStatus(codes.Error, code)
		return zero, err
	}
	var resp Resp
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return zero, fmt.Errorf("rpc: decode reply of %s: %w", subject, err)
	}
	return resp, nil
}

func callError(subject string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return apperr.Wrap(err, apperr.ServiceUnavailable, "no service is answering "+subject)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return apperr.Wrap(err, apperr.ServiceUnavailable,
			fmt.Sprintf("%s did not answer within %s", subject, timeout.Round(time.Millisecond)))
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("rpc: call %s: %w", subject, err)
	default:
		// Connection closed, draining, or the like: the other service is not reachable now.
		return apperr.Wrap(err, apperr.ServiceUnavailable, "could not reach "+subject)
	}
}

// replyError rebuilds the handler's error. A code we do not know (a foreign micro
// service, or a newer peer) becomes INTERNAL_ERROR carrying the remote text as its cause.
func replyError(subject, code string, reply *nats.Msg) error {
	desc := reply.Header.Get(micro.ErrorHeader)
	var w wireError
	if len(reply.Data) > 0 && json.Unmarshal(reply.Data, &w) == nil && w.Code == apperr.Code(code) {
		desc = w.Message
	} else {
		w = wireError{Code: apperr.Code(code), Message: desc}
	}
	if !w.Code.Known() {
		return apperr.Wrap(fmt.Errorf("rpc: %s answered %s: %s", subject, code, desc), apperr.Internal, "internal error")
	}
	return &apperr.Error{Code: w.Code, Message: w.Message, Details: w.Details, Headers: w.Headers}
}

// endpointName makes a micro endpoint name ([A-Za-z0-9_-]+) from a subject.
func endpointName(subject string) string {
	b := []byte(subject)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

// inflight counts running handlers so Stop can wait for them. (A WaitGroup may not be
// added to while Wait runs, and a drained subscription still delivers what it buffered.)
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{}
}

func (f *inflight) add() {
	f.mu.Lock()
	if f.n == 0 {
		f.zero = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.zero)
	}
	f.mu.Unlock()
}

func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	ch := f.zero
	f.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
