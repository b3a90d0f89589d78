package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file is the gateway's own proxy path for remote versions reached
// over plain HTTP/1.1, which is nearly all of them. httputil.ReverseProxy
// over *http.Transport hands every request to two transport goroutines
// and copies and edits a header map per request; here the handler's
// goroutine writes the request line, headers and body to a pooled
// connection in one write, parses the answer from the connection's
// buffer and copies it to the client through x.w. Timeouts are deadlines
// on the connection: the per-try timeout until the answer's head, then
// the upstream timeout for every pause between chunks. What it does not
// do (https, HTTP/2, proxies, upgrades) goes through the endpoint's
// transport as before (forward.go).

// forwardDirect makes one attempt at a remote version over a pooled
// connection of p, with forwardRemote's contract: an answer is written
// to w unless the attempt failed before its head reached the client.
// A pooled connection the server closed before answering is replaced by
// a new one once, when that cannot send the request twice to a model
// that saw it (the write failed, or the request is idempotent).
func (x *exchange) forwardDirect(w http.ResponseWriter, p *connPool, base *url.URL, t target) failure {
	f, again := x.tryConn(w, p, base, t, false)
	if again {
		f, _ = x.tryConn(w, p, base, t, true)
	}
	return f
}

// tryConn sends the request on one connection: pooled unless dial says
// a new one. again reports a pooled connection that was dead.
func (x *exchange) tryConn(w http.ResponseWriter, p *connPool, base *url.URL, t target, dial bool) (f failure, again bool) {
	l, ctx := &x.leg, x.r.Context()
	now := l.start // the attempt began a moment ago
	if dial {
		now = time.Now()
	}
	deadline := now.Add(l.tryTimeout)
	var c *upConn
	if !dial {
		// An idempotent request finding its pooled connection dead is sent
		// again on a new one; any other is sent only on a connection seen
		// open.
		c = p.get(now, !x.idempotent)
	}
	if c == nil {
		var err error
		if c, err = p.dialConn(ctx, deadline); err != nil {
			if ctx.Err() == nil && !time.Now().Before(deadline) {
				return x.failure(timeoutWaiting, true), false
			}
			return x.failure(err, transportTimeout(err)), false
		}
	}
	// The caller going away ends the wait at once: the connection's
	// deadline moves to the past. The connection is reused only when
	// that never happened (disarm returns true). The deadline is set
	// first: an abort armed for a caller gone already runs at once, and
	// a later move would undo it (so later moves check, moveDeadline).
	_ = c.nc.SetDeadline(deadline)
	stop := x.armAbort(c.abortFn)
	c.got = 0
	// A pooled connection is looked at when the request goes out, for
	// any request: a server's close that came while it sat idle would
	// otherwise keep a held request waiting (rawConn.holdNext).
	c.io.lookFirst = c.reused && c.io.rc != nil
	if err := x.writeRequest(c, p, base, t); err != nil {
		stop.disarm()
		c.close()
		if c.reused && ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return failure{}, true
		}
		return x.failure(headError(err, false, ctx)), false
	}
	l.wrote.Store(true)
	// The transport's response header timeout, like *http.Transport's,
	// counts from the end of the request.
	byHeaderTimeout := false
	if p.headerTimeout > 0 {
		if d := time.Now().Add(p.headerTimeout); d.Before(deadline) {
			c.moveDeadline(ctx, d)
			byHeaderTimeout = true
		}
	}
	c.limit = p.maxHeader
	resp, err := x.readHead(w, c, p)
	if err != nil {
		stop.disarm()
		c.close()
		if c.io.sendErr != nil { // the request did not go out (rawConn.sendRead)
			l.wrote.Store(false)
			if c.reused && ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return failure{}, true
			}
			return x.failure(headError(err, false, ctx)), false
		}
		if c.reused && c.got == 0 && x.idempotent && ctx.Err() == nil &&
			(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
			return failure{}, true
		}
		return x.failure(headError(err, byHeaderTimeout, ctx)), false
	}
	c.limit = -1
	status := resp.StatusCode // resp is the connection's: not read once it is back in the pool
	l.status = status
	if retryableStatus(status) {
		// Decide now, before the client sees anything: an answer another
		// attempt replaces is dropped.
		l.decided = true
		if l.next = x.plan(failure{kind: failStatus, status: status}); l.next != stepNone {
			p.release(c, stop.disarm() && !resp.Close && discard(resp))
			return failure{kind: failStatus, status: status}, false
		}
	}
	// The head is in: from now on the upstream timeout bounds each pause
	// between chunks of the body.
	b := &c.body
	*b = answerBody{c: c, src: resp.Body, idle: x.g.timeout, ctx: ctx}
	if !b.inBuffer() {
		b.last = time.Now()
		c.moveDeadline(ctx, b.last.Add(b.idle))
	} // else the body is in the buffer already: no read will wait
	resp.Body = b
	if t.rewriteInfer {
		if err := x.rewriteInferResponse(resp); err != nil {
			stop.disarm()
			c.close()
			return x.failure(err, errors.Is(err, errUpstreamTimeout) || transportTimeout(err)), false
		}
	}
	x.copyAnswer(w, resp, c, stop)
	p.release(c, stop.disarm() && b.eof && !resp.Close)
	return failure{}, false
}

// abortArm is an abort armed to run when the request's context is
// cancelled: on the gateway's own server a hook of the client's
// connection (srvConn.onCancel), elsewhere context.AfterFunc.
type abortArm struct {
	c    *srvConn
	stop func() bool
}

// armAbort arms f for the request's cancellation.
func (x *exchange) armAbort(f func()) abortArm {
	ctx := x.r.Context()
	if sw, ok := x.rw.ResponseWriter.(*srvWriter); ok && sw.c.ctx == ctx {
		sw.c.onCancel(f)
		return abortArm{c: sw.c}
	}
	return abortArm{stop: context.AfterFunc(ctx, f)}
}

// disarm reports whether disarming kept the abort from running.
func (a abortArm) disarm() bool {
	if a.c != nil {
		return a.c.offCancel()
	}
	return a.stop()
}

// release puts c back in the pool when reusable, else closes it.
func (p *connPool) release(c *upConn, reusable bool) {
	if reusable {
		p.put(c)
		return
	}
	c.close()
}

// Why an upstream wait ended, when the gateway's own limit ended it.
// Unlike a transport's timeout these are not net.Errors, so the answer
// names the gateway's timeout (answerFailure).
var (
	timeoutWaiting = upstreamTimeout("waiting for the answer")
	timeoutSilent  = upstreamTimeout("between chunks of the answer")
)

type upstreamTimeout string

func (e upstreamTimeout) Error() string        { return "upstream timed out " + string(e) }
func (e upstreamTimeout) Is(target error) bool { return target == errUpstreamTimeout }

// headerTimeout is the transport's ResponseHeaderTimeout (an external
// version's timeout option) expiring: a net.Error that times out, as
// *http.Transport reports it.
type headerTimeout struct{}

func (headerTimeout) Error() string   { return "timeout awaiting response headers" }
func (headerTimeout) Timeout() bool   { return true }
func (headerTimeout) Temporary() bool { return true }

// headError names an error met before the answer's head was read, and
// whether it is a timeout.
func headError(err error, byHeaderTimeout bool, ctx context.Context) (error, bool) {
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
		if byHeaderTimeout {
			return headerTimeout{}, true
		}
		return timeoutWaiting, true
	}
	return err, transportTimeout(err)
}

// writeRequest writes the request line, the outbound headers and the
// body, and sends them in one write when they fit the buffer. The
// headers are the inbound ones less hop-by-hop headers, those the
// Connection header names, the caller's credentials and forwarding
// headers (outboundHeaders says why), plus X-Forwarded-For, -Host and
// -Proto as httputil's SetXForwarded sets them.
func (x *exchange) writeRequest(c *upConn, p *connPool, base *url.URL, t target) error {
	r, bw, writes := x.r, c.bw, c.io.writes
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	writeTarget(bw, base, t, r.URL.RawQuery)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(strings.TrimSuffix(base.Host, ":"))
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vs := range r.Header {
		if notForwarded(k) || (conn != nil && hasToken(conn, k)) {
			continue
		}
		for _, v := range vs {
			writeField(bw, k, v)
		}
	}
	writeField(bw, "X-Request-Id", x.id)
	writeField(bw, "Traceparent", x.traceparent)
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		writeField(bw, "X-Forwarded-For", ip)
	}
	writeField(bw, "X-Forwarded-Host", r.Host)
	if r.TLS == nil {
		writeField(bw, "X-Forwarded-Proto", "http")
	} else {
		writeField(bw, "X-Forwarded-Proto", "https")
	}
	if te := r.Header["Te"]; te != nil && hasToken(te, "trailers") {
		writeField(bw, "Te", "trailers")
	}
	if !p.keepAlive {
		writeField(bw, "Connection", "close")
	}
	if t.body != nil || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(t.body)), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	if c.io.writes == writes && len(t.body) <= bw.Available() {
		c.io.holdNext() // a whole request: it goes out with the wait for its answer
	}
	bw.Write(t.body)
	err := bw.Flush()
	c.io.hold = false
	return err
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// notForwarded names the inbound headers the gateway drops or writes
// itself (canonical keys).
func notForwarded(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", // hop-by-hop
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", // set anew
		"Authorization", "Cookie", "Accept-Encoding", "X-Slipway-Environment", // outboundHeaders
		"X-Request-Id", "Traceparent", "Host", "Content-Length",
		"Expect": // the body is in hand: nothing to wait for
		return true
	}
	return false
}

// hopByHop names the answer headers that stay with the connection they
// came on (RFC 9110 section 7.6.1).
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// hasToken reports whether a comma-separated header lists token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), token) {
				return true
			}
		}
	}
	return false
}

// writeTarget writes the request target: the base URL's path joined with
// the target's, escaped as the URL would escape it, and the query.
func writeTarget(bw *bufio.Writer, base *url.URL, t target, rawQuery string) {
	if base.RawPath == "" && t.upstreamRawPath == "" && plainPath(base.Path) && plainPath(t.upstreamPath) &&
		(base.Path != "" || t.upstreamPath != "") {
		bw.WriteString(strings.TrimSuffix(base.Path, "/"))
		bw.WriteString(t.upstreamPath)
	} else {
		u := url.URL{Path: joinPath(base.Path, t.upstreamPath)}
		if t.upstreamRawPath != "" || base.RawPath != "" {
			u.RawPath = joinPath(base.EscapedPath(), orPath(t.upstreamRawPath, t.upstreamPath))
		}
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		bw.WriteString(p)
	}
	if q := cleanQuery(rawQuery); q != "" {
		bw.WriteByte('?')
		bw.WriteString(q)
	}
}

// plainPath reports a path that URL escaping leaves as it is.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		switch c {
		case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
			continue
		}
		return false
	}
	return true
}

// cleanQuery re-encodes a query with a semicolon or a bad escape, as
// httputil.ReverseProxy does, so the upstream cannot read it differently.
func cleanQuery(q string) string {
	for i := 0; i < len(q); i++ {
		switch {
		case q[i] == ';', q[i] == '%' && (i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2])):
			v, _ := url.ParseQuery(q)
			return v.Encode()
		}
	}
	return q
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// readHead reads the answer's head, passing 1xx informational answers on
// to the client (101 was not asked for: an error).
func (x *exchange) readHead(w http.ResponseWriter, c *upConn, p *connPool) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := readAnswer(c.br, x.r, &c.ubody, &c.resp)
		if err != nil {
			return nil, err
		}
		code := resp.StatusCode
		switch {
		case code == http.StatusSwitchingProtocols:
			return nil, errors.New("the server switched protocols, which the gateway did not ask for")
		case code < 100 || code >= 200:
			return resp, nil
		case n >= 5:
			return nil, errors.New("the server sent more than 5 informational (1xx) answers")
		}
		c.limit = p.maxHeader
		forwardInformational(w, code, resp.Header)
	}
}

// forwardInformational sends a 1xx answer with its headers, then puts
// back the headers the final answer is built on.
func forwardInformational(w http.ResponseWriter, code int, h http.Header) {
	out := w.Header()
	saved := make(http.Header, len(h))
	for k, vs := range h {
		saved[k] = out[k]
		out[k] = vs
	}
	w.WriteHeader(code)
	for k, vs := range saved {
		if vs == nil {
			delete(out, k)
		} else {
			out[k] = vs
		}
	}
}

// discard reads a small replaced answer to its end, so that its
// connection can carry the next request.
func discard(resp *http.Response) bool {
	if resp.ContentLength < 0 || resp.ContentLength > 64<<10 {
		return false
	}
	_, err := io.Copy(io.Discard, resp.Body)
	return err == nil
}

// copyAnswer sends the answer's head and body to w. Every chunk is
// flushed as it arrives unless it completes a body of known length (the
// handler's return sends that). An answer that breaks off, or a client
// that stops reading, aborts the client's connection: it must see the
// answer cut off, never a shorter one that looks whole.
func (x *exchange) copyAnswer(w http.ResponseWriter, resp *http.Response, c *upConn, stop abortArm) {
	h := w.Header()
	conn := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if hopByHop(k) || (conn != nil && hasToken(conn, k)) {
			continue
		}
		if prev := h[k]; prev != nil {
			h[k] = append(prev, vs...)
		} else {
			h[k] = vs
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	fl, _ := w.(interface{ FlushError() error })
	if announced > 0 && fl != nil {
		_ = fl.FlushError() // chunked, so the trailers can follow
	}
	bp := x.g.buffers.get()
	defer x.g.buffers.put(bp)
	buf := *bp
	left := resp.ContentLength
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				x.abortAnswer(c, stop, werr)
			}
			if left > 0 {
				left -= int64(n)
			}
			if left != 0 && fl != nil {
				if ferr := fl.FlushError(); ferr != nil {
					x.abortAnswer(c, stop, ferr)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			x.abortAnswer(c, stop, err)
		}
	}
	if len(resp.Trailer) == announced {
		for k, vs := range resp.Trailer {
			h[k] = append(h[k], vs...)
		}
	} else {
		for k, vs := range resp.Trailer {
			h[http.TrailerPrefix+k] = append(h[http.TrailerPrefix+k], vs...)
		}
	}
}

// abortAnswer ends an answer that broke off after its head reached the
// client: the connection is closed, the cause named for metrics and
// logs (499 the caller went away, 504 the upstream fell silent, else 502
// in finish), and the client's connection aborted.
func (x *exchange) abortAnswer(c *upConn, stop abortArm, err error) {
	stop.disarm()
	c.close()
	if x.w.status != 0 && x.status == 0 {
		switch {
		case x.r.Context().Err() != nil:
			x.status = 499
		case errors.Is(err, errUpstreamTimeout):
			x.status = http.StatusGatewayTimeout
		}
	}
	panic(http.ErrAbortHandler)
}

// answerBody reads the answer's body from the connection, moving the
// read deadline before each read so that the upstream timeout bounds
// silence, not the length of a stream. It remembers whether the body
// ended, which makes the connection reusable. Close does nothing: what
// is left of an unfinished body goes with its connection.
type answerBody struct {
	c    *upConn
	src  io.ReadCloser
	idle time.Duration
	ctx  context.Context
	last time.Time // when the deadline last moved
	eof  bool
}

func (b *answerBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	// Moving the deadline costs a timer update; within a millisecond of
	// the last move it is left, which shortens the limit by as much. A
	// body all in the buffer needs none (nor the clock read).
	if !b.inBuffer() {
		if now := time.Now(); now.Sub(b.last) > time.Millisecond {
			b.last = now
			_ = b.c.nc.SetReadDeadline(now.Add(b.idle))
			if err := b.ctx.Err(); err != nil {
				return 0, err // went away before the move: its abort was undone
			}
		}
	}
	n, err := b.src.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded) && b.ctx.Err() == nil:
		err = timeoutSilent
	}
	return n, err
}

func (b *answerBody) Close() error { return nil }

// inBuffer reports whether what is left of the body is all in the
// connection's buffer: reading it will not touch the socket.
func (b *answerBody) inBuffer() bool {
	u, ok := b.src.(*upstreamBody)
	return ok && u.chunks == nil && u.left >= 0 && u.left <= int64(u.br.Buffered())
}

// whole returns the body when all of it is in the connection's buffer,
// without reading it; take then reads it.
func (b *answerBody) whole() ([]byte, bool) {
	if u, ok := b.src.(*upstreamBody); ok && !b.eof {
		return u.whole()
	}
	return nil, false
}

func (b *answerBody) take() {
	b.src.(*upstreamBody).take()
	b.eof = true
}
