// Package otlptest is a real OTLP/HTTP trace receiver on loopback for
// tests: it decodes the protobuf ExportTraceServiceRequest bodies that
// OpenTelemetry exporters post to /v1/traces and keeps their spans, so a
// test can assert what was exported. It can also hold exports unanswered,
// to play a collector that is unreachable in the way that hurts most.
//
// Only tests import it; it must not import anything of slipway's.
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one exported span, its ids in lower-case hex ("" for no parent).
type Span struct {
	TraceID, SpanID, ParentSpanID string
	Name                          string
	Kind                          tracepb.Span_SpanKind
	// Attrs holds string, int64, float64 and bool values by key.
	Attrs map[string]any
	// Error is set when the span's status code is Error.
	Error bool
	// Service is the exporting resource's service.name.
	Service string
}

// Collector receives OTLP/HTTP trace exports.
type Collector struct {
	// URL is the collector's base URL (http://127.0.0.1:port): exporters
	// post to URL + "/v1/traces".
	URL string

	mu      sync.Mutex
	spans   []Span
	pending int
	errs    []error
	hold    chan struct{} // while open, exports wait unanswered
	arrived chan struct{} // a value per export request received
}

// New starts a collector that the test's cleanup stops.
func New(t testing.TB) *Collector {
	t.Helper()
	c := &Collector{arrived: make(chan struct{}, 1<<16)}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	c.URL = srv.URL
	t.Cleanup(func() {
		c.Release()
		srv.CloseClientConnections()
		srv.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, err := range c.errs {
			t.Errorf("otlptest collector: %v", err)
		}
	})
	return c
}

// Hold makes exports wait unanswered until Release (or the test's end):
// a collector that accepts connections and never answers.
func (c *Collector) Hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold == nil {
		c.hold = make(chan struct{})
	}
}

// Release answers the held exports and stops holding.
func (c *Collector) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold != nil {
		close(c.hold)
		c.hold = nil
	}
}

// Arrived gets a value for every export request received, before it is
// decoded or held.
func (c *Collector) Arrived() <-chan struct{} { return c.arrived }

// Spans returns the spans received so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// Pending is the number of export requests held unanswered now.
func (c *Collector) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	select {
	case c.arrived <- struct{}{}:
	default:
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		c.fail(fmt.Errorf("%s %s: want POST /v1/traces", r.Method, r.URL.Path))
		http.NotFound(w, r)
		return
	}
	c.mu.Lock()
	hold := c.hold
	if hold != nil {
		c.pending++
	}
	c.mu.Unlock()
	if hold != nil {
		<-hold
		c.mu.Lock()
		c.pending--
		c.mu.Unlock()
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		c.fail(fmt.Errorf("Content-Type %q, want application/x-protobuf", ct))
		http.Error(w, "protobuf only", http.StatusUnsupportedMediaType)
		return
	}
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			c.fail(err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		return // the exporter gave up (the test ended)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		c.fail(fmt.Errorf("decoding ExportTraceServiceRequest: %w", err))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service, _ := attrMap(rs.GetResource().GetAttributes())["service.name"].(string)
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, Span{
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Kind: s.GetKind(),
					Attrs: attrMap(s.GetAttributes()), Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Service: service,
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

func (c *Collector) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = v.IntValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = v.DoubleValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = v.BoolValue
		default:
			m[kv.GetKey()] = fmt.Sprint(kv.GetValue())
		}
	}
	return m
}
