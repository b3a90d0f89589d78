//go:build !unix

package gateway

// peek cannot look at the socket on this platform: an idle connection
// the server closed shows up when the request sent on it fails, and is
// retried on a new connection when that is safe (proxy.go).
func (c *upConn) peek(uintptr) {
	c.peekClosed = false
}
