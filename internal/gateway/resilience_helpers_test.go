package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// failingUpstream is a model server that fails on purpose, counting
// every request that reached it (every dial, for "refuse").
type failingUpstream struct {
	base string
	hits atomic.Int64
	tr   *http.Transport
}

// Ways an upstream fails.
const (
	upRefuse   = "refuse"    // nothing listens: connection refused
	upReset    = "reset"     // reads the request, then closes the connection
	up503      = "503"       // answers 503
	up500      = "500"       // answers 500 (a model error, not retryable)
	upGarbage  = "garbage"   // reads the request, answers something that is not HTTP
	upHang     = "hang"      // never answers
	upSlowOnce = "slow-once" // the first request hangs, later ones answer
	upOK       = "ok"        // answers like fakeModel (OIP) or a chat completion (OpenAI)
)

func newFailingUpstream(t *testing.T, kind string) *failingUpstream {
	t.Helper()
	u := &failingUpstream{}
	dialer := &net.Dialer{}
	u.tr = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if kind == upRefuse {
			u.hits.Add(1)
		}
		return dialer.DialContext(ctx, network, addr)
	}}
	t.Cleanup(u.tr.CloseIdleConnections)
	switch kind {
	case upRefuse:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u.base = "http://" + ln.Addr().String()
		ln.Close()
	case upGarbage:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		u.base = "http://" + ln.Addr().String()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					// Read the whole request, so that it was sent in full.
					req, err := http.ReadRequest(bufio.NewReader(c))
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					u.hits.Add(1)
					_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\r\n"))
				}()
			}
		}()
	default:
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			u.hits.Add(1)
			switch {
			case kind == upReset:
				c, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					c.Close()
				}
			case kind == up503:
				oip.WriteError(w, http.StatusServiceUnavailable, "overloaded")
			case kind == up500:
				oip.WriteError(w, http.StatusInternalServerError, "model bug")
			case kind == upHang, kind == upSlowOnce && n.Add(1) == 1:
				<-r.Context().Done()
			case strings.HasPrefix(r.URL.Path, "/v1/"):
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"}}]}`)
			default:
				(&fakeModel{}).ServeHTTP(w, r)
			}
		}))
		t.Cleanup(srv.Close)
		u.base = srv.URL
	}
	return u
}

// version serves v at weight through this upstream.
func (u *failingUpstream) version(t *testing.T, v, weight int, proto runtime.Protocol) deployment.RouteVersion {
	t.Helper()
	p, err := url.Parse(u.base)
	if err != nil {
		t.Fatal(err)
	}
	return deployment.RouteVersion{Version: v, Weight: weight, Endpoint: runtime.Endpoint{Protocol: proto, URL: p, Transport: u.tr}}
}

// withStable marks the stable version of a route.
func withStable(r *deployment.Route, v int) *deployment.Route {
	r.Stable = v
	return r
}

// sleeps records the gateway's backoff waits instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// doCtx is harness.do with a context deadline: a guard against a gateway
// that hangs, not a timing assertion.
func (h *harness) doCtx(method, path, body string, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	h.sent++
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s did not return: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}
