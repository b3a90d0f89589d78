package main

import (
	"bufio"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// directProxy forwards each request over a pooled upstream connection in
// the handler's own goroutine: request line, headers and body leave in one
// write, the answer is parsed from the connection's bufio.Reader by
// http.ReadResponse and copied to the client. There are no transport
// goroutines to hand the request to and no per-request proxy to build.
//
// It measures what a custom proxy path on net/http's server can get to;
// it is not a gateway: HTTP/1.1 upstreams only, no timeouts, no retry of
// a pooled connection the upstream closed, no streaming guarantees.
type directProxy struct {
	pools [2]*upstreamPool
}

func newDirectProxy(a, b string) *directProxy {
	return &directProxy{pools: [2]*upstreamPool{
		{addr: a, idle: make(chan *upstreamConn, 256)},
		{addr: b, idle: make(chan *upstreamConn, 256)},
	}}
}

type upstreamPool struct {
	addr string
	idle chan *upstreamConn
}

type upstreamConn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

func (p *upstreamPool) get() (*upstreamConn, error) {
	select {
	case u := <-p.idle:
		return u, nil
	default:
	}
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &upstreamConn{conn: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}

func (p *upstreamPool) put(u *upstreamConn) {
	select {
	case p.idle <- u:
	default:
		_ = u.conn.Close()
	}
}

// bodyPool holds request body buffers.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// hopHeaders are not forwarded (RFC 9110 section 7.6.1), nor the
// framing headers the proxy writes itself.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "Host": true,
}

func (d *directProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := d.pools[0]
	if mrand.IntN(100) >= 90 {
		p = d.pools[1]
	}
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	body, err := readAll((*bp)[:0], r.Body)
	*bp = body[:0]
	if err != nil {
		http.Error(w, "reading the request body", http.StatusBadRequest)
		return
	}
	u, err := p.get()
	if err != nil {
		http.Error(w, "upstream unreachable", http.StatusBadGateway)
		return
	}
	bw := u.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(p.addr)
	bw.WriteString("\r\n")
	for k, vs := range r.Header {
		if hopHeaders[k] {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("Content-Length: ")
	bw.WriteString(strconv.Itoa(len(body)))
	bw.WriteString("\r\n\r\n")
	bw.Write(body)
	if err := bw.Flush(); err != nil {
		_ = u.conn.Close()
		http.Error(w, "upstream write failed", http.StatusBadGateway)
		return
	}
	resp, err := http.ReadResponse(u.br, r)
	if err != nil {
		_ = u.conn.Close()
		http.Error(w, "upstream answer unreadable", http.StatusBadGateway)
		return
	}
	h := w.Header()
	for k, vs := range resp.Header {
		if !hopHeaders[k] || k == "Content-Length" {
			h[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, err = io.Copy(w, resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.Close {
		_ = u.conn.Close()
		return
	}
	p.put(u)
}

// readAll appends r to b until EOF.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
