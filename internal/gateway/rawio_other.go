//go:build !linux || race

package gateway

// Elsewhere sockets are read and written through net.Conn's methods; so
// they are under the race detector, which sees the happens-before edges
// between a write and the read of its bytes only in those methods (tests
// order their steps by what they read from sockets).
const rawIO = false

func (c *rawConn) rawRead(uintptr) bool  { return true }
func (c *rawConn) rawWrite(uintptr) bool { return true }

func (c *rawConn) rawSendRead(uintptr) bool { return true }

// shutDown is not used where sockets are not read raw: the connection is
// closed instead.
func (c *rawConn) shutDown() bool { return false }
