package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// API spans: with Config.TracerProvider every API request gets a server
// span named by its route pattern ("POST /api/v1/models/{model}/versions"),
// in the caller's trace when its traceparent is valid. Without one, the
// cost is a nil check (observe in middleware.go calls these).

const tracerName = "github.com/slipway-ml/slipway/internal/api"

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName)
}

// startSpan opens the request's server span. The name is the method
// until the mux has matched a pattern (endSpan renames it).
func (s *Server) startSpan(ctx context.Context, r *http.Request, id string) (context.Context, trace.Span) {
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
	path := r.URL.Path
	if len(path) > 200 {
		path = path[:200]
	}
	return s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method), attribute.String("url.path", path),
		attribute.String("slipway.request_id", id)))
}

// endSpan closes the span with the route pattern the mux matched, if
// any, and the status answered.
func endSpan(span trace.Span, r *http.Request, status int) {
	if span.IsRecording() {
		route := r.Pattern
		if _, after, ok := strings.Cut(route, " "); ok {
			route = after
		}
		if route != "" {
			span.SetName(r.Method + " " + route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(status)+" "+http.StatusText(status))
		}
	}
	span.End()
}
