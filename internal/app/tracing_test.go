package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/gateway"
	"github.com/slipway-ml/slipway/internal/otlptest"
	"github.com/slipway-ml/slipway/internal/runtime"
)

func TestOTLPTracesURL(t *testing.T) {
	good := map[string]string{
		"http://127.0.0.1:4318":            "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":           "http://127.0.0.1:4318/v1/traces",
		"https://otel.example.com":         "https://otel.example.com/v1/traces",
		"http://[::1]:4318/otlp":           "http://[::1]:4318/otlp/v1/traces",
		"http://localhost:4318/v1/traces":  "http://localhost:4318/v1/traces",
		"http://localhost:4318/v1/traces/": "http://localhost:4318/v1/traces",
	}
	for in, want := range good {
		if got, err := otlpTracesURL(in); err != nil || got != want {
			t.Errorf("otlpTracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"localhost:4318":                 "http:// or https://",
		"127.0.0.1:4318":                 "not a URL",
		"grpc://127.0.0.1:4317":          "http:// or https://",
		"http://":                        "no host",
		"http://:4318":                   "no host",
		"http://u:secret@127.0.0.1:4318": "OTEL_EXPORTER_OTLP_HEADERS",
		"http://127.0.0.1:4318/?x=1":     "no query",
		"http://127.0.0.1:4318/#top":     "no query",
		"http://127.0.0.1:99999":         "port",
		"http://127.0.0.1:0":             "port",
		"http://127.0.0.1:43 18":         "not a URL",
	}
	for in, want := range bad {
		_, err := otlpTracesURL(in)
		if err == nil || !strings.Contains(err.Error(), "--otlp-endpoint") || !strings.Contains(err.Error(), want) {
			t.Errorf("otlpTracesURL(%q) = %v; want an error naming --otlp-endpoint and saying %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error repeats the password: %v", err)
		}
	}
}

// A bad endpoint stops the server before it touches anything.
func TestRunRefusesBadOTLPEndpoint(t *testing.T) {
	dir := t.TempDir() + "/data"
	err := Run(t.Context(), Config{DataDir: dir, Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", OTLPEndpoint: "localhost:4318",
		Log: slog.New(slog.DiscardHandler)}, func(Addrs) { t.Error("the server started") })
	if err == nil || !strings.Contains(err.Error(), "--otlp-endpoint") {
		t.Fatalf("Run = %v; want an error naming --otlp-endpoint", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Errorf("the data dir was created (%v) before the endpoint was checked", statErr)
	}
}

// staticRoutes serves one fixed routing table.
type staticRoutes struct{ t *deployment.Table }

func (s staticRoutes) Routes() *deployment.Table { return s.t }

// tracedGateway serves a gateway with one in-process model and the
// tracing the server builds, exporting to tracesURL.
func tracedGateway(t *testing.T, tracesURL string) (*httptest.Server, func()) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	tp, err := startTracing(context.Background(), tracesURL, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"model_name":"fraud","outputs":[]}`)
	})
	table := deployment.NewTable(&deployment.Route{Model: "fraud", Environment: "production", Revision: 1,
		Versions: []deployment.RouteVersion{{Version: 1, Weight: 100, Endpoint: runtime.Endpoint{Protocol: runtime.ProtocolOIP, Handler: model}}}})
	gw := gateway.New(gateway.Config{Routes: staticRoutes{table}, Log: log, TracerProvider: tp})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopTracing(tp, log)
		}
	}
	t.Cleanup(stop)
	return srv, stop
}

// infer sends n inference requests from four clients and returns how
// many did not answer 200. The client timeout is a safety net against a
// gateway stuck behind its exporter, not a timing assertion.
func infer(t *testing.T, base string, n int) int {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				resp, err := hc.Post(base+"/v2/models/fraud/infer", "application/json", strings.NewReader(`{"inputs":[]}`))
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				} else {
					t.Errorf("request %d: %v", i, err)
				}
				if !ok {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	hc.CloseIdleConnections()
	return failed
}

// A collector that accepts connections and never answers holds the
// exporter, not inference: with more spans than the exporter's queue
// holds (two per request) every request is answered while an export
// waits unanswered, and spans past the queue are dropped, not waited
// for. Once the collector answers, shutdown flushes the rest.
func TestHangingCollectorNeverHoldsInference(t *testing.T) {
	col := otlptest.New(t)
	col.Hold()
	srv, stop := tracedGateway(t, col.URL+"/v1/traces")
	const n = 2000 // 4,000 spans; the batch processor queues 2,048
	if failed := infer(t, srv.URL, n); failed != 0 {
		t.Fatalf("%d of %d requests failed while the collector hung", failed, n)
	}
	<-col.Arrived() // the first full batch went out and is held
	if col.Pending() < 1 {
		t.Fatalf("no export is held; the test proves nothing")
	}
	col.Release()
	stop()
	spans := col.Spans()
	if len(spans) == 0 || len(spans) >= 2*n {
		t.Errorf("collector got %d spans of %d; want some, and fewer than all (the queue overflowed)", len(spans), 2*n)
	}
	for _, s := range spans {
		if s.Service != "slipway" {
			t.Fatalf("span %q of service %q, want slipway", s.Name, s.Service)
		}
	}
}

// A collector that refuses connections costs inference nothing, and
// shutdown gives up on it in bounded time.
func TestRefusingCollectorNeverFailsInference(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	srv, stop := tracedGateway(t, "http://"+addr+"/v1/traces")
	if failed := infer(t, srv.URL, 600); failed != 0 {
		t.Fatalf("%d of 600 requests failed with the collector down", failed)
	}
	stop() // returns: the flush is bounded by tracingShutdownTimeout
}

// The server with --otlp-endpoint traces API and gateway requests in the
// caller's trace, and stopping it flushes the spans to the collector.
func TestRunExportsAPIAndGatewaySpans(t *testing.T) {
	col := otlptest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrs := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", Version: "v-test",
			OTLPEndpoint: col.URL, Log: slog.New(slog.DiscardHandler)}, func(a Addrs) { addrs <- a })
	}()
	var a Addrs
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	const trace = "5b8efff798038103d269b633813fc60c"
	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(url, parent string) int {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("traceparent", "00-"+trace+"-"+parent+"-01")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("http://"+a.API+"/api/v1/models", "eee19b7ec3c1b174"); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/models without a token: %d, want 401", code)
	}
	if code := get("http://"+a.Gateway+"/v2/models/none", "eee19b7ec3c1b175"); code != http.StatusNotFound {
		t.Errorf("GET /v2/models/none: %d, want 404", code)
	}
	hc.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := map[string]string{"GET /api/v1/models": "eee19b7ec3c1b174", "GET /v2/models/{model}": "eee19b7ec3c1b175"}
	for _, s := range col.Spans() {
		if s.TraceID != trace {
			continue
		}
		if parent, ok := want[s.Name]; ok && s.ParentSpanID == parent && s.Service == "slipway" &&
			s.Attrs["http.response.status_code"] != nil && !s.Error {
			delete(want, s.Name)
		}
	}
	if len(want) != 0 {
		t.Errorf("spans not exported by shutdown: %v; got %+v", want, col.Spans())
	}
}
