package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/otlptest"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// tracedHarness is a gateway exporting its spans over OTLP/HTTP to a real
// collector on loopback, through the SDK's batch span processor.
type tracedHarness struct {
	*harness
	tp  *sdktrace.TracerProvider
	col *otlptest.Collector
}

func newTracedHarness(t *testing.T, cfg func(*Config), routes ...*deployment.Route) *tracedHarness {
	t.Helper()
	col := otlptest.New(t)
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(col.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	// The sampler is explicit so that OTEL_TRACES_SAMPLER in the
	// developer's environment cannot change what is asserted.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := newHarness(t, func(c *Config) {
		c.TracerProvider = tp
		if cfg != nil {
			cfg(c)
		}
	}, routes...)
	return &tracedHarness{harness: h, tp: tp, col: col}
}

// spans waits until the gateway finished every request sent, exports
// what the batch processor holds and returns what the collector got.
func (h *tracedHarness) spans() []otlptest.Span {
	h.t.Helper()
	h.settle()
	if err := h.tp.ForceFlush(context.Background()); err != nil {
		h.t.Fatalf("flushing spans: %v", err)
	}
	return h.col.Spans()
}

// splitSpans returns the one server span and the client spans in the
// order they started (attempt numbers are per version, so by span order
// of the upstream calls is checked against what upstreams received).
func splitSpans(t *testing.T, spans []otlptest.Span) (server otlptest.Span, clients []otlptest.Span) {
	t.Helper()
	n := 0
	for _, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
			n++
		case tracepb.Span_SPAN_KIND_CLIENT:
			clients = append(clients, s)
		default:
			t.Errorf("span %q of kind %v", s.Name, s.Kind)
		}
	}
	if n != 1 {
		t.Fatalf("%d server spans, want 1: %+v", n, spans)
	}
	return server, clients
}

// tracedUpstream is an Open Inference Protocol server that records the
// traceparent of every request and answers each with status(n) for the
// n-th request (fakeModel's answer for 200).
type tracedUpstream struct {
	mu     sync.Mutex
	parent []string
	status func(n int) int
	url    string
}

func newTracedUpstream(t *testing.T, status func(n int) int) *tracedUpstream {
	u := &tracedUpstream{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.parent = append(u.parent, r.Header.Get(HeaderTraceparent))
		n := len(u.parent)
		u.mu.Unlock()
		if code := u.status(n); code != http.StatusOK {
			_, _ = io.Copy(io.Discard, r.Body)
			oip.WriteError(w, code, "failing on purpose")
			return
		}
		(&fakeModel{}).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

func (u *tracedUpstream) traceparents() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.parent...)
}

func always(code int) func(int) int { return func(int) int { return code } }

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// A request carrying the caller's traceparent gets a server span in the
// caller's trace, under the caller's span, and its upstream call a client
// span under the server span whose id is the parent-id the model server
// receives.
func TestTraceContinuesTheCallersTrace(t *testing.T) {
	up := newTracedUpstream(t, always(http.StatusOK))
	h := newTracedHarness(t, nil, route("fraud", "production", remote(t, 1, 100, up.url, runtime.ProtocolOIP)))
	resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody,
		"traceparent", "00-"+callerTrace+"-"+callerSpan+"-01", "tracestate", "vendor=x", "X-Request-ID", "caller-7")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	server, clients := splitSpans(t, h.spans())
	if server.TraceID != callerTrace || server.ParentSpanID != callerSpan || server.Name != "POST /v2/models/{model}/infer" || server.Error {
		t.Errorf("server span %+v; want %q in trace %s under %s", server, "POST /v2/models/{model}/infer", callerTrace, callerSpan)
	}
	want := map[string]any{
		"slipway.model": "fraud", "slipway.version": int64(1), "slipway.environment": "production",
		"http.response.status_code": int64(200), "slipway.attempts": int64(1), "slipway.request_id": "caller-7",
		"http.request.method": "POST", "url.path": "/v2/models/fraud/infer",
	}
	for k, v := range want {
		if server.Attrs[k] != v {
			t.Errorf("server span %s = %v, want %v", k, server.Attrs[k], v)
		}
	}
	if _, ok := server.Attrs["slipway.fallback_from"]; ok {
		t.Errorf("server span has fallback_from without a fallback: %v", server.Attrs)
	}
	if len(clients) != 1 {
		t.Fatalf("%d client spans, want 1", len(clients))
	}
	c := clients[0]
	if c.TraceID != callerTrace || c.ParentSpanID != server.SpanID || c.Name != "POST /v2/models/{model}/infer" || c.Error {
		t.Errorf("client span %+v; want it under the server span %s", c, server.SpanID)
	}
	if c.Attrs["slipway.version"] != int64(1) || c.Attrs["slipway.attempt"] != int64(1) ||
		c.Attrs["http.response.status_code"] != int64(200) || c.Attrs["server.address"] != "127.0.0.1" {
		t.Errorf("client span attributes %v", c.Attrs)
	}
	if got, want := up.traceparents(), []string{"00-" + callerTrace + "-" + c.SpanID + "-01"}; !slices.Equal(got, want) {
		t.Errorf("upstream received traceparent %q, want %q (the client span as parent)", got, want)
	}
}

// Every attempt gets its own client span and the upstream sees each as
// its parent: three tries of a canary answering 503, then the stable
// version. The server span names the version that answered and the one
// it fell back from; a request without a traceparent starts a trace.
func TestTraceRetriesAndFallback(t *testing.T) {
	canary, stable := newTracedUpstream(t, always(http.StatusServiceUnavailable)), newTracedUpstream(t, always(http.StatusOK))
	h := newTracedHarness(t, func(c *Config) { c.Sleep = (&sleeps{}).sleep },
		withStable(route("fraud", "production", remote(t, 1, 0, stable.url, runtime.ProtocolOIP), remote(t, 2, 100, canary.url, runtime.ProtocolOIP)), 1))
	resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderFallbackFrom) != "2" {
		t.Fatalf("%d %s (fallback from %q); want 200 from the stable version", resp.StatusCode, b, resp.Header.Get(HeaderFallbackFrom))
	}
	server, clients := splitSpans(t, h.spans())
	if server.ParentSpanID != "" || len(server.TraceID) != 32 {
		t.Errorf("server span of a request without traceparent: trace %q parent %q; want a new root", server.TraceID, server.ParentSpanID)
	}
	if server.Attrs["slipway.version"] != int64(1) || server.Attrs["slipway.fallback_from"] != int64(2) ||
		server.Attrs["http.response.status_code"] != int64(200) || server.Attrs["slipway.request_id"] != resp.Header.Get(HeaderRequestID) {
		t.Errorf("server span attributes %v; want version 1, fallback_from 2, status 200, request id %q", server.Attrs, resp.Header.Get(HeaderRequestID))
	}
	if len(clients) != 4 {
		t.Fatalf("%d client spans, want 4 (3 canary tries, 1 stable)", len(clients))
	}
	byID := map[string]otlptest.Span{}
	for _, c := range clients {
		byID[c.SpanID] = c
		if c.TraceID != server.TraceID || c.ParentSpanID != server.SpanID {
			t.Errorf("client span %s in trace %s under %s; want under the server span %s", c.SpanID, c.TraceID, c.ParentSpanID, server.SpanID)
		}
	}
	check := func(who string, got []string, version int64, status int64, attempts int) {
		t.Helper()
		if len(got) != attempts {
			t.Fatalf("%s upstream got %d requests, want %d", who, len(got), attempts)
		}
		for i, tp := range got {
			sc, ok := parseTraceparent(tp, "")
			if !ok || sc.TraceID().String() != server.TraceID || !sc.IsSampled() {
				t.Errorf("%s upstream request %d: traceparent %q not in the server span's trace", who, i+1, tp)
				continue
			}
			c, ok := byID[sc.SpanID().String()]
			if !ok {
				t.Errorf("%s upstream request %d: parent %s is no client span", who, i+1, sc.SpanID())
				continue
			}
			if c.Attrs["slipway.version"] != version || c.Attrs["slipway.attempt"] != int64(i+1) ||
				c.Attrs["http.response.status_code"] != status || c.Error != (status >= 500) {
				t.Errorf("%s attempt %d: client span %v error=%v", who, i+1, c.Attrs, c.Error)
			}
		}
	}
	check("canary", canary.traceparents(), 2, 503, 3)
	check("stable", stable.traceparents(), 1, 200, 1)
}

// A caller that sampled its trace out gets none recorded, and the
// upstream still receives the caller's trace, unsampled.
func TestTraceHonoursAnUnsampledCaller(t *testing.T) {
	up := newTracedUpstream(t, always(http.StatusOK))
	h := newTracedHarness(t, nil, route("fraud", "production", remote(t, 1, 100, up.url, runtime.ProtocolOIP)))
	if resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody, "traceparent", "00-"+callerTrace+"-"+callerSpan+"-00"); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if spans := h.spans(); len(spans) != 0 {
		t.Errorf("%d spans exported for an unsampled trace: %+v", len(spans), spans)
	}
	got := up.traceparents()
	if len(got) != 1 || !strings.HasPrefix(got[0], "00-"+callerTrace+"-") || !strings.HasSuffix(got[0], "-00") || !validTraceparent(got[0]) {
		t.Errorf("upstream received %q; want the caller's trace, unsampled", got)
	}
}

// An in-process version gets a client span too, and sees it as its
// parent; errors are named: a 5xx answer marks the spans as errors, a
// 4xx does not, and a path that is no endpoint is named by its method.
func TestTraceInProcessAndErrors(t *testing.T) {
	model := &fakeModel{}
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		oip.WriteError(w, http.StatusInternalServerError, "model bug")
	})
	h := newTracedHarness(t, nil, route("fraud", "production", inProcess(1, 100, model)), route("broken", "production", inProcess(4, 100, failing)))
	h.do("POST", "/v2/models/fraud/versions/1/infer", inferBody)
	h.do("POST", "/v2/models/broken/infer", inferBody)
	h.do("GET", "/v2/models/nope", "")
	h.do("DELETE", "/no/such/endpoint", "")
	spans := h.spans()
	if len(spans) != 6 {
		t.Fatalf("%d spans, want 6: %+v", len(spans), spans)
	}
	byTrace := map[string][]otlptest.Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	seen := map[string]bool{}
	for _, trace := range byTrace {
		server, clients := splitSpans(t, trace)
		seen[server.Name] = true
		switch server.Name {
		case "POST /v2/models/{model}/versions/{version}/infer":
			if len(clients) != 1 || clients[0].Attrs["slipway.in_process"] != true || clients[0].ParentSpanID != server.SpanID {
				t.Fatalf("in-process call: client spans %+v", clients)
			}
			if got, want := model.last().Header.Get(HeaderTraceparent), "00-"+server.TraceID+"-"+clients[0].SpanID+"-01"; got != want {
				t.Errorf("in-process handler saw traceparent %q, want %q", got, want)
			}
		case "POST /v2/models/{model}/infer":
			if !server.Error || len(clients) != 1 || !clients[0].Error || clients[0].Attrs["http.response.status_code"] != int64(500) {
				t.Errorf("a 500 from the model: server %+v, clients %+v; want both marked as errors", server, clients)
			}
		case "GET /v2/models/{model}":
			if server.Error || len(clients) != 0 || server.Attrs["http.response.status_code"] != int64(404) {
				t.Errorf("unknown model: server %+v clients %d; want a 404 that is no server error", server, len(clients))
			}
			if _, ok := server.Attrs["slipway.model"]; ok {
				t.Errorf("unknown model: span names a model: %v", server.Attrs)
			}
		case "DELETE":
		default:
			t.Errorf("unexpected server span %q", server.Name)
		}
	}
	if len(seen) != 4 {
		t.Errorf("server spans %v; want one per request", seen)
	}
}

func TestSpanName(t *testing.T) {
	cases := map[string]string{
		"/v2":                               "GET /v2",
		"/v2/health/ready":                  "GET /v2/health/ready",
		"/v2/models/fraud":                  "GET /v2/models/{model}",
		"/v2/models/fraud/ready":            "GET /v2/models/{model}/ready",
		"/v2/models/fraud/infer":            "GET /v2/models/{model}/infer",
		"/v2/models/fraud/versions/3":       "GET /v2/models/{model}/versions/{version}",
		"/v2/models/fraud/versions/3/infer": "GET /v2/models/{model}/versions/{version}/infer",
		"/v2/models/fraud/predict":          "GET",
		"/v2/models/":                       "GET",
		"/v1/chat/completions":              "GET /v1/chat/completions",
		"/v1/models":                        "GET /v1/models",
		"/v1/models/gpt-x":                  "GET /v1/models/{model}",
		"/v1/models/":                       "GET",
		"/../etc/passwd":                    "GET",
	}
	for path, want := range cases {
		if got := spanName("GET", path); got != want {
			t.Errorf("spanName(GET, %q) = %q, want %q", path, got, want)
		}
	}
}

// FuzzParseTraceparent: whatever arrives, a traceparent is accepted only
// when valid, and what is sent on is the same context in version 00.
func FuzzParseTraceparent(f *testing.F) {
	f.Add("00-"+callerTrace+"-"+callerSpan+"-01", "vendor=x")
	f.Add("01-"+callerTrace+"-"+callerSpan+"-00-extra", "")
	f.Add("00-"+strings.Repeat("0", 32)+"-"+callerSpan+"-01", "a=,b")
	f.Add("ff-"+callerTrace+"-"+callerSpan+"-01", "")
	f.Fuzz(func(t *testing.T, tp, state string) {
		sc, ok := parseTraceparent(tp, state)
		if ok != validTraceparent(tp) {
			t.Fatalf("parseTraceparent(%q) ok=%v, validTraceparent %v", tp, ok, !ok)
		}
		if !ok {
			return
		}
		if !sc.IsValid() || !sc.IsRemote() {
			t.Fatalf("%q parsed to an invalid or local context %v", tp, sc)
		}
		if got := formatTraceparent(sc); got != "00"+tp[2:55] {
			t.Fatalf("%q formats back as %q", tp, got)
		}
	})
}

// A request that brings neither an ID nor a trace gets an ID that is the
// start of the trace the gateway begins; one that brings a trace but no
// ID gets a fresh ID of its own.
func TestRequestIDFromTheTraceStarted(t *testing.T) {
	model := &fakeModel{}
	up := httptest.NewServer(model)
	defer up.Close()
	h := newHarness(t, nil, route("fraud", "production", remote(t, 1, 100, up.URL, runtime.ProtocolOIP)))
	resp, _ := h.do("POST", "/v2/models/fraud/infer", inferBody)
	id, tp := resp.Header.Get(HeaderRequestID), model.last().Header.Get("Traceparent")
	if len(id) != 16 || !validTraceparent(tp) || tp[3:19] != id {
		t.Errorf("request ID %q, trace sent %q: want the ID to be the trace ID's first 16 hex digits", id, tp)
	}
	const callerTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, _ = h.do("POST", "/v2/models/fraud/infer", inferBody, "traceparent", callerTrace)
	if id := resp.Header.Get(HeaderRequestID); len(id) != 16 || strings.Contains(callerTrace, id) {
		t.Errorf("request ID %q for a caller's trace: want a fresh one", id)
	}
}
