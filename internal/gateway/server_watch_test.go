package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Tests of how the server watches a connection while its request is in
// flight (server.go: watchLoop, watch, stopWatch).

func TestServerCancelsTheContextOfAClientThatLeft(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			cancelled := make(chan error, 1)
			_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// As net/http's server, it watches the connection once the
				// body is read (the gateway always reads it first).
				_, _ = io.ReadAll(r.Body)
				if stream {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, "data: 1\n\n")
					w.(http.Flusher).Flush()
				}
				<-r.Context().Done()
				cancelled <- context.Cause(r.Context())
			}), ServerConfig{})
			c := dialTest(t, addr)
			c.send("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
			if stream {
				resp, err := http.ReadResponse(c.br, nil)
				if err != nil {
					t.Fatal(err)
				}
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				if err != nil || line != "data: 1\n" {
					t.Fatalf("first event %q %v", line, err)
				}
			}
			_ = c.nc.Close()
			select {
			case err := <-cancelled:
				if !errors.Is(err, errClientGone) {
					t.Errorf("cause %v, want errClientGone", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the request's context was not cancelled")
			}
		})
	}
}

// A request in flight long enough to be watched, with the next one
// pipelined behind it: the watcher's read takes the next request's first
// byte, which must reach that request.
func TestServerWatcherKeepsThePipelinedByte(t *testing.T) {
	release := make(chan struct{})
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		echo(w, r)
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	conn := waitForConn(t, s, func(sc *srvConn) bool { return sc.state.Load() == stWatching })
	c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, func() bool { return len(conn.watchDone) == 1 }) // the watcher read a byte
	close(release)
	for _, want := range []string{"GET /slow ? |", "GET /next ? |"} {
		if _, body := c.answer("GET"); body != want {
			t.Errorf("answer %q, want %q", body, want)
		}
	}
}

// waitFor polls cond until it holds, for 20 s at most.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitForConn returns the server's connection that satisfies cond.
func waitForConn(t *testing.T, s *Server, cond func(*srvConn) bool) *srvConn {
	t.Helper()
	var found *srvConn
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for c := range s.conns {
			if cond(c) {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// The abort hook a handler arms on its connection behaves as
// context.AfterFunc's: it runs once when the context is cancelled, and
// disarming reports whether it was kept from running.
func TestServerCancelHook(t *testing.T) {
	newConn := func() *srvConn {
		c := &srvConn{}
		c.ctx, c.cancel = context.WithCancelCause(context.Background())
		return c
	}
	runs := 0
	f := func() { runs++ }

	c := newConn()
	c.onCancel(f)
	if !c.offCancel() || runs != 0 {
		t.Fatalf("disarmed before the cancel: stopped must be true and nothing run (runs %d)", runs)
	}
	if c.offCancel() {
		t.Error("a second disarm reported stopping the hook")
	}
	c.cancelWith(errClientGone)
	if runs != 0 {
		t.Error("a disarmed hook ran")
	}

	c = newConn()
	c.onCancel(f)
	c.cancelWith(errClientGone)
	if runs != 1 || c.offCancel() {
		t.Errorf("armed, then cancelled: runs %d (want 1), and disarm must report it ran", runs)
	}
	if !errors.Is(context.Cause(c.ctx), errClientGone) {
		t.Errorf("cause %v", context.Cause(c.ctx))
	}

	c.onCancel(f) // cancelled already: runs at once
	if runs != 2 || c.offCancel() {
		t.Errorf("armed after the cancel: runs %d (want 2), and disarm must report it ran", runs)
	}
}
