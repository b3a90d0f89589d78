//go:build unix

package gateway

import (
	"syscall"
	"unsafe"
)

// peek looks at an idle connection's socket without blocking or
// consuming: nothing to read (EAGAIN) means the server still holds it
// open; end of stream, an error or bytes nobody asked for mean it is
// not fit for another request. The call cannot block (MSG_DONTWAIT), so
// it skips the scheduler's bookkeeping for system calls that may
// (rawio.go says why that matters).
func (c *upConn) peek(fd uintptr) { c.peekClosed = peerGone(fd, &c.peekBuf) }

// peerGone is peek's look at socket fd, with buf as the byte it may
// peek into.
func peerGone(fd uintptr, buf *[1]byte) bool {
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		return e != syscall.EAGAIN && e != syscall.EWOULDBLOCK
	}
}
