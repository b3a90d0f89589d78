package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// BenchmarkServeHTTPRemote is the gateway's cost per infer to a remote
// version on loopback, without a client connection: routing, the HTTP/1.1
// path over a pooled connection, the answer's rewrite, metrics and the
// log line. The upstream's own work runs on the same cores.
func BenchmarkServeHTTPRemote(b *testing.B) {
	for _, api := range []string{"oip", "openai"} {
		b.Run(api, func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				if api == "oip" {
					_, _ = io.WriteString(w, oipAnswer)
					return
				}
				_, _ = io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello."}}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`)
			}))
			defer up.Close()
			proto, model, path, body := runtime.ProtocolOIP, "fraud", "/v2/models/fraud/infer", inferBody
			if api == "openai" {
				proto, model, path, body = runtime.ProtocolOpenAI, "chat", "/v1/chat/completions", openAIChat
			}
			u, err := url.Parse(up.URL)
			if err != nil {
				b.Fatal(err)
			}
			rv := deployment.RouteVersion{Version: 1, Weight: 100, Endpoint: runtime.Endpoint{Protocol: proto, URL: u, Transport: &http.Transport{}}}
			src := &routeSource{}
			src.t.Store(deployment.NewTable(route(model, "production", rv)))
			g := New(Config{Routes: src, Metrics: metrics.New(nil, nil), Log: slog.New(slog.DiscardHandler)})
			defer g.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("POST", path, strings.NewReader(body))
				w := httptest.NewRecorder()
				g.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
	}
}
