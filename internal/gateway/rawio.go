package gateway

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
)

// This file gives the gateway's sockets (client connections of its
// server, upstream connections of its proxy path) reads and writes that
// do not tell the Go scheduler they are system calls. The sockets are
// non-blocking, so a read or write never blocks in the kernel: when there
// is nothing to read or no room to write, the call returns EAGAIN and the
// goroutine waits in the netpoller as net.Conn's own Read and Write do
// (through syscall.RawConn). What is saved is the scheduler's bookkeeping
// around a blocking system call: on a machine where system calls are
// slow (a virtual machine's loopback write runs the receiver's TCP
// processing too), the runtime's monitor took the processor away from a
// goroutine in a 20 µs write and handed it to another thread, and the
// thread switches that followed cost more than the gateway's own work.
// ADR 011 says more; the figures are in docs/performance.md.

// rawConn reads and writes a socket directly; other connections go
// through their own methods. The bound callbacks and their arguments are
// fields so that a call allocates nothing; one goroutine reads and one
// writes at a time, as with net.Conn.
type rawConn struct {
	net.Conn
	rc syscall.RawConn // nil: use Conn's methods

	readFn, writeFn func(fd uintptr) bool
	rbuf, wbuf      []byte
	rn, wn          int
	rerr, werr      error

	// A request held by holdNext goes out from inside the wait for its
	// answer (sendRead). writes counts Write calls.
	hold       bool
	held       []byte
	sent       int
	sendErr    error
	sendReadFn func(fd uintptr) bool
	writes     int
	// readFirst: the held bytes' callback reads before it waits (the
	// socket may hold more than the last read took). drained: the last
	// read returned less than it asked for, so the socket was empty then.
	readFirst bool
	drained   bool
	// onSent, when set, runs once held bytes are out, inside the wait;
	// false ends the wait (Read returns 0, nil).
	onSent func() bool
	// lookFirst: the next write first looks at the socket (peerGone) and
	// fails with errPeerClosed, sending nothing, when the peer closed it
	// or sent bytes nobody asked for. A held request looks after the
	// reset of its wait, so a close that came before cannot be missed.
	lookFirst bool
	lookBuf   [1]byte
	// dead: shutDown ended the connection; reads and writes fail.
	dead atomic.Bool
}

// errPeerClosed fails a request that was not sent: the server had closed
// the pooled connection (rawConn.lookFirst).
var errPeerClosed = errors.New("the server closed the connection before the request was sent")

// newRawConn wraps nc; only TCP sockets get the direct path.
func newRawConn(nc net.Conn) *rawConn {
	c := &rawConn{Conn: nc}
	if tc, ok := nc.(*net.TCPConn); ok && rawIO {
		if rc, err := tc.SyscallConn(); err == nil {
			c.rc = rc
			c.readFn, c.writeFn, c.sendReadFn = c.rawRead, c.rawWrite, c.rawSendRead
		}
	}
	return c
}

func (c *rawConn) Read(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.Conn.Read(p)
	}
	if len(c.held) > 0 {
		return c.sendRead(p)
	}
	c.rbuf, c.rn, c.rerr = p, 0, nil
	if err := c.rc.Read(c.readFn); err != nil {
		c.rbuf = nil
		return 0, err // closed, or the deadline passed
	}
	c.rbuf = nil
	return c.rn, c.rerr
}

func (c *rawConn) Write(p []byte) (int, error) {
	if c.rc == nil {
		return c.Conn.Write(p)
	}
	c.writes++
	if len(c.held) > 0 { // held bytes go first
		if err := c.flushHeld(); err != nil {
			return 0, err
		}
	}
	if c.hold {
		c.hold = false
		c.held, c.sent, c.sendErr = append(c.held[:0], p...), 0, nil
		return len(p), nil
	}
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	if err == nil {
		err = c.werr
	}
	return c.wn, err
}

// holdNext makes the next Write a request that waits for its answer: its
// bytes are kept and sent by the next Read, from inside RawConn.Read's
// callback. RawConn.Read forgets any readiness the netpoller saw before
// it starts, so a read must look at the socket before it may wait — a
// read that, right after a request was written, finds nothing and costs
// a system call (a quarter of the gateway's on a machine where they are
// slow). Written from inside the callback, after that reset, the request
// cannot be answered before the reset: the callback waits without
// reading, and the answer's readiness wakes it. Only a whole request may
// be held (nothing of it sent yet): a server may answer a part.
func (c *rawConn) holdNext() { c.hold, c.readFirst = c.rc != nil, false }

// holdAnswer is holdNext for an answer whose connection then waits for
// the next request: the wait skips its first read only when the last read
// found the socket empty. A request the client sent before this answer
// went out, after that read (pipelining), may then wait for the next
// readiness the netpoller sees; the gateway's server bounds that wait
// (srvConn.waitRequest).
func (c *rawConn) holdAnswer() { c.hold, c.readFirst = c.rc != nil, !c.drained }

// holding reports bytes held for the next Read.
func (c *rawConn) holding() bool { return len(c.held) > 0 }

// flushHeld sends held bytes now, the ordinary way.
func (c *rawConn) flushHeld() error {
	if len(c.held) == 0 {
		return nil
	}
	rest, hold := c.held[c.sent:], c.hold
	c.held, c.sent, c.hold = c.held[:0], 0, false
	_, err := c.Write(rest)
	c.hold = hold
	return err
}

// sendRead sends the held request and reads the start of its answer into
// p. A request the socket's buffer cannot take at once is finished the
// ordinary way, and its answer read the ordinary way. A failed send is
// sendErr (the request did not go out whole), not a read error. When the
// wait fails before all is sent (the connection closed, the deadline
// passed), what is left stays held: flushHeld may still send it.
func (c *rawConn) sendRead(p []byte) (int, error) {
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.sendReadFn)
	c.rbuf = nil
	switch {
	case c.sendErr != nil:
		c.held, c.sent = c.held[:0], 0
		return 0, c.sendErr
	case c.sent < len(c.held) && err != nil:
		return 0, err
	case c.sent < len(c.held): // the socket's buffer was full
		if werr := c.flushHeld(); werr != nil {
			c.sendErr = werr
			return 0, werr
		}
		if c.onSent != nil && !c.onSent() {
			return 0, nil
		}
		return c.Read(p)
	}
	c.held, c.sent = c.held[:0], 0
	if err != nil {
		return 0, err // closed, or the deadline passed
	}
	return c.rn, c.rerr
}
