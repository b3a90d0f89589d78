package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A held answer's work runs inside RawConn.Read's callback, with the
// socket's read lock held, and net.Conn.Close on a non-blocking socket
// waits for every holder of that lock: Server.Close must not wait for
// the work of any connection (it shuts the socket down instead, srvConn.
// kill), and must not hold the server's lock while it closes.
func TestServerCloseDoesNotWaitForAHeldAnswersWork(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
		work := thenFunc(func() { close(started); <-release })
		if !w.(*srvWriter).sendComplete(work) {
			go work() // this build holds nothing: the work runs aside
		}
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.answer("GET"); body != "ok" {
		t.Fatalf("answer %q", body)
	}
	<-started
	closed := make(chan struct{})
	go func() { _ = s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Server.Close waits for a held answer's work to finish")
	}
}

// Server.Close ends a connection whose handler is reading a request body:
// the handler's next read fails, whatever the client sent before or
// after. (On the raw path Close shuts the socket down, srvConn.kill, and
// a socket shut down for reading still returns what was queued, and a
// body read moves the deadline again: the connection is marked dead.)
func TestServerCloseEndsABodyBeingRead(t *testing.T) {
	first, next := make(chan struct{}), make(chan struct{})
	type result struct {
		n   int
		err error
	}
	after := make(chan result, 1)
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64)
		if _, err := io.ReadFull(r.Body, buf[:5]); err != nil {
			t.Errorf("first part of the body: %v", err)
		}
		close(first)
		<-next
		total := 0
		for {
			n, err := r.Body.Read(buf)
			total += n
			if err != nil {
				after <- result{total, err}
				return
			}
		}
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\naaaaa")
	<-first
	c.send(strings.Repeat("b", 1000)) // sent before the close: queued in the server's socket
	_ = s.Close()
	for range 10 {
		if _, err := io.WriteString(c.nc, strings.Repeat("c", 1000)); err != nil {
			break
		}
	}
	close(next)
	if r := <-after; r.n > 0 {
		t.Fatalf("after Server.Close the handler read %d more body bytes (then %v)", r.n, r.err)
	}
}
