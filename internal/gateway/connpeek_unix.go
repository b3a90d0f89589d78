//go:build unix

package gateway

import "syscall"

// peek looks at an idle connection's socket without blocking or
// consuming: nothing to read (EAGAIN) means the server still holds it
// open; end of stream, an error or bytes nobody asked for mean it is
// not fit for another request. It always returns true, so that
// RawConn.Read never waits for the socket to become readable.
func (c *upConn) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.peekClosed = err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR
	return true
}
