package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tracesPath is where OTLP/HTTP receivers take traces.
const tracesPath = "/v1/traces"

// tracingShutdownTimeout bounds the final flush of spans at shutdown, so
// an unreachable collector cannot hold the process.
const tracingShutdownTimeout = 5 * time.Second

// otlpTracesURL checks an --otlp-endpoint value, the base URL of an
// OTLP/HTTP collector as OTEL_EXPORTER_OTLP_ENDPOINT gives it, and returns
// the URL spans are posted to: the base with /v1/traces appended (unless
// it already ends so).
func otlpTracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return "", fmt.Errorf("--otlp-endpoint %q is not a URL: %w", endpoint, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("--otlp-endpoint %q: want an http:// or https:// URL of an OTLP/HTTP collector, such as http://127.0.0.1:4318", endpoint)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("--otlp-endpoint %q has no host", endpoint)
	case u.User != nil:
		return "", fmt.Errorf("--otlp-endpoint %q holds credentials; pass them in OTEL_EXPORTER_OTLP_HEADERS instead", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("--otlp-endpoint %q: a collector URL takes no query or fragment", endpoint)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("--otlp-endpoint %q: port %q is not from 1 to 65535", endpoint, p)
		}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(u.Path, tracesPath) {
		u.Path += tracesPath
	}
	u.RawPath = ""
	return u.String(), nil
}

// startTracing builds the tracer provider that exports spans to
// tracesURL: OTLP/HTTP protobuf through a batch span processor, whose
// bounded queue drops spans rather than wait when the collector is slow
// or down, so inference never waits for it. The exporter's other
// settings (headers, timeout, compression, TLS) and the sampler come from
// the standard OTEL_* environment variables; the resource is
// service.name "slipway" unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES say otherwise. Export errors go to log.
//
// The caller shuts the provider down after the servers stopped, which
// flushes what is queued.
func startTracing(ctx context.Context, tracesURL, version string, log *slog.Logger) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL))
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "slipway"), attribute.String("service.version", version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTLP trace resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	// The SDK reports export failures through its one global handler;
	// without this they would go to the standard logger as plain text.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("exporting traces failed; spans are dropped while the collector is unreachable", "err", err.Error())
	}))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// stopTracing flushes the spans still queued and stops the exporter,
// waiting at most tracingShutdownTimeout.
func stopTracing(tp *sdktrace.TracerProvider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		log.Warn("flushing traces at shutdown failed; the last spans are lost", "err", err.Error())
	}
}
