// Package telemetry owns what a service reports about itself: OpenTelemetry traces
// (exported over OTLP/HTTP, propagated as W3C Trace Context and Baggage over HTTP and
// NATS headers) and the Prometheus RED metrics of its HTTP routes.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// scope names the instrumentation of this package in every span it starts.
const scope = "github.com/perpetua-flow/backend/libs/telemetry"

// tracesPath is the OTLP/HTTP path for traces, appended to the generic endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT) as the OpenTelemetry specification says.
const tracesPath = "/v1/traces"

// propagator is what crosses process boundaries: the W3C traceparent/tracestate and
// baggage headers. The HTTP and NATS helpers use it directly, so propagation works even
// in a test that never called Setup; Setup installs the same one globally for clients
// instrumented elsewhere.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Setup installs the global propagator and tracer provider for service. With an
// otlpEndpoint (OTEL_EXPORTER_OTLP_ENDPOINT, such as http://otel-collector:4318) spans
// are batched and exported over OTLP/HTTP to its /v1/traces; without one, spans are not
// recorded (unless OTEL_TRACES_SAMPLER asks for it) but still carry trace ids to logs and
// downstream services, unsampled: a service without an exporter ends the sampled part of
// a trace. The usual
// OTEL_EXPORTER_OTLP_HEADERS / OTEL_TRACES_SAMPLER variables keep working. shutdown
// flushes pending spans; call it with a deadline on the way out.
func Setup(ctx context.Context, service, otlpEndpoint string) (shutdown func(context.Context) error, err error) {
	if service == "" {
		return nil, errors.New("telemetry: service name is required")
	}
	otel.SetTextMapPropagator(propagator)
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if otlpEndpoint != "" {
		endpoint, err := TracesURL(otlpEndpoint)
		if err != nil {
			return nil, err
		}
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	} else if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		// Nothing would receive the spans: do not record them. Spans still carry trace
		// ids (logs and downstream services get them), unsampled, at a fraction of the
		// cost per request.
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// TracesURL is the OTLP/HTTP traces URL of a generic endpoint: /v1/traces is appended to
// its path unless it is already there; an endpoint without a scheme is plain http.
func TracesURL(endpoint string) (string, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("telemetry: OTLP endpoint %q is not an http(s) URL", endpoint)
	}
	if !strings.HasSuffix(u.Path, tracesPath) {
		u.Path = strings.TrimSuffix(u.Path, "/") + tracesPath
	}
	return u.String(), nil
}
