package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// routeSource publishes tables as the deployment service does.
type routeSource struct {
	t atomic.Pointer[deployment.Table]
}

func (s *routeSource) Routes() *deployment.Table { return s.t.Load() }

type harness struct {
	t      *testing.T
	gw     *Gateway
	srv    *httptest.Server
	rec    *metrics.Recorder
	reg    *prometheus.Registry
	routes *routeSource
	client *http.Client

	// served gets a value each time the gateway recorded a request's
	// metrics: when ServeHTTP returns, or once an answer the server held
	// went out (sendComplete); sent counts requests the test made.
	served        chan struct{}
	sent, settled int
}

// newHarness serves a gateway on loopback with the given routes; cfg may
// adjust its configuration.
func newHarness(t *testing.T, cfg func(*Config), routes ...*deployment.Route) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), routes: &routeSource{}}
	h.rec = metrics.New(h.reg, clock.NewFake(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)))
	if len(routes) > 0 {
		h.routes.t.Store(deployment.NewTable(routes...))
	}
	c := Config{
		Routes:  h.routes,
		Metrics: h.rec,
		Log:     slog.New(slog.DiscardHandler),
		Rand:    seededRand(1),
	}
	if cfg != nil {
		cfg(&c)
	}
	h.gw = New(c)
	h.served = make(chan struct{}, 100_000)
	h.srv = serveOwn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		later := false
		defer func() {
			if !later {
				h.served <- struct{}{}
			}
		}()
		h.gw.ServeHTTP(w, r)
		if sw, ok := w.(*srvWriter); ok && sw.c.then != nil {
			sw.c.then, later = signalAfter{sw.c.then, h.served}, true
		}
	}))
	// A safety net so a broken gateway fails the test instead of hanging
	// it; no test asserts on time.
	h.client = &http.Client{Timeout: 20 * time.Second}
	return h
}

// seededRand is a deterministic, concurrency-safe Rand.
func seededRand(seed uint64) func(int) int {
	r := mrand.New(mrand.NewPCG(seed, seed+1))
	var mu sync.Mutex
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return r.IntN(n)
	}
}

// do sends a request and returns the answer with its body read.
func (h *harness) do(method, path string, body string, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	h.sent++
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

// settle waits until the gateway has finished every request sent so far
// (a streamed answer reaches the client before its handler returns and
// records metrics).
func (h *harness) settle() {
	h.t.Helper()
	for ; h.settled < h.sent; h.settled++ {
		select {
		case <-h.served:
		case <-time.After(20 * time.Second):
			h.t.Fatalf("gateway finished %d of %d requests", h.settled, h.sent)
		}
	}
}

// oipError decodes an Open Inference Protocol error body, failing unless
// it is exactly {"error": "..."}.
func oipError(t *testing.T, b []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("error body %q is not JSON: %v", b, err)
	}
	msg, ok := m["error"].(string)
	if !ok || len(m) != 1 {
		t.Fatalf("error body %s is not {\"error\": \"...\"}", b)
	}
	return msg
}

// seen is what a fake model server saw of one request.
type seen struct {
	Method, Path, Body string
	Header             http.Header
}

// fakeModel is an Open Inference Protocol model server: infer answers the
// sum of the first input's data; metadata and ready answer with its own
// model name. It records every request.
type fakeModel struct {
	name string // the name it answers with; "" echoes the path's name
	mu   sync.Mutex
	reqs []seen
}

func (f *fakeModel) last() seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return seen{}
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{r.Method, r.URL.Path, string(b), r.Header.Clone()})
	f.mu.Unlock()
	seg := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/models/"), "/")
	name := f.name
	if name == "" {
		name = seg[0]
	}
	switch last := seg[len(seg)-1]; {
	case last == "infer":
		req, err := oip.DecodeRequest(bytes.NewReader(b), 1<<20)
		if err != nil {
			oip.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		xs, err := req.Inputs[0].Float64s(nil)
		if err != nil {
			oip.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		sum := 0.0
		for _, v := range xs {
			sum += v
		}
		oip.WriteJSON(w, oip.InferResponse{ModelName: name, ModelVersion: "upstream-7", ID: req.ID,
			Outputs: []oip.Output{{Name: "sum", Shape: []int64{1}, Datatype: "FP64", Data: []float64{sum}}}})
	case last == "ready":
		oip.WriteJSON(w, map[string]any{"name": name, "ready": true})
	default:
		oip.WriteJSON(w, oip.ModelMetadata{Name: name, Versions: []string{"upstream-7"}, Platform: "fake",
			Inputs:  []oip.TensorMetadata{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 3}}},
			Outputs: []oip.TensorMetadata{{Name: "sum", Datatype: "FP64", Shape: []int64{-1}}}})
	}
}

const inferBody = `{"id":"r1","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3.5]}]}`

// inProcess is a served version answered by an in-process handler.
func inProcess(v, weight int, h http.Handler) deployment.RouteVersion {
	return deployment.RouteVersion{Version: v, Weight: weight, Endpoint: runtime.Endpoint{Protocol: runtime.ProtocolOIP, Handler: h}}
}

// remote is a served version reached over HTTP at base.
func remote(t *testing.T, v, weight int, base string, proto runtime.Protocol) deployment.RouteVersion {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return deployment.RouteVersion{Version: v, Weight: weight, Endpoint: runtime.Endpoint{Protocol: proto, URL: u, Transport: tr}}
}

func route(model, env string, versions ...deployment.RouteVersion) *deployment.Route {
	return &deployment.Route{Model: model, Environment: env, Revision: 1, Versions: versions}
}

// gather flattens a registry into "name{label="value",…}" → value.
func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			ls := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[mf.GetName()+ls] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()+ls] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"+ls] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// serveOwn serves h on loopback with the gateway's own HTTP/1.1 server
// (server.go), the way slipway server serves the gateway; h.URL is the
// server's address. Setting SLIPWAY_TEST_NETHTTP=1 serves it with
// net/http's server instead, to tell a server bug from a handler bug.
func serveOwn(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	if os.Getenv("SLIPWAY_TEST_NETHTTP") == "1" {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s
	}
	s := httptest.NewUnstartedServer(h)
	s.URL = "http://" + s.Listener.Addr().String()
	srv := NewServer(h, ServerConfig{Log: slog.New(slog.DiscardHandler)})
	go func() { _ = srv.Serve(s.Listener) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// signalAfter runs a held answer's bookkeeping, then signals.
type signalAfter struct {
	next afterAnswer
	done chan<- struct{}
}

func (s signalAfter) afterAnswer() {
	s.next.afterAnswer()
	s.done <- struct{}{}
}
