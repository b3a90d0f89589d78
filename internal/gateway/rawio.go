package gateway

import (
	"net"
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
}

// newRawConn wraps nc; only TCP sockets get the direct path.
func newRawConn(nc net.Conn) *rawConn {
	c := &rawConn{Conn: nc}
	if tc, ok := nc.(*net.TCPConn); ok && rawIO {
		if rc, err := tc.SyscallConn(); err == nil {
			c.rc = rc
			c.readFn, c.writeFn = c.rawRead, c.rawWrite
		}
	}
	return c
}

func (c *rawConn) Read(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.Conn.Read(p)
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
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	if err == nil {
		err = c.werr
	}
	return c.wn, err
}
