package e2e

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// gatedProxy forwards loopback TCP connections to a server but lets at
// most limit bytes in all flow from clients to it. An upload through it
// starts and then stalls, however fast or slow the machine is, so a test
// can crash the server mid-upload without racing the upload's end.
type gatedProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	left   int64
	conns  []net.Conn
	closed bool
}

// startGatedProxy listens on a free loopback port; the test's cleanup
// closes it and every connection it holds.
func startGatedProxy(t *testing.T, target string, limit int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gatedProxy{ln: ln, target: target, left: limit}
	var wg sync.WaitGroup
	wg.Go(func() { p.serve(&wg) })
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func (p *gatedProxy) serve(wg *sync.WaitGroup) {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			upstream.Close()
			return
		}
		p.conns = append(p.conns, client, upstream)
		p.mu.Unlock()
		closed := make(chan struct{})
		wg.Go(func() {
			// Answers flow freely; when the server goes away, so does
			// the client's connection.
			_, _ = io.Copy(client, upstream)
			close(closed)
			client.Close()
			upstream.Close()
		})
		wg.Go(func() {
			if err := p.forward(upstream, client); errors.Is(err, errGateShut) {
				<-closed
			}
			client.Close()
			upstream.Close()
		})
	}
}

var errGateShut = errors.New("gate shut")

// forward copies client bytes upstream until the shared budget is spent,
// then stops reading, so the client's writes back up.
func (p *gatedProxy) forward(upstream, client net.Conn) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			p.mu.Lock()
			allow := min(int64(n), p.left)
			p.left -= allow
			p.mu.Unlock()
			if _, werr := upstream.Write(buf[:allow]); werr != nil {
				return werr
			}
			if allow < int64(n) {
				return errGateShut
			}
		}
		if err != nil {
			return err
		}
	}
}
