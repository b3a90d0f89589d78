package gateway

import (
	"encoding/hex"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// This file is the gateway's side of distributed tracing. With a
// Config.TracerProvider, every request gets a server span that continues
// the caller's W3C trace context, and every upstream attempt a client span
// under it whose id is the parent-id of the traceparent the upstream
// receives, so the model server's own spans hang under the attempt that
// called it. Without one, each hook costs one nil check and traceparent
// passes through unchanged, as before.
//
//	caller span ── server span "POST /v2/models/{model}/infer"
//	                 ├─ client span, attempt 1 ── model server's spans
//	                 └─ client span, attempt 2 (retry or fallback) ── …
//
// Exporting (OTLP, batching, sampling) is the TracerProvider's business,
// set up in internal/app; nothing here blocks on a collector.

// tracerName names the instrumentation scope of the gateway's spans.
const tracerName = "github.com/slipway-ml/slipway/internal/gateway"

// Attribute keys of the gateway's spans: OpenTelemetry's HTTP semantic
// conventions where one fits, slipway.* for the routing decisions.
const (
	attrMethod       = attribute.Key("http.request.method")
	attrStatus       = attribute.Key("http.response.status_code")
	attrPath         = attribute.Key("url.path")
	attrServerAddr   = attribute.Key("server.address")
	attrServerPort   = attribute.Key("server.port")
	attrErrorType    = attribute.Key("error.type")
	attrModel        = attribute.Key("slipway.model")
	attrVersion      = attribute.Key("slipway.version")
	attrEnvironment  = attribute.Key("slipway.environment")
	attrFallbackFrom = attribute.Key("slipway.fallback_from")
	attrAttempts     = attribute.Key("slipway.attempts")
	attrAttempt      = attribute.Key("slipway.attempt")
	attrRequestID    = attribute.Key("slipway.request_id")
	attrInProcess    = attribute.Key("slipway.in_process")
)

// newTracer returns the gateway's tracer, nil (tracing off) without a
// provider.
func newTracer(tp trace.TracerProvider, version string) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName, trace.WithInstrumentationVersion(version))
}

// startSpan opens the request's server span, continuing the caller's
// trace when its traceparent is valid (a new trace otherwise), and makes
// the span the parent named in x.traceparent. Called only while tracing.
func (x *exchange) startSpan() {
	ctx := x.r.Context()
	if sc, ok := parseTraceparent(x.r.Header.Get(HeaderTraceparent), x.r.Header.Get("tracestate")); ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	_, x.span = x.g.tracer.Start(ctx, spanName(x.r.Method, x.r.URL.Path),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(x.start),
		trace.WithAttributes(attrMethod.String(x.r.Method), attrPath.String(truncate(x.r.URL.Path, 200)), attrRequestID.String(x.id)))
	x.traceparent = formatTraceparent(x.span.SpanContext())
}

// endSpan closes the server span with what the access log says of the
// request: the status and, once one was chosen, the version that
// answered.
func (x *exchange) endSpan(status, version int) {
	s := x.span
	if s.IsRecording() {
		s.SetAttributes(attrStatus.Int(status), attrAttempts.Int(x.leg.tries))
		if x.model != "" {
			s.SetAttributes(attrModel.String(x.model), attrEnvironment.String(x.env), attrVersion.Int(version))
		}
		if x.fallbackFrom != 0 {
			s.SetAttributes(attrFallbackFrom.Int(x.fallbackFrom))
		}
		if status >= 500 { // a 4xx is the caller's error, not the server's
			s.SetStatus(codes.Error, strconv.Itoa(status)+" "+http.StatusText(status))
		}
	}
	s.End()
}

// startAttempt opens the client span of the attempt about to be made on
// the leg's version and names it as the parent in the traceparent sent
// upstream (outboundHeaders sends x.traceparent). Called only while
// tracing; endAttempt closes the span.
func (x *exchange) startAttempt() trace.Span {
	l := &x.leg
	ctx := trace.ContextWithSpan(x.r.Context(), x.span)
	_, s := x.g.tracer.Start(ctx, spanName(x.r.Method, x.r.URL.Path), trace.WithSpanKind(trace.SpanKindClient))
	if s.IsRecording() {
		s.SetAttributes(attrMethod.String(x.r.Method), attrModel.String(x.model), attrEnvironment.String(x.env),
			attrVersion.Int(l.rv.Version), attrAttempt.Int(l.tries))
		if ep := l.rv.Endpoint; ep.Handler != nil {
			s.SetAttributes(attrInProcess.Bool(true))
		} else if ep.URL != nil { // the host only: a base URL may hold credentials
			s.SetAttributes(attrServerAddr.String(ep.URL.Hostname()))
			if p, err := strconv.Atoi(ep.URL.Port()); err == nil {
				s.SetAttributes(attrServerPort.Int(p))
			}
		}
	}
	x.traceparent = formatTraceparent(s.SpanContext())
	return s
}

// endAttempt closes an attempt's client span with its outcome: the
// upstream's status when its head arrived, else how it failed.
func (x *exchange) endAttempt(s trace.Span, w http.ResponseWriter, f *failure) {
	if s.IsRecording() {
		status := x.leg.status
		if status == 0 && f.kind == failNone {
			status = writtenStatus(w) // an in-process handler
		}
		if status != 0 {
			s.SetAttributes(attrStatus.Int(status))
		}
		switch {
		case f.kind != failNone && f.kind != failStatus:
			s.SetAttributes(attrErrorType.String(failName(*f)))
			s.SetStatus(codes.Error, failName(*f))
		case status >= 500:
			s.SetAttributes(attrErrorType.String(strconv.Itoa(status)))
			s.SetStatus(codes.Error, strconv.Itoa(status)+" "+http.StatusText(status))
		}
	}
	s.End()
}

// failName names a failed attempt for its span's error.type.
func failName(f failure) string {
	switch f.kind {
	case failUnsent:
		return "connection_failed"
	case failNoAnswer:
		return "no_answer"
	case failTimeout:
		return "timeout"
	case failStatus:
		return strconv.Itoa(f.status)
	case failFatal:
		return "refused"
	case failCanceled:
		return "canceled"
	case failNone:
	}
	return ""
}

// spanName is a span's low-cardinality name: the method and the route
// template of the path ("POST /v2/models/{model}/infer"), or the method
// alone for a path that is no endpoint.
func spanName(method, path string) string {
	switch path {
	case "/v2", "/v2/", "/v2/health/live", "/v2/health/ready",
		"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings":
		return method + " " + path
	}
	if len(path) > len("/v1/models/") && path[:len("/v1/models/")] == "/v1/models/" {
		return method + " /v1/models/{model}"
	}
	if len(path) > len("/v2/models/") && path[:len("/v2/models/")] == "/v2/models/" {
		if c, ok := parseOIPPath(path[len("/v2/models/"):]); ok {
			if c.pin != "" {
				return method + " /v2/models/{model}/versions/{version}" + c.suffix
			}
			return method + " /v2/models/{model}" + c.suffix
		}
	}
	return method
}

// parseTraceparent reads a valid W3C traceparent (and its tracestate,
// dropped when invalid) as the remote parent of the server span.
func parseTraceparent(tp, state string) (trace.SpanContext, bool) {
	if !validTraceparent(tp) {
		return trace.SpanContext{}, false
	}
	tid, err1 := trace.TraceIDFromHex(tp[3:35])
	sid, err2 := trace.SpanIDFromHex(tp[36:52])
	flags, err3 := hex.DecodeString(tp[53:55])
	if err1 != nil || err2 != nil || err3 != nil {
		return trace.SpanContext{}, false
	}
	ts, err := trace.ParseTraceState(state)
	if err != nil {
		ts = trace.TraceState{}
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]), TraceState: ts, Remote: true,
	}), true
}

// formatTraceparent writes sc as a version-00 traceparent.
func formatTraceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}
