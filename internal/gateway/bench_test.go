package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
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
