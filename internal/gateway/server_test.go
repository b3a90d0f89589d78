package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// These tests talk to the gateway's own HTTP/1.1 server (server.go) over
// real loopback sockets, writing requests byte by byte where the framing
// matters. Timeouts they set are short so that the server acts soon; no
// test asserts how long anything took.

// startServer serves h on loopback; the server is closed when the test
// ends.
func startServer(t *testing.T, h http.Handler, cfg ServerConfig) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.watchAfter == 0 {
		cfg.watchAfter = 5 * time.Millisecond
	}
	s := NewServer(h, cfg)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// testConn is a client connection that writes what it is told and parses
// answers with net/http's client-side reader.
type testConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialTest(t *testing.T, addr string) *testConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// A safety net so that a broken server fails the test, not hangs it.
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { _ = nc.Close() })
	return &testConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *testConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// answer reads one answer to a request of method, its body read whole.
func (c *testConn) answer(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection: the next read
// meets its end.
func (c *testConn) closed() bool {
	c.t.Helper()
	_, err := c.br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && strings.Contains(oe.Err.Error(), "reset")
}

// echo answers with the method, path, query and body it got.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s ?%s %s|%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Test"), b)
})

func TestServerKeepAliveReusesTheConnection(t *testing.T) {
	seen := make(chan string, 3)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.RemoteAddr
		_, _ = io.WriteString(w, "ok")
	}), ServerConfig{})
	c := dialTest(t, addr)
	for i := range 3 {
		c.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := c.answer("GET")
		if resp.StatusCode != 200 || body != "ok" || resp.Close || resp.ContentLength != 2 {
			t.Fatalf("request %d: %d %q close=%v length=%d", i, resp.StatusCode, body, resp.Close, resp.ContentLength)
		}
		if resp.Header.Get("Date") == "" {
			t.Errorf("request %d: no Date header", i)
		}
	}
	first := <-seen
	for range 2 {
		if got := <-seen; got != first {
			t.Errorf("remote %s, then %s: not one connection", first, got)
		}
	}
}

func TestServerAnswersPipelinedRequestsInOrder(t *testing.T) {
	_, addr := startServer(t, echo, ServerConfig{})
	c := dialTest(t, addr)
	c.send("POST /a?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none" +
		"GET /b HTTP/1.1\r\nHost: a\r\nX-Test: two\r\n\r\n" +
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n")
	for _, want := range []string{"POST /a ?q=1 |one", "GET /b ? two|", "POST /c ? |three"} {
		if _, body := c.answer("GET"); body != want {
			t.Errorf("answer %q, want %q", body, want)
		}
	}
}

func TestServerReadsChunkedBodies(t *testing.T) {
	_, addr := startServer(t, echo, ServerConfig{})
	c := dialTest(t, addr)
	// Extensions, upper-case hex, a chunk split across writes, trailers.
	c.send("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;name=v\r\nabcd\r\nA\r\n01234")
	c.send("56789\r\n0\r\nX-Trailer: t\r\n\r\n")
	if _, body := c.answer("POST"); body != "POST /p ? |abcd0123456789" {
		t.Errorf("body %q", body)
	}
	// The connection carries the next request.
	c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.answer("GET"); body != "GET /next ? |" {
		t.Errorf("next answer %q", body)
	}
	// A malformed chunk size is a bad request.
	c.send("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
	if resp, _ := c.answer("POST"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed chunk: %d, want 400", resp.StatusCode)
	}
}

func TestServerExpectContinue(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		echo(w, r)
	}), ServerConfig{})

	c := dialTest(t, addr)
	c.send("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("first answer %v %v, want 100 Continue", resp, err)
	}
	c.send("hello")
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "POST /p ? |hello" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}

	// A handler that answers without reading: no 100, and the connection
	// closes, since the client may still send the body.
	c2 := dialTest(t, addr)
	c2.send("POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, _ = c2.answer("POST")
	if resp.StatusCode != http.StatusForbidden || !resp.Close {
		t.Errorf("refused: %d close=%v, want 403 and Connection: close", resp.StatusCode, resp.Close)
	}
	if !c2.closed() {
		t.Error("the connection stayed open")
	}
}

func TestServerRefusesOversizeHeads(t *testing.T) {
	_, addr := startServer(t, echo, ServerConfig{MaxHeaderBytes: 1024})
	c := dialTest(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 4000) + "\r\n\r\n")
	resp, _ := c.answer("GET")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !resp.Close {
		t.Errorf("got %d close=%v, want 431 and Connection: close", resp.StatusCode, resp.Close)
	}
	// A head just under the cap is served.
	c2 := dialTest(t, addr)
	c2.send("GET / HTTP/1.1\r\nHost: a\r\nX-Test: " + strings.Repeat("s", 900) + "\r\n\r\n")
	if resp, _ := c2.answer("GET"); resp.StatusCode != 200 {
		t.Errorf("a 0.9 KiB head got %d", resp.StatusCode)
	}
}

func TestServerOversizeBodyGets413(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 10)); err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), ServerConfig{})
	// A short unread rest is read and dropped: the connection stays.
	c := dialTest(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n" + strings.Repeat("x", 20))
	if resp, _ := c.answer("POST"); resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Close {
		t.Fatalf("got %d close=%v, want 413 on a kept connection", resp.StatusCode, resp.Close)
	}
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("next request: %d %q", resp.StatusCode, body)
	}
	// A long one closes the connection after the answer.
	c2 := dialTest(t, addr)
	c2.send(fmt.Sprintf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", 10<<20) + strings.Repeat("x", 100))
	if resp, _ := c2.answer("POST"); resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("got %d close=%v, want 413 and Connection: close", resp.StatusCode, resp.Close)
	}
}

func TestServerClosesSlowHeads(t *testing.T) {
	_, addr := startServer(t, echo, ServerConfig{ReadHeaderTimeout: 50 * time.Millisecond})
	c := dialTest(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n") // and never the blank line
	resp, _ := c.answer("GET")
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("got %d, want 408", resp.StatusCode)
	}
	if !c.closed() {
		t.Error("the connection stayed open")
	}
}

func TestServerClosesSlowBodies(t *testing.T) {
	_, addr := startServer(t, echo, ServerConfig{BodyTimeout: 50 * time.Millisecond})
	c := dialTest(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
	resp, _ := c.answer("POST")
	if resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Errorf("got %d close=%v, want the handler's 400 and Connection: close", resp.StatusCode, resp.Close)
	}
	if !c.closed() {
		t.Error("the connection stayed open")
	}
}

func TestServerClosesIdleConnections(t *testing.T) {
	_, addr := startServer(t, echo, ServerConfig{IdleTimeout: 50 * time.Millisecond})
	c := dialTest(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := c.answer("GET"); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("got %d close=%v", resp.StatusCode, resp.Close)
	}
	if !c.closed() {
		t.Error("the idle connection stayed open")
	}
}

func TestServerConnectionClose(t *testing.T) {
	_, addr := startServer(t, echo, ServerConfig{})
	c := dialTest(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := c.answer("GET"); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("got %d close=%v, want 200 and Connection: close", resp.StatusCode, resp.Close)
	}
	if !c.closed() {
		t.Error("the connection carried a request after Connection: close")
	}
}

func TestServerHTTP10(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part one,")
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, " part two")
	}), ServerConfig{})

	// Without keep-alive: a length, then the end of the connection.
	c := dialTest(t, addr)
	c.send("GET / HTTP/1.0\r\n\r\n")
	resp, body := c.answer("GET")
	if resp.StatusCode != 200 || body != "part one, part two" || resp.ContentLength != 18 {
		t.Fatalf("got %d %q length=%d", resp.StatusCode, body, resp.ContentLength)
	}
	if !c.closed() {
		t.Error("an HTTP/1.0 connection without keep-alive stayed open")
	}

	// With keep-alive: the connection carries a second request.
	c2 := dialTest(t, addr)
	c2.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, _ := c2.answer("GET"); resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("Connection %q, want keep-alive", resp.Header.Get("Connection"))
	}
	c2.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, body := c2.answer("GET"); resp.StatusCode != 200 || body != "part one, part two" {
		t.Fatalf("second request: %d %q", resp.StatusCode, body)
	}

	// A flushed answer cannot be chunked for HTTP/1.0: it ends with the
	// connection.
	c3 := dialTest(t, addr)
	c3.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body = c3.answer("GET")
	if len(resp.TransferEncoding) != 0 || body != "part one, part two" || !resp.Close {
		t.Errorf("got %v %q close=%v", resp.TransferEncoding, body, resp.Close)
	}
}

func TestServerFramesAnswers(t *testing.T) {
	big := strings.Repeat("z", 10_000)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = io.WriteString(w, big)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/declared":
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "12345")
		case "/short":
			w.Header().Set("Content-Length", "50")
			_, _ = io.WriteString(w, "12345")
		case "/late-header":
			w.WriteHeader(200)
			w.Header().Set("X-Late", "1") // after WriteHeader: not sent
			_, _ = io.WriteString(w, "late")
		default:
			_, _ = io.WriteString(w, "<html><body>hi</body></html>")
		}
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c.answer("GET"); body != big || len(resp.TransferEncoding) != 1 {
		t.Errorf("big answer: %d bytes, encoding %v, want %d chunked", len(body), resp.TransferEncoding, len(big))
	}
	c.send("HEAD /small HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c.answer("HEAD"); body != "" || resp.ContentLength != 28 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD: %q length=%d type %q", body, resp.ContentLength, resp.Header.Get("Content-Type"))
	}
	c.send("GET /empty HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := c.answer("GET"); resp.StatusCode != 204 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("204: %d with Content-Length %q", resp.StatusCode, resp.Header.Get("Content-Length"))
	}
	c.send("GET /declared HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c.answer("GET"); body != "12345" || resp.ContentLength != 5 {
		t.Errorf("declared: %q length %d", body, resp.ContentLength)
	}
	c.send("GET /late-header HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := c.answer("GET"); resp.Header.Get("X-Late") != "" {
		t.Error("a header set after WriteHeader was sent")
	}
	// An answer shorter than its declared length closes the connection:
	// the client must see it cut off.
	c.send("GET /short HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short answer read with %v, want unexpected EOF", err)
	}
}

func TestServerRefusesMalformedAndUnusualRequests(t *testing.T) {
	_, addr := startServer(t, echo, ServerConfig{})
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", http.StatusHTTPVersionNotSupported},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", http.StatusBadRequest},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", http.StatusBadRequest},
		{"folded header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  2\r\n\r\n", http.StatusBadRequest},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", http.StatusBadRequest},
		{"control character", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n", http.StatusBadRequest},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", http.StatusBadRequest},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", http.StatusBadRequest},
		{"gzip encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", http.StatusNotImplemented},
		{"bad length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", http.StatusBadRequest},
		{"unknown expectation", "POST / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n", http.StatusExpectationFailed},
		{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", http.StatusNotImplemented},
		{"HTTP/3", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", http.StatusHTTPVersionNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTest(t, addr)
			c.send(tc.req)
			resp, _ := c.answer("GET")
			if resp.StatusCode != tc.status || !resp.Close {
				t.Errorf("got %d close=%v, want %d and Connection: close", resp.StatusCode, resp.Close, tc.status)
			}
			if !c.closed() {
				t.Error("the connection stayed open")
			}
		})
	}
	// Blank lines before a request and an absolute-form target are fine.
	c := dialTest(t, addr)
	c.send("\r\nGET http://a/p%20q?x=1 HTTP/1.1\r\nHost: b\r\n\r\n")
	if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != "GET /p q ?x=1 |" {
		t.Errorf("absolute form: %d %q", resp.StatusCode, body)
	}
}

func TestServerStreamsFlushedEvents(t *testing.T) {
	next := make(chan struct{})
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			if i < 2 {
				<-next // the client saw this event before the next is written
			}
		}
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		data, _ := br.ReadString('\n')
		blank, _ := br.ReadString('\n')
		if data != fmt.Sprintf("data: %d\n", i) || blank != "\n" {
			t.Fatalf("event %d: %q %q", i, data, blank)
		}
		if i < 2 {
			next <- struct{}{}
		}
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the events: %q %v", rest, err)
	}
}

func TestServerShutdownFinishesRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}), ServerConfig{})
	idle := dialTest(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.answer("GET")
	busy := dialTest(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Error("Shutdown left an idle connection open")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener still accepts connections")
	}
	close(release)
	resp, body := busy.answer("GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Errorf("in-flight answer: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestServerShutdownClosesWhatIsLeftWhenItsContextEnds(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{})
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: %v, want context.Canceled", err)
	}
	if !c.closed() {
		t.Error("the connection stayed open")
	}
}

func TestServerSurvivesHandlerPanics(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: 1\n\n")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "ok")
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
	if !c.closed() {
		t.Error("a panicking handler's connection stayed open")
	}
	// A stream the handler aborts is cut off: no last chunk.
	c2 := dialTest(t, addr)
	c2.send("GET /abort HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c2.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) || string(b) != "data: 1\n\n" {
		t.Errorf("aborted stream: %q %v, want the first event, then unexpected EOF", b, err)
	}
	c3 := dialTest(t, addr)
	c3.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c3.answer("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("after the panics: %d %q", resp.StatusCode, body)
	}
}

func TestServerHijack(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		line, _ := rw.ReadString('\n')
		_, _ = rw.WriteString("echo " + line)
		_ = rw.Flush()
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v %v", resp, err)
	}
	if line, _ := c.br.ReadString('\n'); line != "echo early\n" {
		t.Errorf("after the upgrade: %q", line)
	}
}

// An answer written to its declared length can be sent before the
// handler returns (the gateway's bookkeeping then runs after the client
// has it); the connection carries the next request as usual. An answer
// without a length, or one to a request whose body is unread, waits for
// the handler.
func TestServerSendsACompleteAnswerEarly(t *testing.T) {
	release := make(chan struct{})
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/unread" {
			_, _ = io.ReadAll(r.Body)
		}
		if r.URL.Path != "/chunked" {
			w.Header().Set("Content-Length", "5")
		}
		_, _ = io.WriteString(w, "hello")
		w.(*srvWriter).sendComplete(nil)
		if r.URL.Path == "/early" {
			<-release // the client must have the answer already
		}
	}), ServerConfig{})
	c := dialTest(t, addr)
	c.send("POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "hello" || resp.Close {
		t.Fatalf("early answer: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	close(release)
	c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.answer("GET"); body != "hello" {
		t.Fatalf("next answer on the connection: %q", body)
	}
	c.send("GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c.answer("GET"); body != "hello" || resp.ContentLength != 5 {
		t.Errorf("an answer without a declared length: length %d %q, want the length known at the end", resp.ContentLength, body)
	}
	c.send("POST /unread HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
	if _, body := c.answer("POST"); body != "hello" {
		t.Errorf("answer to an unread body: %q", body)
	}
	c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.answer("GET"); body != "hello" {
		t.Errorf("after an unread short body the connection carries on: %q", body)
	}
}
