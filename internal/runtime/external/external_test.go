package external

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

// newRuntime parses opts the way a pushed version's runtime config is
// parsed and builds a runtime over it.
func newRuntime(t *testing.T, policy *egress.Policy, opts map[string]string) *Runtime {
	t.Helper()
	o, err := runtime.ParseExternal(opts)
	if err != nil {
		t.Fatalf("ParseExternal(%v): %v", opts, err)
	}
	r := New(Config{ModelName: "fraud", Options: o, Policy: policy})
	t.Cleanup(func() { r.Stop(context.Background()) })
	return r
}

// oipServer is a small Open Inference Protocol v2 server whose readiness
// the test flips.
func oipServer(t *testing.T, prefix string) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	var down atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, `{"error": "loading"}`, http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK) // Triton's answer: an empty 200
	})
	mux.HandleFunc("POST "+prefix+"/v2/models/fraud/infer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"model_name":"fraud","outputs":[{"name":"p","shape":[1],"datatype":"FP32","data":[0.25]}]}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &down
}

func TestStartHealthEndpoint(t *testing.T) {
	srv, down := oipServer(t, "")
	r := newRuntime(t, nil, map[string]string{"url": srv.URL, "protocol": "oip-v2"})
	ctx := context.Background()
	if err := r.Health(ctx); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Health before Start = %v, want ErrUnavailable", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := r.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}

	ep := r.Endpoint()
	if ep.Protocol != runtime.ProtocolOIP || ep.URL.String() != srv.URL || ep.Transport == nil || ep.Handler != nil {
		t.Fatalf("Endpoint = %+v", ep)
	}
	req, _ := http.NewRequest(http.MethodPost, ep.URL.JoinPath("/v2/models/fraud/infer").String(),
		strings.NewReader(`{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}]}`))
	resp, err := ep.Transport.RoundTrip(req)
	if err != nil {
		t.Fatalf("infer through the endpoint: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"data":[0.25]`) {
		t.Fatalf("infer answered %d %s", resp.StatusCode, body)
	}

	down.Store(true)
	err = r.Health(ctx)
	if !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "loading") {
		t.Fatalf("Health of a server answering 503 = %v, want ErrUnavailable naming the status and body", err)
	}
	down.Store(false)
	if err := r.Health(ctx); err != nil {
		t.Fatalf("Health after recovery: %v", err)
	}

	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := r.Health(ctx); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Health after Stop = %v, want ErrUnavailable", err)
	}
}

func TestBaseURLWithPath(t *testing.T) {
	srv, _ := oipServer(t, "/serving/fraud")
	r := newRuntime(t, nil, map[string]string{"url": srv.URL + "/serving/fraud/", "protocol": "oip-v2"})
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start with a path prefix: %v", err)
	}
}

func TestOpenAIModelList(t *testing.T) {
	var body atomic.Value
	body.Store(`{"object":"list","data":[{"id":"llama","object":"model"}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body.Load().(string))
	}))
	defer srv.Close()
	r := newRuntime(t, nil, map[string]string{"url": srv.URL, "protocol": "openai"})
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if ep := r.Endpoint(); ep.Protocol != runtime.ProtocolOpenAI {
		t.Fatalf("Endpoint protocol %q", ep.Protocol)
	}
	body.Store(`{"object":"list"}`)
	if err := r.Health(ctx); err == nil || !strings.Contains(err.Error(), "not with an OpenAI model list") {
		t.Fatalf("Health of a list without data = %v", err)
	}
}

// TestStartFailures covers servers that answer, but not as a healthy model
// server: each must fail Start with an error naming what was wrong.
func TestStartFailures(t *testing.T) {
	tests := []struct {
		name     string
		protocol string
		handler  http.HandlerFunc
		want     []string
	}{
		{"500", "oip-v2", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "model failed to load: CUDA out of memory", http.StatusInternalServerError)
		}, []string{"500 Internal Server Error", "CUDA out of memory", "/v2/health/ready"}},
		{"404", "oip-v2", http.NotFound, []string{"404"}},
		{"HTML on 200", "oip-v2", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html><body>Welcome to nginx!</body></html>")
		}, []string{"not JSON", "Welcome to nginx"}},
		{"not ready", "oip-v2", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"ready": false}`)
		}, []string{"not ready"}},
		{"openai garbage", "openai", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "\x00\x01garbage")
		}, []string{"not with an OpenAI model list"}},
		{"not HTTP at all", "oip-v2", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			buf.WriteString("SSH-2.0-OpenSSH_9.6\r\n\x00\xff garbage\r\n\r\n")
			buf.Flush()
			conn.Close()
		}, []string{"malformed HTTP"}},
		{"redirect", "oip-v2", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		}, []string{"302", "does not follow redirects", "169.254.169.254"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			r := newRuntime(t, nil, map[string]string{"url": srv.URL, "protocol": tt.protocol, "timeout": "5s"})
			err := r.Start(context.Background())
			if !errors.Is(err, domain.ErrUnavailable) {
				t.Fatalf("Start = %v, want ErrUnavailable", err)
			}
			for _, w := range append(tt.want, `"fraud"`, srv.URL) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStartTimesOutOnAHangingServer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	r := newRuntime(t, nil, map[string]string{"url": srv.URL, "protocol": "oip-v2", "timeout": "200ms"})
	err := r.Start(context.Background())
	if !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Fatalf("Start against a hanging server = %v, want a timeout naming 200ms", err)
	}
}

func TestStartOnADeadServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := newRuntime(t, nil, map[string]string{"url": "http://" + addr, "protocol": "oip-v2"})
	err = r.Start(context.Background())
	if !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Start against a closed port = %v, want ErrUnavailable naming the refusal", err)
	}
}

// TestEgressPolicy: a literal address outside the allowlist is refused
// before any connection, and a hostname resolving outside it is refused
// when it is dialled.
func TestEgressPolicy(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	noLoopback := &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}

	for _, u := range []string{srv.URL, "http://localhost:" + port} {
		r := newRuntime(t, noLoopback, map[string]string{"url": u, "protocol": "oip-v2"})
		err := r.Start(context.Background())
		if !errors.Is(err, domain.ErrInvalid) || !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "not in the egress allowlist") {
			t.Errorf("Start(%s) under a policy without loopback = %v, want an egress refusal", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the server was reached %d times", hits.Load())
	}

	// The endpoint's transport enforces the same policy for the gateway.
	r := newRuntime(t, noLoopback, map[string]string{"url": "http://localhost:" + port, "protocol": "oip-v2"})
	req, _ := http.NewRequest(http.MethodGet, "http://localhost:"+port+"/v2/health/ready", nil)
	if resp, err := r.Endpoint().Transport.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("the endpoint transport reached a refused address")
	}
}

func TestResponseHeaderTimeoutFromOptions(t *testing.T) {
	r := newRuntime(t, nil, map[string]string{"url": "http://127.0.0.1:1", "protocol": "oip-v2", "timeout": "7s"})
	tr, ok := r.Endpoint().Transport.(*http.Transport)
	if !ok || tr.ResponseHeaderTimeout != 7*time.Second {
		t.Fatalf("endpoint transport %T does not bound the wait for an answer by the timeout option", r.Endpoint().Transport)
	}
}
