package gateway

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// hookConn runs hook once, when armed, before a read deadline later than
// heldWait from now is set: the idle deadline.
type hookConn struct {
	net.Conn
	armed atomic.Bool
	hook  func()
}

func (c *hookConn) SetReadDeadline(t time.Time) error {
	if time.Until(t) > 10*time.Second && c.armed.CompareAndSwap(true, false) {
		c.hook()
	}
	return c.Conn.SetReadDeadline(t)
}

// After a held answer's bounded wait (heldWait) passes with nothing to
// read, waitRequest checks that the connection is still idle, then sets
// the idle deadline and reads. Shutdown's closeIdle may run between the
// two: it marks the connection closed and moves its deadline to the past
// to wake the read, and the idle deadline set next must not undo that,
// or the connection waits out IdleTimeout, and Shutdown with it (so the
// state is checked again after the deadline is set). The wrapper
// on the connection's net.Conn — the server sets deadlines through it,
// and reads the socket itself through rawConn — makes closeIdle run in
// that gap.
func TestServerShutdownAfterAHeldWaitRanOut(t *testing.T) {
	if !rawIO {
		t.Skip("nothing is held in this build (rawio_other.go)")
	}
	after := make(chan string, 10)
	s := NewServer(heldHandler(after, nil, nil), ServerConfig{IdleTimeout: time.Minute, Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { nc, _ := ln.Accept(); accepted <- nc }()
	client := dialTest(t, ln.Addr().String())
	nc := <-accepted
	hc := &hookConn{Conn: nc}
	c := newSrvConn(s, nc)
	c.nc = hc
	hooked := make(chan struct{})
	hc.hook = func() { _ = s.stop(); s.closeIdle(); close(hooked) } // Shutdown's first steps
	if !s.track(c) {
		t.Fatal("not tracked")
	}
	go c.serve()
	client.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := client.answer("GET"); body != "answer /x" {
		t.Fatalf("answer %q", body)
	}
	<-after
	hc.armed.Store(true) // the next idle deadline is the one after the held wait
	<-hooked             // (within heldWait)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (the idle connection it closed kept waiting)", err)
	}
}
