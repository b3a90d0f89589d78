//go:build !linux

package gateway

// Elsewhere sockets are read and written through net.Conn's methods.
const rawIO = false

func (c *rawConn) rawRead(uintptr) bool  { return true }
func (c *rawConn) rawWrite(uintptr) bool { return true }
