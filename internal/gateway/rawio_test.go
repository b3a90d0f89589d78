package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection: ours wrapped
// as the gateway wraps its sockets, and the peer's.
func tcpPair(t *testing.T) (*rawConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { nc.Close(); peer.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	_ = peer.SetDeadline(time.Now().Add(10 * time.Second))
	return newRawConn(nc), peer
}

// A held request goes out with the wait for its answer, and the answer
// is read whole. (The peer can answer only after the request is out, so
// the callback always waits without a read first: the path under test.)
func TestHeldRequestIsSentAndAnswered(t *testing.T) {
	c, peer := tcpPair(t)
	for i := range 3 {
		c.holdNext()
		req := fmt.Sprintf("request %d\n", i)
		if n, err := c.Write([]byte(req)); n != len(req) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		go func() {
			br := bufio.NewReader(peer)
			line, _ := br.ReadString('\n')
			_, _ = io.WriteString(peer, "answer to "+line)
		}()
		got, err := bufio.NewReader(c).ReadString('\n')
		if want := "answer to " + req; got != want || err != nil {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if c.rc != nil && (c.hold || len(c.held) > 0) {
		t.Errorf("hold %v, %d bytes held after the exchanges", c.hold, len(c.held))
	}
}

// A held request larger than the socket takes at once is finished the
// ordinary way, and its answer still read.
func TestHeldRequestLargerThanTheSocketBuffer(t *testing.T) {
	c, peer := tcpPair(t)
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	go func() {
		n, _ := io.CopyN(io.Discard, peer, int64(len(big)))
		fmt.Fprintf(peer, "got %d\n", n)
	}()
	c.holdNext()
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if want := fmt.Sprintf("got %d\n", len(big)); got != want || err != nil {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

// A held request that cannot be sent (the peer reset the connection) is
// a failed send, told apart from a failed read.
func TestHeldRequestToAResetConnection(t *testing.T) {
	c, peer := tcpPair(t)
	if c.rc == nil {
		t.Skip("sockets go through net.Conn's methods in this build (rawio_other.go): nothing is held")
	}
	_ = peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // a reset
	deadline := time.Now().Add(10 * time.Second)
	for !resetArrived(t, c) {
		if time.Now().After(deadline) {
			t.Fatal("the reset did not arrive")
		}
	}
	c.holdNext()
	if _, err := c.Write([]byte("request\n")); err != nil {
		t.Fatalf("Write = %v; a held request fails when it is sent", err)
	}
	n, err := c.Read(make([]byte, 64))
	if n != 0 || err == nil || c.sendErr == nil || !errors.Is(err, c.sendErr) {
		t.Fatalf("Read = %d, %v (sendErr %v); want the send's error", n, err, c.sendErr)
	}
}

// resetArrived looks at the socket without consuming anything.
func resetArrived(t *testing.T, c *rawConn) bool {
	t.Helper()
	var state int
	if err := c.rc.Control(func(fd uintptr) {
		u := &upConn{}
		u.peek(fd)
		if u.peekClosed {
			state = 1
		}
	}); err != nil {
		t.Fatal(err)
	}
	return state == 1
}

// Through the gateway: a pooled connection the server reset while it sat
// idle fails the held request's send, and the request goes out again on a
// new connection — once, for the idempotent and the non-idempotent path.
func TestResetWhileIdleLosesNoRequest(t *testing.T) {
	for _, c := range poolPaths {
		t.Run(c.name, func(t *testing.T) {
			reset := make(chan struct{}, 1)
			var requests atomic.Int64
			up := newRawUpstream(t, func(nc net.Conn, br *bufio.Reader) {
				if readRequest(br) == nil {
					return
				}
				requests.Add(1)
				fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(modelAnswer), modelAnswer)
				_ = nc.(*net.TCPConn).SetLinger(0)
				nc.Close()
				reset <- struct{}{}
			})
			h := newHarness(t, nil, c.route(t, up.base))
			for i := range 5 {
				if resp, b := h.do("POST", c.path, c.body); resp.StatusCode != 200 {
					t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
				}
				select {
				case <-reset:
				case <-time.After(10 * time.Second):
					t.Fatal("the upstream did not reset its connection")
				}
			}
			if requests.Load() != 5 || up.conns.Load() != 5 {
				t.Errorf("%d requests on %d connections, want 5 on 5 (none sent twice)", requests.Load(), up.conns.Load())
			}
		})
	}
}

// A held request whose wait fails before it is sent (here the deadline
// passed) stays held, and flushHeld still sends it.
func TestHeldRequestKeptWhenTheWaitFails(t *testing.T) {
	c, peer := tcpPair(t)
	if c.rc == nil {
		t.Skip("sockets go through net.Conn's methods in this build (rawio_other.go): nothing is held")
	}
	_ = c.SetReadDeadline(time.Unix(1, 0))
	c.holdNext()
	if _, err := c.Write([]byte("request\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want the deadline's error", err)
	}
	if !c.holding() {
		t.Fatal("the request was dropped when the wait failed")
	}
	if err := c.flushHeld(); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(peer).ReadString('\n')
	if got != "request\n" || err != nil {
		t.Fatalf("the peer read %q, %v", got, err)
	}
}
