package gateway

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// These tests cover answers the server holds to send with the wait for
// the connection's next request (srvWriter.sendComplete with work to run
// after it, rawConn.holdAnswer). Under the race detector sockets go
// through net.Conn's methods and nothing is held: the same tests then
// check that the answer and the work after it are unchanged.

// thenFunc is work left until a held answer is out.
type thenFunc func()

func (f thenFunc) afterAnswer() { f() }

// heldHandler answers "answer <path>" with a declared length and leaves
// the rest of its work — telling the test the path it still sees — until
// the answer is out. before and held, when set, run before the answer
// is written and after sendComplete.
func heldHandler(after chan<- string, before, held func(path string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		path := r.URL.Path
		if before != nil {
			before(path)
		}
		body := "answer " + path
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = io.WriteString(w, body)
		work := thenFunc(func() { after <- r.URL.Path + " (was " + path + ")" })
		if !w.(*srvWriter).sendComplete(work) {
			work()
		}
		if held != nil {
			held(path)
		}
	})
}

// The work runs once the answer is out, before the next request is read
// into the request it still sees, and every answer arrives.
func TestServerHeldAnswerRunsItsWorkAfterSending(t *testing.T) {
	after := make(chan string, 10)
	_, addr := startServer(t, heldHandler(after, nil, nil), ServerConfig{})
	c := dialTest(t, addr)
	for _, p := range []string{"/one", "/two", "/three"} {
		c.send("POST " + p + " HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
		if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "answer "+p || resp.Close {
			t.Fatalf("%s: %d %q close=%v", p, resp.StatusCode, body, resp.Close)
		}
		select {
		case got := <-after:
			if want := p + " (was " + p + ")"; got != want {
				t.Errorf("the work after the answer saw %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the work after the answer did not run", p)
		}
	}
}

// A request sent while the previous one is still being answered
// (pipelined after the server's last read) is answered, in order: the
// wait that follows a held answer may miss its arrival, and is bounded.
func TestServerHeldAnswerThenPipelinedRequest(t *testing.T) {
	after := make(chan string, 10)
	got, sent := make(chan struct{}), make(chan struct{})
	_, addr := startServer(t, heldHandler(after, func(path string) {
		if path == "/first" {
			close(got)
			<-sent // the second request is on its way before this answer
		}
	}, nil), ServerConfig{})
	c := dialTest(t, addr)
	c.send("POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	<-got // read by the server: the next request arrives after its last read
	c.send("GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
	close(sent)
	for _, p := range []string{"/first", "/second"} {
		if _, body := c.answer("GET"); body != "answer "+p {
			t.Fatalf("answer %q, want %q", body, "answer "+p)
		}
	}
	for range 2 {
		select {
		case <-after:
		case <-time.After(10 * time.Second):
			t.Fatal("the work after an answer did not run")
		}
	}
}

// A client that sends its request and closes its side gets the answer,
// and then the server closes the connection.
func TestServerHeldAnswerToAHalfClosedClient(t *testing.T) {
	after := make(chan string, 10)
	_, addr := startServer(t, heldHandler(after, nil, nil), ServerConfig{})
	c := dialTest(t, addr)
	c.send("POST /last HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, body := c.answer("POST"); body != "answer /last" {
		t.Fatalf("answer %q", body)
	}
	if !c.closed() {
		t.Error("the server kept the connection of a client that closed its side")
	}
}

// An answer held when Shutdown begins goes out, and its work runs, before
// the connection closes.
func TestServerShutdownSendsAHeldAnswer(t *testing.T) {
	after := make(chan string, 10)
	release := make(chan struct{})
	var s *Server
	shut := make(chan error, 1)
	s, addr := startServer(t, heldHandler(after, nil, func(string) {
		go func() { shut <- s.Shutdown(t.Context()) }()
		for !s.shutting.Load() {
			runtime.Gosched() // Shutdown's first step is at once
		}
		<-release
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("POST /late HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	close(release)
	if _, body := c.answer("POST"); body != "answer /late" {
		t.Fatalf("answer %q", body)
	}
	select {
	case <-after:
	case <-time.After(10 * time.Second):
		t.Fatal("the work after the answer did not run")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !c.closed() {
		t.Error("the connection stayed open after Shutdown")
	}
}
