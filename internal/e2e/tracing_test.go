package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/slipway-ml/slipway/internal/otlptest"
)

// TestGatewayTracesAndResilienceFlags runs the real server with
// --otlp-endpoint at a loopback collector and --gateway-retry-attempts 2:
// a request whose upstream answers 503 twice is tried twice (not the
// default three times) and answered 503; each try is a client span under
// the gateway's server span, in the caller's trace, and is the parent the
// upstream received. The spans reach the collector when the server stops:
// shutdown flushes them.
func TestGatewayTracesAndResilienceFlags(t *testing.T) {
	t.Parallel()
	col := otlptest.New(t)
	var mu sync.Mutex
	var parents []string
	up := oipUpstream(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		_, _ = io.Copy(io.Discard, r.Body)
		if !strings.HasSuffix(r.URL.Path, "/infer") {
			writeJSONBody(w, map[string]any{"name": "traced", "ready": true})
			return
		}
		mu.Lock()
		parents = append(parents, r.Header.Get("traceparent"))
		n := len(parents)
		mu.Unlock()
		if n <= 2 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"warming up"}`)
			return
		}
		writeJSONBody(w, map[string]any{"model_name": "traced", "outputs": []any{}})
	})
	srv := startServer(t, t.TempDir(), "--otlp-endpoint", col.URL, "--gateway-retry-attempts", "2")
	c := srv.admin()
	c.ok("model", "create", "traced")
	c.ok("version", "push", "traced", "--format", "external", "--set", "url="+up.URL, "--set", "protocol=oip-v2")
	c.ok("deploy", "traced", "1")
	g := srv.gatewayClient(t)

	const trace, caller = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	body := []byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`)
	r := g.do(http.MethodPost, "/v2/models/traced/infer", body, map[string]string{"traceparent": "00-" + trace + "-" + caller + "-01", "X-Request-ID": "e2e-trace-1"})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("first request: %s; want the upstream's 503 after two tries", r)
	}
	mu.Lock()
	tries := len(parents)
	mu.Unlock()
	if tries != 2 {
		t.Fatalf("upstream tried %d times, want 2 (--gateway-retry-attempts 2)", tries)
	}
	if r := g.do(http.MethodPost, "/v2/models/traced/infer", body, nil); r.status != http.StatusOK {
		t.Fatalf("second request: %s", r)
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("server exited %d:\n%s", code, srv.log.tail(logTail))
	}

	var server *otlptest.Span
	clients := map[string]otlptest.Span{}
	for _, s := range col.Spans() {
		if s.TraceID != trace {
			continue
		}
		if s.Service != "slipway" {
			t.Errorf("span %q of service %q, want slipway", s.Name, s.Service)
		}
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = &s
		case tracepb.Span_SPAN_KIND_CLIENT:
			clients[s.SpanID] = s
		}
	}
	if server == nil {
		t.Fatalf("no server span in the caller's trace among %d spans", len(col.Spans()))
	}
	if server.ParentSpanID != caller || server.Name != "POST /v2/models/{model}/infer" || !server.Error ||
		server.Attrs["slipway.model"] != "traced" || server.Attrs["slipway.version"] != int64(1) ||
		server.Attrs["http.response.status_code"] != int64(503) || server.Attrs["slipway.attempts"] != int64(2) ||
		server.Attrs["slipway.request_id"] != "e2e-trace-1" {
		t.Errorf("server span %+v", *server)
	}
	if len(clients) != 2 {
		t.Fatalf("%d client spans in the trace, want 2", len(clients))
	}
	mu.Lock()
	defer mu.Unlock()
	for i, tp := range parents[:2] {
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != trace {
			t.Errorf("try %d: upstream got traceparent %q, not in the caller's trace", i+1, tp)
			continue
		}
		s, ok := clients[parts[2]]
		if !ok || s.ParentSpanID != server.SpanID || s.Attrs["slipway.attempt"] != int64(i+1) {
			t.Errorf("try %d: the upstream's parent %s is not attempt %d's client span under the server span (%+v)", i+1, parts[2], i+1, s)
		}
	}
}

// Settings that make no sense stop the server before it starts, naming
// the flag.
func TestServerRefusesBadGatewaySettings(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--otlp-endpoint", "localhost:4318"}, "--otlp-endpoint"},
		{[]string{"--otlp-endpoint", "http://user:pw@127.0.0.1:4318"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{[]string{"--gateway-retry-budget", "2"}, "--gateway-retry-budget 2"},
		{[]string{"--gateway-breaker-cooldown", "-1s"}, "--gateway-breaker-cooldown -1s"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		ctx, cancel := context.WithTimeout(t.Context(), commandDeadline)
		cmd := exec.CommandContext(ctx, slipwayBin, append([]string{"server", "--addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0", "--data-dir", dir}, c.args...)...)
		cmd.Env = baseEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		if err == nil || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("server %v: %v, stderr %q; want a refusal naming %q", c.args, err, stderr.String(), c.want)
		}
		if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
			t.Errorf("server %v created its data dir before refusing", c.args)
		}
	}
}
