package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// An upstream that ends an idle keep-alive connection by closing only its
// sending side (a lingering close: it still reads, and drops, what comes)
// leaves the gateway's pooled connection with its end of stream queued
// before the next request, and nothing it does later makes the socket
// readable again. The request must not wait for an answer on it (a held
// request's wait cannot see a readiness from before it began): the
// connection is looked at as the request goes out, and the request goes
// on a new one — idempotent or not, since nothing was sent.
func TestLingeringCloseWhileIdleLosesNoRequest(t *testing.T) {
	for _, c := range poolPaths {
		t.Run(c.name, func(t *testing.T) {
			halfClosed := make(chan struct{}, 1)
			var first atomic.Bool
			first.Store(true)
			var requests atomic.Int64
			up := newRawUpstream(t, func(nc net.Conn, br *bufio.Reader) {
				linger := first.Swap(false)
				for readRequest(br) != nil {
					requests.Add(1)
					fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(modelAnswer), modelAnswer)
					if linger {
						_ = nc.(*net.TCPConn).CloseWrite()
						halfClosed <- struct{}{}
						_, _ = io.Copy(io.Discard, nc) // reads until the test ends
						return
					}
				}
			})
			h := newHarness(t, func(cfg *Config) {
				cfg.Retry = RetryPolicy{MaxAttempts: 1, TryTimeout: 5 * time.Second, Deadline: 5 * time.Second}
			}, c.route(t, up.base))
			if resp, b := h.do("POST", c.path, c.body); resp.StatusCode != 200 {
				t.Fatalf("first request: %d %s", resp.StatusCode, b)
			}
			<-halfClosed
			if resp, b := h.do("POST", c.path, c.body); resp.StatusCode != 200 {
				t.Fatalf("second request, on the half-closed pooled connection: %d %s", resp.StatusCode, b)
			}
			if n := requests.Load(); n != 2 {
				t.Errorf("the upstream read %d requests, want 2 (none sent twice)", n)
			}
		})
	}
}

// poolPath is a request to model "m" on one of the gateway's paths, for
// tests of what happens to pooled upstream connections: infer may be
// resent, a chat completion may not.
type poolPath struct{ name, path, body string }

var poolPaths = []poolPath{
	{"infer", "/v2/models/m/infer", inferBody},
	{"chat", "/v1/chat/completions", strings.Replace(chatBody, `"chat"`, `"m"`, 1)},
}

// modelAnswer serves both paths (an OIP answer and a chat completion).
const modelAnswer = `{"model_name":"m","outputs":[],"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`

// route serves model "m" in production from one version at base.
func (p poolPath) route(t *testing.T, base string) *deployment.Route {
	if p.name == "chat" {
		return route("m", "production", remote(t, 1, 100, base+"/v1", runtime.ProtocolOpenAI))
	}
	return route("m", "production", remote(t, 1, 100, base, runtime.ProtocolOIP))
}
