package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
	"github.com/slipway-ml/slipway/internal/runtime/xgboost"
)

// constantModel answers every infer with the same small body, so the
// benchmarks measure the gateway, not the model.
var constantModel = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	oip.WriteJSON(w, oip.InferResponse{ModelName: "fraud", ModelVersion: "1",
		Outputs: []oip.Output{{Name: "p", Shape: []int64{1}, Datatype: "FP64", Data: []float64{0.5}}}})
})

func benchGateway() *Gateway {
	src := &routeSource{}
	src.t.Store(deployment.NewTable(route("fraud", "production", inProcess(1, 90, constantModel), inProcess(2, 10, constantModel))))
	return New(Config{Routes: src, Metrics: metrics.New(nil, nil), Log: slog.New(slog.DiscardHandler)})
}

// BenchmarkServeHTTPInProcess is the gateway's own cost per infer: routing,
// headers, metrics and the log line, without a network.
func BenchmarkServeHTTPInProcess(b *testing.B) {
	g := benchGateway()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v2/models/fraud/infer", strings.NewReader(inferBody))
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkInferLoopback is one infer through a real HTTP listener on
// loopback, keep-alive, as a client sees it.
func BenchmarkInferLoopback(b *testing.B) {
	srv := httptest.NewServer(benchGateway())
	defer srv.Close()
	client := srv.Client()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Post(srv.URL+"/v2/models/fraud/infer", "application/json", strings.NewReader(inferBody))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkInferXGBoostLoopback is one single-row infer of the committed
// breast-cancer v1 model (100 trees) through the gateway on loopback, as a
// client sees it: HTTP, routing, JSON decoding, the Go evaluator, metrics.
// It reports p50 and p99 per request.
func BenchmarkInferXGBoostLoopback(b *testing.B) {
	model := xgboost.NewServer(xgboost.ServerConfig{Model: "bc", Version: 1, Path: "../../examples/breast-cancer/v1.json"})
	if err := model.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	src := &routeSource{}
	src.t.Store(deployment.NewTable(route("bc", "production", inProcess(1, 100, model))))
	srv := httptest.NewServer(New(Config{Routes: src, Metrics: metrics.New(nil, nil), Log: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	client := srv.Client()
	body := `{"inputs":[{"name":"x","datatype":"FP64","shape":[1,30],"data":[17.99,10.38,122.8,1001,0.1184,0.2776,0.3001,0.1471,0.2419,0.07871,1.095,0.9053,8.589,153.4,0.006399,0.04904,0.05373,0.01587,0.03003,0.006193,25.38,17.33,184.6,2019,0.1622,0.6656,0.7119,0.2654,0.4601,0.1189]}]}`
	var ds []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		resp, err := client.Post(srv.URL+"/v2/models/bc/infer", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Nanoseconds())/1000, "p99-µs")
}
