package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

// errUpstreamTimeout is the cause of a cancelled upstream call when the
// upstream was silent for longer than the timeout.
var errUpstreamTimeout = errors.New("upstream timed out")

// readBody reads the request body up to the cap, answering 413 above it.
func (x *exchange) readBody() ([]byte, bool) {
	max := x.g.maxBody
	if x.r.ContentLength > max {
		x.tooLarge()
		return nil, false
	}
	// A body of announced length is read to that length, which the
	// server's framing holds it to; only one of unknown length (chunked)
	// needs a reader that counts.
	src := x.r.Body
	if x.r.ContentLength < 0 {
		src = http.MaxBytesReader(x.w.ResponseWriter, src, max)
	}
	body, err := readSized(src, x.r.ContentLength, max)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			x.tooLarge()
			return nil, false
		}
		if x.r.Context().Err() != nil {
			x.status = 499 // the caller went away
			return nil, false
		}
		x.fail(http.StatusBadRequest, "invalid_body", fmt.Sprintf("reading the request body: %v", err))
		return nil, false
	}
	if int64(len(body)) > max { // a body longer than it announced
		x.tooLarge()
		return nil, false
	}
	return body, true
}

// readSized reads r to its end into one allocation when size, the
// length announced (-1 unknown), is right and at most limit: a
// bytes.Buffer or io.ReadAll start small and grow. It stops once it holds
// more than limit bytes.
func readSized(r io.Reader, size, limit int64) ([]byte, error) {
	c := int64(512)
	if size >= 0 {
		c = min(size, limit) + 1 // room to see the end without growing
	}
	b := make([]byte, 0, c)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF || int64(len(b)) > limit {
			return b, nil // over the limit: the caller sees it by the length
		}
		if err != nil {
			return b, err
		}
	}
}

func (x *exchange) tooLarge() {
	x.fail(http.StatusRequestEntityTooLarge, "request_too_large",
		fmt.Sprintf("request body is larger than the gateway's limit of %d bytes", x.g.maxBody))
}

// target says where one request goes once its version is chosen.
type target struct {
	// handlerPath is the path an in-process handler sees.
	handlerPath string
	// upstreamPath and upstreamRawPath are appended to a remote
	// endpoint's base URL path (raw: escaped form, "" when the same).
	upstreamPath, upstreamRawPath string
	body                          []byte // nil for requests without one
	// stream flushes every chunk as it arrives (OpenAI answers).
	stream bool
	// rewriteInfer puts slipway's model name and version in a remote
	// infer answer before the client sees it (rewriteInferResponse).
	rewriteInfer bool
}

// errNoEndpoint marks a remote version with no URL or transport.
var errNoEndpoint = errors.New("no endpoint to reach")

// errSwallowed is how ModifyResponse drops a 502/503/504 answer that
// another attempt replaces; the client never sees it.
var errSwallowed = errors.New("answer replaced by another attempt")

// outboundHeaders sets what every forwarded request carries and drops what
// must not leave the gateway: the caller's credentials belong to the
// gateway, not to model servers (a remote server's own credentials are the
// endpoint transport's business), and compression is left to the hop.
func (x *exchange) outboundHeaders(h http.Header) {
	h.Set(HeaderRequestID, x.id)
	h.Set(HeaderTraceparent, x.traceparent)
	h.Del(HeaderEnvironment)
	h.Del("Authorization")
	h.Del("Cookie")
	h.Del("Accept-Encoding")
}

func (x *exchange) forwardInProcess(w http.ResponseWriter, ep runtime.Endpoint, t target) {
	ctx, cancel := context.WithTimeout(x.r.Context(), x.g.timeout)
	defer cancel()
	in := x.r.Clone(ctx)
	in.URL.Path, in.URL.RawPath = t.handlerPath, ""
	in.RequestURI = in.URL.RequestURI()
	in.Pattern = ""
	setBody(in, t.body)
	x.outboundHeaders(in.Header)
	ep.Handler.ServeHTTP(w, in)
}

func setBody(r *http.Request, body []byte) {
	r.TransferEncoding = nil
	r.ContentLength = int64(len(body))
	if body == nil {
		r.Body, r.GetBody = http.NoBody, nil
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// forwardRemote makes one attempt at a remote version: over the
// gateway's own HTTP/1.1 path (proxy.go) when the endpoint's transport
// allows it, else through a reverse proxy with the endpoint's transport
// (https, HTTP/2, proxies, upgrades). An answer is written to w unless
// the attempt failed before its head reached the client: then the
// failure is returned and nothing is written.
func (x *exchange) forwardRemote(w http.ResponseWriter, ep runtime.Endpoint, t target) (f failure) {
	l := &x.leg
	l.tryTimeout = x.g.retry.TryTimeout
	if l.tries > 1 || x.fallbackFrom != 0 {
		l.tryTimeout = min(l.tryTimeout, time.Until(x.deadline))
	}
	if p := x.g.conns.pool(ep); p != nil && x.r.Header["Upgrade"] == nil {
		if ep.Track != nil {
			defer ep.Track()()
		}
		return x.forwardDirect(w, p, ep.URL, t)
	}
	// The transport's goroutines may still report on this request
	// (the client trace) after it is answered.
	x.kept = true
	ctx, timer, cancel := upstreamTimeoutContext(x.r.Context(), l.tryTimeout)
	defer cancel(nil)
	defer timer.Stop()
	if l.trace == nil {
		l.trace = &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				l.wrote.Store(true)
			}
		}}
	}
	in := x.r.WithContext(httptrace.WithClientTrace(ctx, l.trace))
	setBody(in, t.body)
	base := ep.URL
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := pr.Out.URL
			u.Scheme, u.Host, u.User = base.Scheme, base.Host, base.User
			u.Path = joinPath(base.Path, t.upstreamPath)
			u.RawPath = ""
			if t.upstreamRawPath != "" || base.RawPath != "" {
				u.RawPath = joinPath(base.EscapedPath(), orPath(t.upstreamRawPath, t.upstreamPath))
			}
			pr.Out.Host = ""
			x.outboundHeaders(pr.Out.Header)
			pr.SetXForwarded()
		},
		Transport: ep.Transport,
		ModifyResponse: func(resp *http.Response) error {
			l.status = resp.StatusCode
			if retryableStatus(resp.StatusCode) {
				// Decide now, before the client sees anything: an answer
				// another attempt replaces is dropped.
				l.decided = true
				if l.next = x.plan(failure{kind: failStatus, status: resp.StatusCode}); l.next != stepNone {
					return errSwallowed
				}
			}
			// Headers are in: from now on the timeout bounds each pause
			// between body chunks.
			timer.Reset(x.g.timeout)
			resp.Body = &idleBody{ReadCloser: resp.Body, timer: timer, d: x.g.timeout}
			if t.rewriteInfer {
				return x.rewriteInferResponse(resp)
			}
			return nil
		},
		ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) {
			f = x.classify(r, err)
		},
		ErrorLog:   x.g.proxyLog,
		BufferPool: x.g.buffers,
	}
	if t.stream {
		proxy.FlushInterval = -1
	}
	// Runs on the way out, also when ReverseProxy aborts a cut-off answer
	// with http.ErrAbortHandler: name the cause for metrics and logs.
	defer func() {
		if x.w.status == 0 || x.status != 0 {
			return
		}
		switch {
		case x.r.Context().Err() != nil:
			x.status = 499
		case errors.Is(context.Cause(ctx), errUpstreamTimeout):
			x.status = http.StatusGatewayTimeout // fell silent mid-answer
		}
	}()
	proxy.ServeHTTP(w, in)
	return f
}

// classify names a failed attempt: whether the request left, whether the
// upstream timed out, whether anything can repair it.
func (x *exchange) classify(r *http.Request, err error) failure {
	if errors.Is(err, errSwallowed) {
		return failure{kind: failStatus, status: x.leg.status}
	}
	return x.failure(err, errors.Is(context.Cause(r.Context()), errUpstreamTimeout) || transportTimeout(err))
}

// failure names a failed attempt from its error and whether a timeout
// (the gateway's or the transport's) ended it.
func (x *exchange) failure(err error, timedOut bool) failure {
	f := failure{err: err, timedOut: timedOut}
	switch {
	case x.r.Context().Err() != nil:
		f.kind = failCanceled
	case errors.Is(err, egress.ErrRefused), errors.Is(err, errAnswerTooLarge):
		f.kind = failFatal
	case !x.leg.wrote.Load():
		f.kind = failUnsent
	case f.timedOut:
		f.kind = failTimeout
	default:
		f.kind = failNoAnswer
	}
	return f
}

// transportTimeout reports the transport's own timeout, such as the
// response-header timeout an external version's timeout option sets: the
// upstream was silent too long, as when the gateway's own timer fires.
func transportTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func orPath(raw, p string) string {
	if raw != "" {
		return raw
	}
	return p
}

// upstreamReason says what went wrong without repeating internal
// addresses to the caller; the full error is in the log.
func upstreamReason(err error) string {
	switch {
	case errors.Is(err, egress.ErrRefused):
		return "its address is refused by the egress policy"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the server closed the connection without a complete answer"
	case errors.Is(err, errAnswerTooLarge):
		return "its answer is too large to rewrite"
	case errors.Is(err, errNoEndpoint):
		return "it has no endpoint to reach"
	default:
		return "the server's answer is not valid HTTP or the connection failed"
	}
}

// idleBody resets the upstream timer whenever the upstream sends data, so
// the timeout bounds silence, not the length of a stream.
type idleBody struct {
	io.ReadCloser
	timer *time.Timer
	d     time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.d)
	}
	return n, err
}

// slogWriter sends ReverseProxy's own log lines to the gateway's logger.
type slogWriter struct{ log *slog.Logger }

func (s slogWriter) Write(p []byte) (int, error) {
	s.log.Warn("reverse proxy", "message", string(bytes.TrimSpace(p)))
	return len(p), nil
}

// upstreamTimeoutContext returns a context cancelled with errUpstreamTimeout
// once the timer it also returns fires; callers reset the timer whenever
// the upstream shows progress and stop it when done.
func upstreamTimeoutContext(parent context.Context, d time.Duration) (context.Context, *time.Timer, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	t := time.AfterFunc(d, func() { cancel(errUpstreamTimeout) })
	return ctx, t, cancel
}

// bufferPool lends ReverseProxy its copy buffers instead of a new 32 KiB
// one per request.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

// Get returns a buffer.
func (b *bufferPool) Get() []byte { return *b.p.Get().(*[]byte) }

// get and put lend a buffer by its pointer: Put boxes a new pointer each
// time, which is an allocation per call.
func (b *bufferPool) get() *[]byte { return b.p.Get().(*[]byte) }

func (b *bufferPool) put(p *[]byte) { b.p.Put(p) }

// Put returns a buffer for reuse.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < 32<<10 {
		return
	}
	buf = buf[:32<<10]
	b.p.Put(&buf)
}
