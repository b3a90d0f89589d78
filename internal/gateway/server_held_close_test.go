package gateway

import (
	"io"
	"net/http"
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
