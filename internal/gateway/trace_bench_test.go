package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
)

// BenchmarkServeHTTPInProcessTraced is BenchmarkServeHTTPInProcess with
// tracing on: a server and a client span per infer, batched and exported
// over OTLP/HTTP to a loopback collector that discards them, as `slipway
// server --otlp-endpoint` does. The difference between the two is what
// tracing costs, export included (allocations count every goroutine's).
func BenchmarkServeHTTPInProcessTraced(b *testing.B) {
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(col.Close)
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(col.URL+"/v1/traces"))
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	src := &routeSource{}
	src.t.Store(deployment.NewTable(route("fraud", "production", inProcess(1, 90, constantModel), inProcess(2, 10, constantModel))))
	g := New(Config{Routes: src, Metrics: metrics.New(nil, nil), Log: slog.New(slog.DiscardHandler), TracerProvider: tp})
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v2/models/fraud/infer", strings.NewReader(inferBody))
		r.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
