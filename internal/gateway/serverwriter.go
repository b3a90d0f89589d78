package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// This file is the writing side of the gateway's server (server.go): the
// http.ResponseWriter handlers write to. The head is serialised when the
// handler calls WriteHeader (so later changes to the header map are not
// sent, as with net/http, without cloning the map); the body is held
// until the handler returns, flushes, or writes more than the buffer
// holds, so that a small answer gets a Content-Length and leaves with its
// head in one write. Longer or flushed answers are chunked (HTTP/1.1) or
// end with the connection (HTTP/1.0).

// srvWriter is the server's http.ResponseWriter, reused per request.
type srvWriter struct {
	c      *srvConn
	h      http.Header
	status int
	head   []byte // status line and fields, without framing and blank line
	body   []byte // held until the answer is committed

	isHead, http10   bool
	bodyAllowed      bool
	committed        bool
	chunked          bool
	closeDelimited   bool // HTTP/1.0 with no length: the body ends with the connection
	closeAfter       bool // the handler said Connection: close
	hasDate, hasType bool
	declared         int64 // the handler's Content-Length, -1 none
	written          int64 // body bytes the handler wrote
	trailers         []string
	err              error // writing to the client failed
	hijacked         bool
	keep             bool // the head said the connection stays open
}

var (
	_ http.ResponseWriter = (*srvWriter)(nil)
	_ http.Flusher        = (*srvWriter)(nil)
	_ http.Hijacker       = (*srvWriter)(nil)
)

const bodyHold = 4 << 10 // body bytes held before the answer commits

func (w *srvWriter) reset(isHead bool, minor int) {
	clear(w.h)
	*w = srvWriter{c: w.c, h: w.h, head: w.head[:0], body: w.body[:0], trailers: w.trailers[:0],
		isHead: isHead, http10: minor == 0, declared: -1}
	if w.body == nil {
		w.body = make([]byte, 0, bodyHold)
	}
}

func (w *srvWriter) Header() http.Header { return w.h }

func (w *srvWriter) WriteHeader(code int) {
	if w.hijacked || w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.status = code
	w.bodyAllowed = code != http.StatusNoContent && code != http.StatusNotModified && code >= 200
	b := append(w.head[:0], "HTTP/1.1 "...)
	b = append(b, statusLine(code)...)
	b = append(b, "\r\n"...)
	for k, vs := range w.h {
		switch k {
		case "Transfer-Encoding":
			continue // the server frames the body
		case "Connection":
			w.closeAfter = w.closeAfter || hasToken(vs, "close")
			continue
		case "Content-Length":
			if !w.bodyAllowed && code != http.StatusNotModified {
				continue
			}
			if len(vs) > 0 {
				if n, ok := parseContentLength(trimOWS(vs[0])); ok {
					w.declared = n
					b = appendField(b, k, vs[0])
				}
			}
			continue
		case "Date":
			w.hasDate = true
		case "Content-Type":
			w.hasType = true
		case "Trailer":
			for _, v := range vs {
				for f := range strings.SplitSeq(v, ",") {
					if f = textproto.TrimString(f); f != "" {
						w.trailers = append(w.trailers, textproto.CanonicalMIMEHeaderKey(f))
					}
				}
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !isToken(k) {
			continue
		}
		for _, v := range vs {
			b = appendField(b, k, v)
		}
	}
	if !w.hasType {
		// A Content-Type key present with no value says: do not sniff.
		_, w.hasType = w.h["Content-Type"]
	}
	w.head = b
}

// appendField appends "k: v\r\n", line breaks in v turned to spaces so a
// value cannot start a field of its own.
func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	n := len(b)
	b = append(b, v...)
	if strings.ContainsAny(v, "\r\n") {
		for i := n; i < len(b); i++ {
			if b[i] == '\r' || b[i] == '\n' {
				b[i] = ' '
			}
		}
	}
	return append(b, "\r\n"...)
}

// informational sends a 1xx answer with the fields set now.
func (w *srvWriter) informational(code int) {
	if code == http.StatusContinue {
		if !w.c.continue100 {
			return // not asked for, or sent already
		}
		w.c.continue100 = false
	}
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(statusLine(code))
	bw.WriteString("\r\n")
	var b []byte
	for k, vs := range w.h {
		if isToken(k) && !strings.HasPrefix(k, http.TrailerPrefix) {
			for _, v := range vs {
				b = appendField(b[:0], k, v)
				bw.Write(b)
			}
		}
	}
	bw.WriteString("\r\n")
	w.setErr(bw.Flush())
}

func (w *srvWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	w.written += int64(len(p))
	if w.isHead {
		if !w.committed && len(w.body)+len(p) <= cap(w.body) {
			w.body = append(w.body, p...) // to sniff its type; never sent
		}
		return len(p), nil
	}
	if !w.committed {
		if len(w.body)+len(p) <= cap(w.body) {
			w.body = append(w.body, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// WriteString lets io.WriteString skip a copy into a []byte.
func (w *srvWriter) WriteString(s string) (int, error) {
	if !w.committed && w.status != 0 && w.bodyAllowed && !w.isHead && w.err == nil &&
		(w.declared < 0 || w.written+int64(len(s)) <= w.declared) && len(w.body)+len(s) <= cap(w.body) {
		w.written += int64(len(s))
		w.body = append(w.body, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody sends p after the head, framed as the answer is.
func (w *srvWriter) writeBody(p []byte) {
	if len(p) == 0 || w.isHead || w.err != nil {
		return
	}
	bw := w.c.bw
	var err error
	if w.chunked {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err = bw.WriteString("\r\n")
	} else {
		_, err = bw.Write(p)
	}
	w.setErr(err)
}

// commit writes the head, with the body's framing, and the body held.
// final says the handler returned: the body is whole.
func (w *srvWriter) commit(final bool) {
	w.committed = true
	c := w.c
	b := w.head
	switch {
	case !w.bodyAllowed || w.declared >= 0:
	case final && len(w.trailers) == 0:
		n := int64(len(w.body))
		if w.isHead {
			n = w.written
		}
		if n > 0 || !w.isHead {
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, n, 10)
			b = append(b, "\r\n"...)
		}
	case w.http10:
		w.closeDelimited = true
	default:
		w.chunked = true
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if !w.hasType && w.bodyAllowed && len(w.body) > 0 {
		b = appendField(b, "Content-Type", http.DetectContentType(w.body))
	}
	if !w.hasDate {
		b = append(b, "Date: "...)
		b = append(b, c.s.now().date...)
		b = append(b, "\r\n"...)
	}
	w.keep = !c.req.Close && !w.closeAfter && !w.closeDelimited && !c.s.shutting.Load() && !c.gone.Load() &&
		(c.body.done || !c.continue100)
	switch {
	case !w.keep:
		b = append(b, "Connection: close\r\n"...)
	case w.http10:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	w.head = b
	c.bw.Write(b)
	if len(w.body) > 0 && !w.isHead {
		if w.chunked {
			c.bw.Write(strconv.AppendInt(c.bw.AvailableBuffer(), int64(len(w.body)), 16))
			c.bw.WriteString("\r\n")
			c.bw.Write(w.body)
			c.bw.WriteString("\r\n")
		} else {
			c.bw.Write(w.body)
		}
	}
	w.body = w.body[:0]
}

func (w *srvWriter) setErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

// FlushError sends what the handler wrote so far.
func (w *srvWriter) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	if w.err == nil {
		w.setErr(w.c.bw.Flush())
	}
	return w.err
}

func (w *srvWriter) Flush() { _ = w.FlushError() }

// finish completes the answer after the handler returned: the head and
// held body when nothing was sent yet, else the last chunk and trailers.
// keep is whether the server would carry another request; it reports
// whether the connection may.
func (w *srvWriter) finish(keep bool) bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !keep {
		w.c.req.Close = true // commit says Connection: close
	}
	if !w.committed {
		w.commit(true)
	} else if w.chunked && w.err == nil {
		bw := w.c.bw
		bw.WriteString("0\r\n")
		var b []byte
		for _, k := range w.trailers {
			for _, v := range w.h[k] {
				b = appendField(b[:0], k, v)
				bw.Write(b)
			}
		}
		for k, vs := range w.h {
			if tk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && isToken(tk) {
				for _, v := range vs {
					b = appendField(b[:0], tk, v)
					bw.Write(b)
				}
			}
		}
		bw.WriteString("\r\n")
	}
	if w.err == nil {
		w.setErr(w.c.bw.Flush())
	}
	short := w.declared >= 0 && w.written < w.declared && w.bodyAllowed && !w.isHead
	return keep && w.keep && w.err == nil && !short
}

// sendComplete sends an answer whose body the handler has written to its
// declared length, before the handler returns: the gateway's metrics
// and access log then run after the client has its answer, as nginx
// logs after sending. Any other answer waits for finish.
//
// When the connection carries on, the answer is held instead, to go out
// from inside the wait for the next request (waitRequest, rawConn.
// holdAnswer), which then needs no read that finds nothing; then (when
// not nil) runs once it is out, and sendComplete reports true: the
// handler leaves its bookkeeping to then and returns. then must not use
// the request's connection; it may use the request until it returns.
func (w *srvWriter) sendComplete(then afterAnswer) (held bool) {
	if w.status == 0 || w.committed || w.err != nil || w.isHead || !w.bodyAllowed ||
		w.declared < 0 || w.written != w.declared || len(w.trailers) > 0 || !w.c.body.done {
		return false // (a request body left unread may yet close the connection: finish says so)
	}
	c := w.c
	if c.s.shutting.Load() || c.gone.Load() {
		c.req.Close = true // as finish would say
	}
	w.commit(true)
	if w.err != nil {
		return false
	}
	if then != nil && !c.req.Close && c.rd.buffered() == 0 && c.state.Load() == stReady {
		c.raw.holdAnswer()
	}
	w.setErr(c.bw.Flush())
	c.raw.hold = false
	if c.raw.holding() {
		c.then = then
		return true
	}
	return false
}

// afterAnswer is work a handler leaves until its held answer is out
// (sendComplete).
type afterAnswer interface{ afterAnswer() }

// abort ends an answer the handler broke off (it panicked): what was
// committed goes out as far as it got, and nothing more; the connection
// then closes, so the client sees the answer cut off.
func (w *srvWriter) abort() {
	if w.committed && w.err == nil {
		_ = w.c.bw.Flush()
	}
}

// Hijack hands the connection to the handler (an upgraded protocol).
func (w *srvWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.committed {
		return nil, nil, errors.New("the answer has started; the connection cannot be hijacked")
	}
	c := w.c
	c.stopWatch()
	w.hijacked = true
	c.state.Store(stHijacked)
	_ = c.nc.SetDeadline(time.Time{})
	rest := append([]byte(nil), c.rd.bytes()...)
	c.rd.consume(len(rest))
	br := bufio.NewReader(&prefixReader{rest: rest, nc: c.nc})
	return c.nc, bufio.NewReadWriter(br, c.bw), nil
}

// prefixReader returns bytes read before a hijack, then the connection's.
type prefixReader struct {
	rest []byte
	nc   net.Conn
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.rest) > 0 {
		n := copy(b, p.rest)
		p.rest = p.rest[n:]
		return n, nil
	}
	return p.nc.Read(b)
}

// statusLine is "200 OK" for 200.
func statusLine(code int) string {
	if code >= 100 && code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	return strconv.Itoa(code) + " " + text
}

var statusLines = func() (s [600]string) {
	for i := range s {
		if t := http.StatusText(i); t != "" {
			s[i] = strconv.Itoa(i) + " " + t
		}
	}
	return s
}()

// coarseTime is the time as the server's watcher loop last read it
// (every watchAfter, 100 ms), for what needs no finer clock: the Date
// field (one-second resolution) and the idle deadline (moved when a
// second stale). It saves two clock reads per request, which cost
// about a hundred nanoseconds each on a virtual machine.
type coarseTime struct {
	t    time.Time
	sec  int64
	date string // t as a Date field says it
}

// tick moves the coarse clock to now.
func (s *Server) tick(now time.Time) {
	sec := now.Unix()
	ct := &coarseTime{t: now, sec: sec}
	if prev := s.coarse.Load(); prev != nil && prev.sec == sec {
		ct.date = prev.date
	} else {
		ct.date = now.UTC().Format(http.TimeFormat)
	}
	s.coarse.Store(ct)
}

// now returns the coarse clock, reading the real one when the watcher
// loop is not running.
func (s *Server) now() *coarseTime {
	if s.ticking.Load() {
		return s.coarse.Load()
	}
	s.tick(time.Now())
	return s.coarse.Load()
}
