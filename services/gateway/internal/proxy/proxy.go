// Package proxy forwards requests to the upstream services unchanged: one tuned transport
// shared by every upstream (connections reused), SSE streamed without buffering, the
// client address in X-Forwarded-For, and upstream failures answered with the error
// envelope (502 BAD_GATEWAY, or 503 SERVICE_UNAVAILABLE when the upstream is not there or
// too slow).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/services/gateway/internal/clientip"
)

// Transport sizing. The gateway multiplexes every client onto four upstreams, so it keeps
// many idle connections per host: the default of 2 would open and close a connection for
// almost every request under load (64 concurrent requests need about 64 connections).
// The number of connections per host is not capped (MaxConnsPerHost 0): a cap would queue
// requests inside the gateway, where no timeout but the request's own applies.
const (
	MaxIdleConns        = 1024
	MaxIdleConnsPerHost = 256
	IdleConnTimeout     = 90 * time.Second
	DialTimeout         = 5 * time.Second
)

// NewTransport is the transport shared by every upstream. headerTimeout bounds the wait
// for response headers, which also holds on the SSE routes that have no total timeout.
func NewTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		// Never an environment proxy between the gateway and its services.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          MaxIdleConns,
		MaxIdleConnsPerHost:   MaxIdleConnsPerHost,
		IdleConnTimeout:       IdleConnTimeout,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		TLSHandshakeTimeout:   DialTimeout,
		// The services speak HTTP/1.1 over plain TCP; no h2 negotiation on the way.
		ForceAttemptHTTP2: false,
	}
}

// copyBufferSize is what ReverseProxy would allocate for every response it copies.
const copyBufferSize = 32 << 10

// bufferPool lends ReverseProxy its copy buffers instead of a new 32 KiB per request.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}
}

func (b *bufferPool) Get() []byte { return *b.p.Get().(*[]byte) }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		buf = buf[:copyBufferSize]
		b.p.Put(&buf)
	}
}

// Config of a Proxy.
type Config struct {
	// Upstreams maps a service name to its base URL (scheme and host only).
	Upstreams map[string]*url.URL
	// Timeout bounds a whole exchange on non-streaming routes, and the wait for headers on all.
	Timeout time.Duration
	// Timeouts overrides Timeout for some upstreams (by name).
	Timeouts map[string]time.Duration
	// Resolver decides whether an incoming X-Forwarded-For chain is kept.
	Resolver *clientip.Resolver
	// Transport is shared by every upstream; nil builds one with NewTransport.
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// Proxy holds two reverse proxies per upstream over the shared transport: one for
// ordinary answers and one that flushes every write, for the SSE routes.
type Proxy struct {
	cfg     Config
	buffers *bufferPool
	proxies map[string]*httputil.ReverseProxy
	streams map[string]*httputil.ReverseProxy
}

// New builds the proxies.
func New(cfg Config) (*Proxy, error) {
	if cfg.Transport == nil {
		cfg.Transport = NewTransport(cfg.Timeout)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = clientip.New(nil)
	}
	p := &Proxy{cfg: cfg, buffers: newBufferPool(),
		proxies: map[string]*httputil.ReverseProxy{}, streams: map[string]*httputil.ReverseProxy{}}
	for name, target := range cfg.Upstreams {
		if target == nil || target.Host == "" {
			return nil, fmt.Errorf("proxy: upstream %s has no URL", name)
		}
		p.proxies[name] = p.reverseProxy(name, target, 0)
		p.streams[name] = p.reverseProxy(name, target, -1)
	}
	return p, nil
}

// Handler forwards to upstream. A stream route (SSE) has no total timeout: it lasts as
// long as the client stays.
func (p *Proxy) Handler(upstream string, stream bool) (http.Handler, error) {
	rp, ok := p.proxies[upstream]
	if !ok {
		return nil, fmt.Errorf("proxy: no URL for upstream %q", upstream)
	}
	if stream {
		return p.streams[upstream], nil
	}
	timeout := p.cfg.Timeout
	if t, ok := p.cfg.Timeouts[upstream]; ok {
		timeout = t
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		rp.ServeHTTP(w, r.WithContext(ctx))
	}), nil
}

// gatewayOwned are response headers the gateway sets itself; an upstream's copy would be
// added beside ours (ReverseProxy adds, it does not replace), so it is dropped. The names
// are canonical, so dropping one is a map delete (Header.Del would canonicalize
// "X-Request-ID" into a new string on every response).
var gatewayOwned = canonical(
	httpx.RequestIDHeader,
	"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
	"Strict-Transport-Security", "Content-Security-Policy",
)

func canonical(names ...string) []string {
	for i, n := range names {
		names[i] = http.CanonicalHeaderKey(n)
	}
	return names
}

// reverseProxy forwards to target. flushInterval -1 flushes every write at once (the SSE
// routes); 0 lets the response buffer fill as usual, and ReverseProxy still flushes at
// once whatever is text/event-stream or has no Content-Length, so a stream that reaches
// an ordinary route is not held back either.
func (p *Proxy) reverseProxy(name string, target *url.URL, flushInterval time.Duration) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Rewrite starts from a request without X-Forwarded-*; a trusted proxy's chain
			// is kept, anyone else's is dropped, then the socket address is appended.
			trusted := p.cfg.Resolver.PeerTrusted(pr.In.RemoteAddr)
			if trusted {
				if xff := pr.In.Header.Values("X-Forwarded-For"); len(xff) > 0 {
					pr.Out.Header["X-Forwarded-For"] = xff
				}
			}
			pr.SetXForwarded()
			// The upstream continues the gateway's span, not the client's: replace the
			// traceparent the client sent with ours.
			otel.GetTextMapPropagator().Inject(pr.Out.Context(), propagation.HeaderCarrier(pr.Out.Header))
			if proto := pr.In.Header.Get("X-Forwarded-Proto"); trusted && (proto == "https" || proto == "http") {
				pr.Out.Header.Set("X-Forwarded-Proto", proto)
			}
		},
		Transport:     p.cfg.Transport,
		FlushInterval: flushInterval,
		BufferPool:    p.buffers,
		ModifyResponse: func(resp *http.Response) error {
			for _, h := range gatewayOwned {
				delete(resp.Header, h)
			}
			for k := range resp.Header {
				// Keys read from the wire are canonical.
				if strings.HasPrefix(k, "Access-Control-") {
					delete(resp.Header, k) // CORS is answered by the gateway alone
				}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.fail(w, r, name, err)
		},
		ErrorLog: slog.NewLogLogger(p.cfg.Logger.Handler(), slog.LevelDebug),
	}
}

// fail answers a failed exchange with the envelope: 413 for an oversized streamed body,
// 503 when the upstream is not listening or too slow, 502 for anything else it did wrong.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, upstream string, err error) {
	ctx := r.Context()
	logger := httpx.LoggerFrom(ctx)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		httpx.WriteError(w, r, apperr.New(apperr.PayloadTooLarge, "request body exceeds 1 MiB"))
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; there is nobody to answer.
		logger.DebugContext(ctx, "client gone before the upstream answered", "upstream", upstream)
	case isUnavailable(err) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		httpx.WriteError(w, r, apperr.Wrap(fmt.Errorf("upstream %s: %w", upstream, err),
			apperr.ServiceUnavailable, "the "+upstream+" service is unavailable; retry shortly"))
	default:
		httpx.WriteError(w, r, apperr.Wrap(fmt.Errorf("upstream %s: %w", upstream, err),
			apperr.BadGateway, "the "+upstream+" service gave no valid answer"))
	}
}

// isUnavailable is a refused or failed dial, or a timeout: the upstream is not there (yet).
func isUnavailable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ReadyCheck asks an upstream's /health/ready; anything but 200 is not ready.
func ReadyCheck(client *http.Client, name string, base *url.URL) httpx.Check {
	target := base.JoinPath("/health/ready").String()
	return httpx.Check{Name: name, Fn: func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %d", target, resp.StatusCode)
		}
		return nil
	}}
}
