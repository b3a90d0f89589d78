package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/runtime"
)

// Tests of what the gateway reuses between requests — exchanges, the
// upstream connection's parsed answer, the client connection's abort
// hook — found by a review of the pooling: each failed before its fix.

// A writer that keeps the header map (httptest.ResponseRecorder, any
// in-process caller of ServeHTTP) still sees the values the gateway set
// after it returns: only the gateway's own server's exchanges are reused.
func TestHeadersSurviveTheExchange(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, oipAnswer)
	}))
	defer up.Close()
	h := newHarness(t, nil, route("fraud", "production", remote(t, 1, 100, up.URL, runtime.ProtocolOIP)))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v2/models/fraud/infer", strings.NewReader(inferBody))
	req.Header.Set("X-Request-ID", "req-1")
	h.gw.ServeHTTP(rec, req)
	h.do("POST", "/v2/models/fraud/infer", inferBody) // another exchange in between
	for k, want := range map[string]string{"X-Request-Id": "req-1", HeaderVersion: "1", "Content-Length": "55"} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("after ServeHTTP returned, %s = %q, want %q", k, got, want)
		}
	}
}

// An answer that is retried is not read once its connection is back in
// the pool, where another request parses its own answer into it (the
// race detector caught this).
func TestRetriedStatusReadBeforeRelease(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(br) != nil {
			if _, err := io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno"); err != nil {
				return
			}
		}
	})
	h := newHarness(t, func(c *Config) {
		c.Sleep = func(context.Context, time.Duration) error { return nil }
		c.Retry.MaxAttempts = 5
		c.Retry.BudgetRatio = 100
		c.Retry.BudgetFloor = 100000
		c.Breaker.Disabled = true
	}, route("fraud", "production", remote(t, 1, 100, up.base, runtime.ProtocolOIP)))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 50 {
				rec := httptest.NewRecorder()
				h.gw.ServeHTTP(rec, httptest.NewRequest("POST", "/v2/models/fraud/infer", strings.NewReader(inferBody)))
				if rec.Code != http.StatusServiceUnavailable {
					t.Errorf("status %d, want 503 after the retries", rec.Code)
				}
			}
		})
	}
	wg.Wait()
}

// A second cancel of the client connection (the watcher, then the
// server closing) does not make disarming report that the abort never
// ran.
func TestCancelHookRanStaysRan(t *testing.T) {
	c := &srvConn{}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	ran := 0
	c.onCancel(func() { ran++ })
	c.cancelWith(errClientGone)
	c.cancelWith(errServerClosed)
	if c.offCancel() || ran != 1 {
		t.Errorf("disarm after the abort ran %d time(s) reported it stopped it", ran)
	}
}

// A caller gone before an attempt starts (its abort runs the moment it
// is armed) is not waited for: the deadline the attempt sets does not
// undo the abort.
func TestAbortArmedAfterTheCallerLeftHolds(t *testing.T) {
	var mu sync.Mutex
	n := 0
	release := make(chan struct{})
	defer close(release)
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(br) != nil {
			mu.Lock()
			n++
			slow := n > 1
			mu.Unlock()
			if slow {
				<-release // answers only when the test ends
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(oipAnswer), oipAnswer)
		}
	})
	h := newHarness(t, nil, route("fraud", "production", remote(t, 1, 100, up.base, runtime.ProtocolOIP)))
	done := make(chan struct{}, 2)
	srv := serveOwn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Gone") != "" {
			w.(*srvWriter).c.cancelWith(errClientGone) // the client left before the attempt
		}
		h.gw.ServeHTTP(w, r)
		done <- struct{}{}
	}))
	send := func(gone bool) {
		req, _ := http.NewRequest("POST", srv.URL+"/v2/models/fraud/infer", strings.NewReader(inferBody))
		if gone {
			req.Header.Set("X-Gone", "1")
		}
		if resp, err := h.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	send(false) // pools an upstream connection
	<-done
	go send(true)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway waited for the upstream of a caller that had left")
	}
}

// A server that closes each connection after a few answers without
// saying so loses no request that cannot be resent: every reuse looks
// at the connection first, however recently it came back. The test
// sends the next request only once the upstream has closed (a request
// racing the close is lost by any proxy that does not resend POSTs:
// nginx, Go's Transport and this gateway alike).
func TestSilentClosesLoseNoChatRequest(t *testing.T) {
	answer := func(id string) string {
		return `{"id":"` + id + `","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`
	}
	closed := make(chan struct{}, 1)
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for _, id := range []string{"first", "last"} { // two answers per connection, then an unannounced close
			if readRequest(br) == nil {
				return
			}
			a := answer(id)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(a), a)
		}
		c.Close()
		closed <- struct{}{}
	})
	h := newHarness(t, nil, route("chat", "production", remote(t, 1, 100, up.base+"/v1", runtime.ProtocolOpenAI)))
	closes := 0
	for i := range 30 {
		resp, b := h.do("POST", "/v1/chat/completions", chatBody)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		if !strings.Contains(string(b), `"id":"last"`) {
			continue
		}
		select { // the next request goes out after the close
		case <-closed:
			closes++
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d: the upstream did not close its connection", i)
		}
	}
	if closes != 15 {
		t.Fatalf("%d silent closes in 30 requests, want 15", closes)
	}
}
