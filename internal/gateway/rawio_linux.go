//go:build linux && !race

package gateway

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

const rawIO = true

// rawRead is RawConn.Read's callback: false asks it to wait until the
// socket is readable and call again.
func (c *rawConn) rawRead(fd uintptr) bool {
	if c.dead.Load() {
		c.rerr = net.ErrClosed
		return true
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return false
		case e != 0:
			c.rerr = os.NewSyscallError("read", e)
		case n == 0:
			c.rerr = io.EOF
		default:
			c.rn = int(n)
			c.drained = c.rn < len(c.rbuf)
		}
		return true
	}
}

// rawWrite is RawConn.Write's callback: it writes all of wbuf, asking to
// wait whenever the socket's buffer is full.
func (c *rawConn) rawWrite(fd uintptr) bool {
	if err := c.mayWrite(fd); err != nil {
		c.werr = err
		return true
	}
	done, err := writeFD(fd, c.wbuf, &c.wn)
	if err != nil {
		c.werr = err
	}
	return done
}

// mayWrite fails a write to a connection shut down (dead) or, when
// lookFirst, to one its peer closed (the look is made once).
func (c *rawConn) mayWrite(fd uintptr) error {
	if c.dead.Load() {
		return net.ErrClosed
	}
	if c.lookFirst {
		c.lookFirst = false
		if peerGone(fd, &c.lookBuf) {
			return errPeerClosed
		}
	}
	return nil
}

// writeFD writes p[*n:] to fd, moving *n on: done is false when the
// socket's buffer is full (EAGAIN) and true when all is written or the
// write failed.
func writeFD(fd uintptr, p []byte, n *int) (done bool, err error) {
	for *n < len(p) {
		q := p[*n:]
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&q[0])), uintptr(len(q)))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return false, nil
		case e != 0:
			return true, os.NewSyscallError("write", e)
		}
		*n += int(m)
	}
	return true, nil
}

// rawSendRead is RawConn.Read's callback for held bytes (holdNext,
// holdAnswer): the first call looks at the socket when lookFirst, writes
// them and, unless readFirst, waits for the answer without a read; it
// stops early, leaving the rest to sendRead, when the socket's buffer is
// full. Later calls read.
func (c *rawConn) rawSendRead(fd uintptr) bool {
	if c.sent == len(c.held) {
		return c.rawRead(fd)
	}
	if c.sent == 0 {
		if err := c.mayWrite(fd); err != nil {
			c.sendErr = err
			return true
		}
	}
	if done, err := writeFD(fd, c.held, &c.sent); err != nil || !done {
		c.sendErr = err
		return true // failed, or the rest waits for sendRead
	}
	if c.onSent != nil && !c.onSent() {
		return true
	}
	if c.readFirst {
		return c.rawRead(fd)
	}
	return false
}

// shutDown ends the connection at once without closing it (closing waits
// for a callback that reads it to return): reads and writes fail from
// now on, and the socket is shut down, which wakes every wait on it.
func (c *rawConn) shutDown() bool {
	c.dead.Store(true)
	return c.rc.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) }) == nil
}
