package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file is the gateway's own HTTP/1.1 server (ADR 011): one goroutine
// per connection reads a request head straight from the connection's
// buffer, runs the handler with a reused *http.Request and a
// responseWriter of its own, and writes the answer with one write. It
// does what the gateway's clients need of net/http's server — keep-alive,
// pipelined requests answered in order, Content-Length and chunked
// bodies, Expect: 100-continue, HTTP/1.0, Connection: close, header size
// limits, read and idle timeouts, graceful shutdown — without the
// per-request background read, context, header clone and response
// allocations that cost net/http's server about as much per request as
// nginx spends proxying one.
//
// A handler run by this server must not keep the *http.Request, its
// Header or URL after it returns: they are reused for the connection's
// next request. The gateway's handlers copy what they keep.

// ServerConfig bounds the gateway's HTTP/1.1 server. Zero values take the
// defaults.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's head from its first
	// byte (default 10 s); a client that is slower gets 408.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sent no new request
	// for this long (default 2 min).
	IdleTimeout time.Duration
	// BodyTimeout bounds every pause while a request body is read
	// (default 1 min); a body can take longer as long as it keeps coming.
	BodyTimeout time.Duration
	// MaxHeaderBytes caps a request's head, request line included
	// (default 1 MiB, as net/http's); a larger one gets 431.
	MaxHeaderBytes int
	// Log gets the server's own warnings (a handler's panic).
	Log *slog.Logger

	// watchAfter is how often the server looks for requests in flight
	// long enough to watch their client for going away (default 100 ms);
	// tests shorten it.
	watchAfter time.Duration
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = time.Minute
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 1 << 20
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.watchAfter <= 0 {
		c.watchAfter = 100 * time.Millisecond
	}
	return c
}

// Server serves an http.Handler over HTTP/1.1 on listeners it is given.
// Shutdown stops it gracefully; Close at once.
type Server struct {
	handler http.Handler
	cfg     ServerConfig

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*srvConn]struct{}
	watching  bool // the watcher loop runs
	shutting  atomic.Bool
	done      chan struct{}              // closed by Shutdown or Close: stops the watcher loop
	coarse    atomic.Pointer[coarseTime] // the watcher loop's clock (serverwriter.go)
	ticking   atomic.Bool                // the watcher loop moves coarse
}

// NewServer returns a server that runs h for every request.
func NewServer(h http.Handler, c ServerConfig) *Server {
	return &Server{
		handler: h, cfg: c.withDefaults(),
		listeners: map[net.Listener]struct{}{}, conns: map[*srvConn]struct{}{},
		done: make(chan struct{}),
	}
}

// Serve accepts connections on ln until Shutdown or Close, serving each
// in its own goroutine. It returns http.ErrServerClosed after those, and
// the listener's error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return http.ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	if !s.watching {
		s.watching = true
		go s.watchLoop()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors, or a transient failure: wait a
				// little rather than spin, as net/http's server does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
				case <-s.done:
				}
				continue
			}
			return err
		}
		backoff = 0
		c := newSrvConn(s, nc)
		if !s.track(c) {
			_ = nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

func (s *Server) track(c *srvConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) forget(c *srvConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// stop refuses new connections and requests: listeners close, and the
// watcher loop ends.
func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if !s.shutting.Swap(true) {
		close(s.done)
	}
	for ln := range s.listeners {
		if cerr := ln.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// Shutdown stops accepting connections, closes those waiting for a
// request, and waits for requests in flight to be answered (their
// connections then close). When ctx ends first, the remaining
// connections are closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	_ = s.stop()
	wait := time.Millisecond
	for {
		if s.closeIdle() {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.closeAll()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Close closes the listeners and every connection at once; requests in
// flight see their context cancelled and their connection closed.
func (s *Server) Close() error {
	err := s.stop()
	s.closeAll()
	return err
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stIdle, stClosed) {
			_ = c.nc.SetReadDeadline(aLongTimeAgo) // wakes its read
		}
	}
	return len(s.conns) == 0
}

func (s *Server) closeAll() {
	s.mu.Lock()
	conns := make([]*srvConn, 0, len(s.conns))
	for c := range s.conns {
		st := c.state.Load()
		for st != stHijacked && !c.state.CompareAndSwap(st, stClosed) {
			st = c.state.Load()
		}
		conns = append(conns, c)
	}
	s.mu.Unlock()
	// Outside the lock: closing a socket waits for a callback reading it
	// to return (the work after a held answer runs in one, heldSent).
	for _, c := range conns {
		// The connection closes before its request's context is
		// cancelled: a handler that returns at the cancel must not get
		// an answer out first.
		c.kill()
		c.cancelWith(errServerClosed)
	}
}

// kill ends the connection at once. A socket on the raw path is shut
// down rather than closed: closing waits for a callback that reads it to
// return (the work after a held answer runs in one, heldSent), while a
// shut-down socket wakes every wait, and the raw reads and writes fail
// from then on, whatever deadline is set later (rawConn.shutDown); the
// connection's goroutine closes it as it leaves.
func (c *srvConn) kill() {
	if c.raw.rc != nil && c.state.Load() != stHijacked && c.raw.shutDown() {
		_ = c.nc.SetDeadline(aLongTimeAgo)
		return
	}
	_ = c.nc.Close()
}

var errServerClosed = errors.New("gateway server closed")

// aLongTimeAgo is a deadline in the past: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// Connection states. The connection's goroutine moves between them; the
// watcher loop moves stReady to stWatching, Shutdown stIdle to stClosed.
const (
	stIdle     int32 = iota // waiting for the first byte of a request
	stHead                  // reading a head, or between requests
	stBody                  // in the handler, the body not read to its end
	stReady                 // in the handler, the body read
	stWatching              // in the handler, a watcher reads the connection
	stClosed                // closing: shut down while idle, or closed
	stHijacked
)

// srvConn is one client connection.
type srvConn struct {
	s      *Server
	nc     net.Conn
	raw    *rawConn // nc's reads and writes, under rd and bw
	rd     connReader
	bw     *bufio.Writer
	remote string
	ctx    context.Context
	cancel context.CancelCauseFunc

	state   atomic.Int32
	seq     atomic.Uint64 // requests started
	seenSeq uint64        // the watcher loop's: seq at its previous look

	// watchMu orders the watcher's start against its stop; watchDone
	// gets a value when the watcher's read returned.
	watchMu   sync.Mutex
	watchDone chan struct{}
	watchBuf  [1]byte
	watchGot  bool        // the watcher read a byte: the next request's first
	gone      atomic.Bool // the client closed its side

	// hook is the abort a handler registered for its request's context
	// (onCancel); hookFired says cancel ran it.
	hookMu    sync.Mutex
	hook      func()
	armed     bool // onCancel was called, offCancel not yet
	hookFired bool
	cancelled bool

	// The read deadline last set, and whether something else moved it
	// since (header or body reads, the watcher).
	readDeadline  time.Time
	deadlineMoved bool

	// Reused for every request on the connection.
	req         *http.Request
	hdr         http.Header
	slab        []string
	body        bodyReader
	w           srvWriter
	hd          requestHead
	u           url.URL
	continue100 bool        // 100 Continue is owed before the body's first read
	then        afterAnswer // to run once the held answer is out (sendComplete)
}

func newSrvConn(s *Server, nc net.Conn) *srvConn {
	c := &srvConn{s: s, nc: nc, remote: nc.RemoteAddr().String(), watchDone: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.raw = newRawConn(nc)
	c.raw.onSent = c.heldSent
	c.rd.nc = c.raw
	c.req = (&http.Request{}).WithContext(c.ctx)
	c.hdr = make(http.Header, 16)
	c.body.c = c
	c.w.c = c
	c.w.h = make(http.Header, 16)
	c.state.Store(stHead)
	return c
}

// cancelWith cancels the connection's context, which its request's is,
// and runs the abort hook registered for it.
func (c *srvConn) cancelWith(cause error) {
	c.cancel(cause)
	c.hookMu.Lock()
	f := c.hook
	c.hook, c.hookFired, c.cancelled = nil, c.hookFired || f != nil, true
	c.hookMu.Unlock()
	if f != nil {
		f()
	}
}

// onCancel runs f when the request's context is cancelled, as
// context.AfterFunc(ctx, f) does, without its allocation and its
// registration with the context: the proxy path arms one per upstream
// attempt. One hook at a time; offCancel disarms it.
func (c *srvConn) onCancel(f func()) {
	c.hookMu.Lock()
	c.armed = true
	if c.cancelled {
		c.hookFired = true
		c.hookMu.Unlock()
		f()
		return
	}
	c.hook, c.hookFired = f, false
	c.hookMu.Unlock()
}

// offCancel disarms the hook and reports whether that kept it from
// running, as the stop function of context.AfterFunc does: false when it
// ran, or was disarmed already.
func (c *srvConn) offCancel() bool {
	c.hookMu.Lock()
	stopped := c.armed && !c.hookFired
	c.hook, c.hookFired, c.armed = nil, false, false
	c.hookMu.Unlock()
	return stopped
}

// serve answers requests until the connection closes or must.
func (c *srvConn) serve() {
	c.rd.buf = getReadBuf()
	c.bw = getWriter(c.rd.nc)
	defer func() {
		if c.state.Load() != stHijacked {
			_ = c.raw.flushHeld()
			c.runThen()
			closeLingering(c.nc, !c.body.done)
			putReadBuf(c.rd.buf)
			putWriter(c.bw)
		}
		c.rd.buf, c.bw = nil, nil
		c.cancelWith(errServerClosed)
		c.s.forget(c)
	}()
	for {
		if !c.waitRequest() {
			return
		}
		if !c.readRequest() {
			return
		}
		if !c.runHandler() {
			return
		}
	}
}

// waitRequest waits for a request's first byte, for IdleTimeout at most.
//
// An answer held by sendComplete goes out from inside this wait, and the
// connection turns idle then (heldSent). The wait then skips the read
// that would find nothing (rawConn.holdAnswer); what a client sent
// before the answer went out and after the last read — a pipelined
// request, or the end of the connection — may go unseen until the next
// readiness, so that wait is bounded by heldWait, after which the socket
// is read the ordinary way.
func (c *srvConn) waitRequest() bool {
	if c.rd.buffered() > 0 {
		// A watcher read the next request's first byte after the answer
		// was held: no wait, so the answer goes out now.
		if c.raw.holding() {
			if c.raw.flushHeld() != nil {
				return false
			}
			c.runThen()
		}
		return true
	}
	c.rd.reset()
	held := c.raw.holding()
	if !held {
		c.state.Store(stIdle)
	}
	if c.s.shutting.Load() {
		return false
	}
	// The idle deadline moves only when it is more than a second stale,
	// or something else moved it: one timer update per second, not one
	// per request. The coarse clock is precise enough for that. The
	// bound of a held answer's wait moves at most every heldWait/2.
	now := c.s.now().t
	idle := now.Add(c.s.cfg.IdleTimeout)
	switch want := now.Add(min(heldWait, c.s.cfg.IdleTimeout)); {
	case held && (c.deadlineMoved || c.readDeadline.After(want) || want.Sub(c.readDeadline) > heldWait/2):
		c.setReadDeadline(want)
	case !held && (c.deadlineMoved || idle.Sub(c.readDeadline) > time.Second):
		c.setReadDeadline(idle)
	}
	if c.state.Load() == stClosed { // shut down while the deadline moved
		return false
	}
	// A read error that came with data is met again by the next read.
	n, err := c.rd.fill()
	if n == 0 && held && errors.Is(err, errDeadline) {
		if c.raw.holding() { // the bound passed before the answer went out
			if c.raw.flushHeld() != nil || !c.heldSent() {
				return false
			}
		}
		if c.state.Load() == stIdle {
			// Nothing woke the wait: look at the socket, and wait the
			// rest of the idle time as usual. A shutdown that closed the
			// connection meanwhile set a deadline this one replaces.
			c.setReadDeadline(idle)
			if c.state.Load() == stClosed {
				return false
			}
			n, _ = c.rd.fill()
		}
	}
	return n > 0 && c.state.CompareAndSwap(stIdle, stHead)
}

// heldWait bounds the wait that follows a held answer (waitRequest); the
// bound moves when it is more than heldWait/2 stale, and the coarse clock
// it is set by lags by up to 100 ms.
const heldWait = 300 * time.Millisecond

// heldSent runs once a held answer is out, inside the wait for the next
// request: the connection is idle from then on, and ends when the server
// is shutting down.
func (c *srvConn) heldSent() bool {
	c.runThen() // first: a connection turned idle may be closed, and its close waits for this callback
	return c.state.CompareAndSwap(stHead, stIdle) && !c.s.shutting.Load()
}

// runThen runs the work a handler left until its answer was out. A panic
// there is logged: the answer is out, and the connection carries on.
func (c *srvConn) runThen() {
	t := c.then
	if t == nil {
		return
	}
	c.then = nil
	defer func() {
		if p := recover(); p != nil {
			c.s.cfg.Log.Error("panic after an answer was sent", "remote", c.remote, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	t.afterAnswer()
}

func (c *srvConn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	c.readDeadline, c.deadlineMoved = t, false
}

// readRequest reads a head and readies the request; a bad head is
// answered and ends the connection.
func (c *srvConn) readRequest() bool {
	head, herr := c.readHead()
	if herr != nil {
		if herr.status != 0 {
			c.refuse(herr.status, herr.msg)
		}
		return false
	}
	clear(c.hdr)
	clear(c.slab)
	var err *requestError
	c.hd, c.slab, err = parseRequestHead(head, c.hdr, c.slab[:0])
	if err != nil {
		c.refuse(err.status, err.msg)
		return false
	}
	r := c.req
	host, err := parseTarget(c.hd.target, &c.u)
	if err != nil {
		c.refuse(err.status, err.msg)
		return false
	}
	if host == "" {
		host = c.hd.host
	}
	r.Method, r.URL, r.RequestURI, r.Host, r.RemoteAddr = c.hd.method, &c.u, c.hd.target, host, c.remote
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, c.hd.minor
	if c.hd.minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.Header, r.Trailer, r.TLS, r.Form, r.PostForm, r.MultipartForm, r.Response = c.hdr, nil, nil, nil, nil, nil, nil
	r.Close = c.hd.connClose || (c.hd.minor == 0 && !c.hd.connKeepAlive)
	r.GetBody, r.Pattern, r.Cancel = nil, "", nil //nolint:staticcheck // Cancel is reset, not used
	r.TransferEncoding = nil
	c.body.reset(c.hd)
	c.continue100 = false
	switch {
	case c.hd.chunked:
		r.ContentLength, r.TransferEncoding, r.Body = -1, chunkedEncoding, &c.body
	case c.hd.contentLength > 0:
		r.ContentLength, r.Body = c.hd.contentLength, &c.body
	default:
		r.ContentLength, r.Body = 0, http.NoBody
	}
	if r.Body != http.NoBody && c.hd.expectContinue && c.hd.minor == 1 {
		c.continue100 = true
	}
	return true
}

var chunkedEncoding = []string{"chunked"}

// readHead returns the next request's head as a string (the request's
// one allocation of its strings) and consumes it from the buffer. A nil
// status in the error means the connection ends without an answer.
func (c *srvConn) readHead() (string, *requestError) {
	max := c.s.cfg.MaxHeaderBytes
	scanned, timed := 0, false
	for {
		b := c.rd.bytes()
		if n := headEnd(b, headRescan(scanned)); n >= 0 {
			if n > max {
				return "", &requestError{http.StatusRequestHeaderFieldsTooLarge, "request header fields too large"}
			}
			// Blank lines before a request line are allowed (RFC 9112 2.2).
			s := string(b[:n])
			c.rd.consume(n)
			for len(s) > 0 && (s[0] == '\r' || s[0] == '\n') {
				s = s[1:]
			}
			if s == "" {
				scanned = 0
				continue
			}
			return s, nil
		}
		scanned = len(b)
		if scanned > max {
			return "", &requestError{http.StatusRequestHeaderFieldsTooLarge, "request header fields too large"}
		}
		if !timed {
			timed = true
			c.setReadDeadline(time.Now().Add(c.s.cfg.ReadHeaderTimeout))
			c.deadlineMoved = true
		}
		c.rd.makeRoom(max + 4)
		if _, err := c.rd.fill(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && c.state.Load() != stClosed {
				return "", &requestError{http.StatusRequestTimeout, "the request head took too long to arrive"}
			}
			return "", &requestError{}
		}
	}
}

// refuse answers a request the handler never saw, and ends the
// connection.
func (c *srvConn) refuse(status int, msg string) {
	w := c.bw
	w.WriteString("HTTP/1.1 ")
	w.WriteString(statusLine(status))
	w.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ")
	w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(len(msg)+1), 10))
	w.WriteString("\r\n\r\n")
	w.WriteString(msg)
	w.WriteString("\n")
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.ReadHeaderTimeout))
	_ = w.Flush()
}

// runHandler runs the handler for the request read, finishes its answer
// and reports whether the connection carries another request.
func (c *srvConn) runHandler() (keep bool) {
	c.seq.Add(1)
	if c.req.Body == http.NoBody {
		c.state.Store(stReady)
	} else {
		c.state.Store(stBody)
	}
	w := &c.w
	w.reset(c.req.Method == http.MethodHead, c.hd.minor)
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				c.s.cfg.Log.Error("panic serving a request", "remote", c.remote, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			c.stopWatch()
			w.abort()
			keep = false
		}
	}()
	c.s.handler.ServeHTTP(w, c.req)
	if c.state.Load() == stHijacked {
		return false
	}
	c.stopWatch()
	return c.finishRequest()
}

// finishRequest completes the answer and readies the connection for the
// next request, when it can carry one.
func (c *srvConn) finishRequest() bool {
	w := &c.w
	keep := !c.req.Close && !c.s.shutting.Load() && !c.gone.Load()
	// A body the handler left unread is read and dropped when it is short
	// and known; otherwise the connection ends, since its next bytes
	// would be the rest of the body.
	discard := false
	if !c.body.done {
		switch {
		case c.continue100:
			keep = false // the client waits for 100 Continue, or sends the body: either way, close
		case !c.body.chunked && c.body.left <= maxDiscard && c.body.err == nil:
			discard = true
		default:
			keep = false
		}
	}
	if !w.finish(keep) {
		return false
	}
	if discard && !c.body.discard() {
		return false
	}
	return true
}

// maxDiscard is the longest unread body the server reads to keep the
// connection (net/http's server reads 256 KiB).
const maxDiscard = 256 << 10

// Serve serves the gateway on ln with its own HTTP/1.1 server until
// Shutdown; it returns http.ErrServerClosed then. ServeHTTP stays for
// other servers and in-process callers.
func (g *Gateway) Serve(ln net.Listener) error { return g.srv.Serve(ln) }

// Shutdown stops Serve gracefully: no new connections, idle ones closed,
// requests in flight answered. When ctx ends first, the connections left
// are closed and ctx's error returned. Shadow mirrors still queued are
// Close's business.
func (g *Gateway) Shutdown(ctx context.Context) error { return g.srv.Shutdown(ctx) }

// Server is the gateway's own HTTP/1.1 server (Config.Server), for a
// caller that manages listeners and shutdown itself.
func (g *Gateway) Server() *Server { return g.srv }
