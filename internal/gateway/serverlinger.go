package gateway

import (
	"io"
	"net"
	"time"
)

// Lingering close. When the server answers before it has read a request's
// body — 413 for a body over the cap, an error before the handler read it
// — and then closes, the client may still be sending. Closing a socket
// with unread bytes makes the kernel send a reset, and a reset arriving
// before the client read the answer destroys it: the client sees "broken
// pipe" or "connection reset" instead of 413. So, as nginx and net/http
// do, the server first closes only its sending side (the client reads the
// answer, then end of stream) and reads and drops what still comes, for a
// bounded time and amount, before it closes.
const (
	lingerTimeout = 2 * time.Second
	lingerMax     = 64 << 20
)

// closeLingering closes nc, lingering when a request body was left
// unread.
func closeLingering(nc net.Conn, unread bool) {
	cw, ok := nc.(interface{ CloseWrite() error })
	if !unread || !ok {
		_ = nc.Close()
		return
	}
	if cw.CloseWrite() == nil {
		_ = nc.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, nc, lingerMax)
	}
	_ = nc.Close()
}
