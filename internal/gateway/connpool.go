package gateway

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slipway-ml/slipway/internal/runtime"
)

// This file keeps the upstream connections of the gateway's own HTTP/1.1
// proxy path (proxy.go): one pool of idle keep-alive connections per
// endpoint transport and address. Every connection is dialled with the
// transport's own dialer, so the egress policy a runtime's transport
// enforces at dial time holds for these connections too.

// poolKey names a pool: the endpoint's transport (its dialer and limits)
// and the address its URL names.
type poolKey struct {
	tr   *http.Transport
	host string // the URL's host[:port]
}

// connPools holds the pools in a copy-on-write map read with one atomic
// load, like upstreams.
type connPools struct {
	m  atomic.Pointer[map[poolKey]*connPool]
	mu sync.Mutex // serialises creation
}

func newConnPools() *connPools {
	ps := &connPools{}
	empty := map[poolKey]*connPool{}
	ps.m.Store(&empty)
	return ps
}

// pool returns the pool that reaches ep, or nil when ep must go through
// its transport: anything but plain HTTP/1.1 over a dialer (https, a
// proxy, a custom TLS dialer, HTTP/2 only, credentials in the URL, a
// RoundTripper that is not an *http.Transport). A transport that only
// counts requests (ep.Track set) is looked through; the caller counts.
func (ps *connPools) pool(ep runtime.Endpoint) *connPool {
	rt := ep.Transport
	if u, ok := rt.(interface{ Unwrap() http.RoundTripper }); ok && ep.Track != nil {
		rt = u.Unwrap()
	}
	tr, ok := rt.(*http.Transport)
	u := ep.URL
	if !ok || tr == nil || u == nil || u.Scheme != "http" || u.User != nil || u.Host == "" ||
		tr.Proxy != nil || tr.DialTLSContext != nil || tr.DialTLS != nil || //nolint:staticcheck // DialTLS set means we must not dial
		(tr.Protocols != nil && !tr.Protocols.HTTP1()) {
		return nil
	}
	k := poolKey{tr: tr, host: u.Host}
	if p := (*ps.m.Load())[k]; p != nil {
		return p
	}
	return ps.create(k, u.Hostname(), u.Port())
}

func (ps *connPools) create(k poolKey, host, port string) *connPool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	old := *ps.m.Load()
	if p := old[k]; p != nil {
		return p
	}
	now := time.Now()
	next := make(map[poolKey]*connPool, len(old)+1)
	for kk, p := range old {
		if !p.forgotten(now) {
			next[kk] = p
		}
	}
	if port == "" {
		port = "80"
	}
	p := newConnPool(k.tr, net.JoinHostPort(host, port))
	next[k] = p
	ps.m.Store(&next)
	return p
}

// connPool is the idle connections to one address, most recently used
// last. An idle connection is closed after the transport's
// IdleConnTimeout (90 s when unset) by a timer armed while any are idle.
type connPool struct {
	addr          string // host:port dialled
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle       int
	idleTimeout   time.Duration
	keepAlive     bool
	headerTimeout time.Duration // the transport's ResponseHeaderTimeout
	maxHeader     int64         // the transport's MaxResponseHeaderBytes

	mu       sync.Mutex
	idle     []*upConn
	lastUsed time.Time
	reaper   *time.Timer
	reaping  bool
}

func newConnPool(tr *http.Transport, addr string) *connPool {
	p := &connPool{
		addr:          addr,
		dial:          tr.DialContext,
		maxIdle:       tr.MaxIdleConnsPerHost,
		idleTimeout:   tr.IdleConnTimeout,
		keepAlive:     !tr.DisableKeepAlives,
		headerTimeout: tr.ResponseHeaderTimeout,
		maxHeader:     tr.MaxResponseHeaderBytes,
		lastUsed:      time.Now(),
	}
	if p.dial == nil && tr.Dial != nil { //nolint:staticcheck // honour a transport that only sets Dial
		dial := tr.Dial //nolint:staticcheck
		p.dial = func(_ context.Context, network, addr string) (net.Conn, error) { return dial(network, addr) }
	}
	if p.dial == nil {
		var d net.Dialer // what *http.Transport dials with when given no dialer
		p.dial = d.DialContext
	}
	if p.maxIdle <= 0 {
		p.maxIdle = http.DefaultMaxIdleConnsPerHost
	}
	if p.idleTimeout <= 0 {
		p.idleTimeout = 90 * time.Second
	}
	if p.maxHeader <= 0 {
		p.maxHeader = 10 << 20 // *http.Transport's default
	}
	return p
}

// forgotten reports a pool nothing has used for longer than its idle
// timeout and that holds no connection: dropping it from the map frees
// the transport of a version no longer served.
func (p *connPool) forgotten(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) == 0 && now.Sub(p.lastUsed) > p.idleTimeout
}

// get returns an idle connection, or nil. With check, it also makes sure
// the server has not closed the connection while it sat idle (a system
// call); callers that may resend a request on a dead connection skip it.
// A connection on the raw path (rawio.go) is looked at when the request
// is written instead (tryConn sets lookFirst), where the look cannot
// miss a close.
func (p *connPool) get(now time.Time, check bool) *upConn {
	for {
		p.mu.Lock()
		p.lastUsed = now
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if now.Sub(c.idleSince) <= p.idleTimeout && c.br.Buffered() == 0 && (!check || c.io.rc != nil || !c.peerClosed()) {
			c.reused = true
			return c
		}
		c.close()
	}
}

// dialConn opens a new connection through the transport's dialer.
func (p *connPool) dialConn(ctx context.Context, deadline time.Time) (*upConn, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	nc, err := p.dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{nc: nc, io: newRawConn(nc), limit: -1}
	c.br = bufio.NewReaderSize(c, 4<<10)
	c.bw = bufio.NewWriterSize(c.io, 4<<10)
	c.abortFn = c.abort
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.peekFn = c.peek
		}
	}
	return c, nil
}

// put keeps c for the next request, or closes it when the pool is full.
func (p *connPool) put(c *upConn) {
	if !p.keepAlive {
		c.close()
		return
	}
	now := time.Now()
	c.idleSince = now
	p.mu.Lock()
	if len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	p.lastUsed = now
	if !p.reaping {
		p.reaping = true
		if p.reaper == nil {
			p.reaper = time.AfterFunc(p.idleTimeout, p.reap)
		} else {
			p.reaper.Reset(p.idleTimeout)
		}
	}
	p.mu.Unlock()
}

// reap closes the connections idle for longer than the idle timeout and
// comes back while any remain.
func (p *connPool) reap() {
	now := time.Now()
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleSince) >= p.idleTimeout {
		n++
	}
	stale := make([]*upConn, n)
	copy(stale, p.idle[:n])
	rest := copy(p.idle, p.idle[n:])
	clear(p.idle[rest:])
	p.idle = p.idle[:rest]
	if rest > 0 {
		p.reaper.Reset(p.idle[0].idleSince.Add(p.idleTimeout).Sub(now))
	} else {
		p.reaping = false
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
}

// errHeadersTooLarge ends an answer whose head is larger than the
// transport's MaxResponseHeaderBytes.
var errHeadersTooLarge = errors.New("the server's answer headers are too large")

// upConn is one upstream connection. Reads go through it so that the
// head of an answer can be capped, and so that a server that closed the
// connection before sending a byte can be told from one that broke off.
type upConn struct {
	nc        net.Conn
	io        *rawConn // nc's reads and writes (rawio.go)
	br        *bufio.Reader
	bw        *bufio.Writer
	limit     int64 // bytes the answer's head may still take; -1: no cap
	got       int64 // bytes read since the request was written
	reused    bool  // taken from the pool rather than dialled
	idleSince time.Time
	abortFn   func() // c.abort, bound once
	body      answerBody
	ubody     upstreamBody  // the answer's framing, under body (upstreamhead.go)
	resp      http.Response // the answer being read, reused (readAnswer)

	rc         syscall.RawConn
	peekFn     func(fd uintptr) // c.peek, bound once
	peekBuf    [1]byte
	peekClosed bool
}

func (c *upConn) Read(b []byte) (int, error) {
	if c.limit >= 0 {
		if c.limit == 0 {
			return 0, errHeadersTooLarge
		}
		if int64(len(b)) > c.limit {
			b = b[:c.limit]
		}
	}
	n, err := c.io.Read(b)
	c.got += int64(n)
	if c.limit >= 0 {
		c.limit -= int64(n)
	}
	return n, err
}

// abort makes the connection's pending and future reads and writes fail
// at once: the caller went away.
func (c *upConn) abort() { _ = c.nc.SetDeadline(time.Unix(1, 0)) }

// moveDeadline sets the read deadline to d unless the caller has gone:
// an abort that ran before the move must not be undone by it.
func (c *upConn) moveDeadline(ctx context.Context, d time.Time) {
	_ = c.nc.SetReadDeadline(d)
	if ctx.Err() != nil {
		c.abort()
	}
}

func (c *upConn) close() { _ = c.nc.Close() }

// peerClosed reports whether the server closed an idle connection (or
// sent bytes nobody asked for), without blocking: a reused connection
// the server already gave up on would fail the request sent on it. The
// look goes through Control, not Read: it never waits, and a read
// deadline left from the previous request must not count as a close.
func (c *upConn) peerClosed() bool {
	if c.rc == nil {
		return false
	}
	if err := c.rc.Control(c.peekFn); err != nil {
		return true
	}
	return c.peekClosed
}

// CloseIdleConnections closes the idle upstream connections of the
// gateway's HTTP/1.1 path, as http.Transport's method of that name does
// for the endpoints' transports; calls in flight keep theirs.
func (g *Gateway) CloseIdleConnections() {
	for _, p := range *g.conns.m.Load() {
		p.mu.Lock()
		idle := p.idle
		p.idle = nil
		p.mu.Unlock()
		for _, c := range idle {
			c.close()
		}
	}
}
