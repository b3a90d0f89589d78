package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// Shadow traffic: a deployment's routing may name a shadow version (at
// weight 0) and a percentage; that share of its requests is copied to the
// shadow after the client has its answer, and the shadow's answer is
// compared with the client's (shadow_compare.go) and then thrown away.
//
//	resolve ── split or sticky pick, sampled ──> capture the client's answer
//	finish  ── the request reached a version ──> enqueue (never blocks; a
//	           full queue drops the mirror and counts it)
//	worker  ── send with the shadow timeout ──> compare ──> metrics
//
// What is mirrored: inference requests (POST) routed by the weighted
// split or a sticky key, once they reached a version. Requests pinned to
// a version by their path and requests a match rule routed are not: their
// callers chose a version on purpose, and they are not a sample of the
// deployment's traffic. Neither are requests answered without calling a
// version (refused, rate limited, an open breaker, an idempotent replay).
//
// A mirror never slows or fails the request it copies: the client's
// answer is complete before the mirror is queued, the queue is bounded
// in mirrors and in bytes, a fixed pool of workers sends them, and a
// shadow call is tried once, with its own timeout, and never touches the
// breaker, retry budget, in-flight count or fallback of any version.
// The shadow gets the body the primary got and the primary's headers
// minus credentials and hop-by-hop headers, with X-Slipway-Shadow: true.

// HeaderShadow marks a mirrored request, so a model server can tell it
// from live traffic.
const HeaderShadow = "X-Slipway-Shadow"

// ShadowPolicy bounds shadow traffic; zero fields take the defaults.
type ShadowPolicy struct {
	// Workers send mirrors, one at a time each (default 4).
	Workers int
	// QueueSize is how many mirrors may wait (default 256); QueueBytes
	// bounds the request bodies and primary answers they hold (default
	// 64 MiB). A mirror that does not fit is dropped and counted.
	QueueSize  int
	QueueBytes int64
	// Timeout bounds one shadow call, answer read (default 10 s).
	Timeout time.Duration
	// MaxAnswerBytes is the largest answer, primary's or shadow's, that
	// is compared (default 1 MiB); a larger one skips the comparison.
	MaxAnswerBytes int
}

func (p ShadowPolicy) withDefaults() ShadowPolicy {
	if p.Workers <= 0 {
		p.Workers = 4
	}
	if p.QueueSize <= 0 {
		p.QueueSize = 256
	}
	if p.QueueBytes <= 0 {
		p.QueueBytes = 64 << 20
	}
	if p.Timeout <= 0 {
		p.Timeout = 10 * time.Second
	}
	if p.MaxAnswerBytes <= 0 {
		p.MaxAnswerBytes = 1 << 20
	}
	return p
}

// shadowScale is the resolution of the sampling draw: a millionth.
const shadowScale = 1_000_000

// shadowPlan is a request chosen for mirroring.
type shadowPlan struct {
	rv      *deployment.RouteVersion
	capture *capture
}

// planShadow decides, once the request's version is chosen, whether its
// route's shadow gets a copy, and if so keeps the client's answer.
func (x *exchange) planShadow() {
	s := x.route.Shadow
	if s == nil || s.Target == nil || x.r.Method != http.MethodPost ||
		(x.routed != routedSplit && x.routed != routedSticky) ||
		s.Target.Version == x.version.Version ||
		orProtocol(s.Target.Endpoint.Protocol) != orProtocol(x.version.Endpoint.Protocol) {
		return
	}
	if s.Percent < 100 && float64(x.g.rand(shadowScale)) >= s.Percent*(shadowScale/100) {
		return
	}
	x.shadow = &shadowPlan{rv: s.Target, capture: x.startCapture(x.g.shadows.policy.MaxAnswerBytes)}
}

// mirror is one copied request waiting for a worker.
type mirror struct {
	key     metrics.Key // the shadow version's
	ep      runtime.Endpoint
	t       target
	method  string
	query   string
	host    string
	header  http.Header
	kind    compareKind
	primary comparedAnswer
	// skip, when set, is why the answers cannot be compared whatever the
	// shadow says: the primary failed or its answer was not kept whole.
	skip metrics.SkipReason
	size int64 // bytes held, against QueueBytes
}

// sendShadow queues the mirror of a finished request; status is what the
// client got. It runs in finish, after the answer is complete. The mirror
// keeps the request's body and the kept answer, neither of which the
// exchange reuses (were the body ever pooled, it would need a copy here).
func (x *exchange) sendShadow(status int) {
	p := x.shadow
	if x.leg.tries == 0 {
		return // answered without calling a version
	}
	m := &mirror{
		key:    x.key(p.rv),
		ep:     p.rv.Endpoint,
		t:      x.target(p.rv),
		method: x.r.Method, query: x.r.URL.RawQuery, host: x.r.Host,
		header: shadowHeaders(x.r.Header, x.id, x.traceparent),
		kind:   compareKindOf(x.r.URL.Path),
	}
	m.t.rewriteInfer = false
	body, whole := p.capture.bytes()
	switch {
	case status < 200 || status > 299 || x.status != 0:
		m.skip = metrics.SkipPrimaryFailed
	case !whole:
		m.skip = metrics.SkipPrimaryTruncated
	default:
		m.primary = comparedAnswer{body: body, sse: isEventStream(x.w.Header().Get("Content-Type"))}
	}
	m.size = int64(len(m.t.body) + len(m.primary.body))
	x.g.shadows.enqueue(m)
}

// shadowHeaders are the headers a mirror carries: the primary's, without
// the caller's credentials, the environment header (the gateway's), the
// idempotency key (a shadow sharing a provider with the primary must not
// be answered from its cache), compression and hop-by-hop headers.
func shadowHeaders(in http.Header, id, traceparent string) http.Header {
	h := in.Clone()
	if h == nil {
		h = http.Header{}
	}
	for _, f := range h.Values("Connection") {
		for name := range strings.SplitSeq(f, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range [...]string{
		"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "Api-Key",
		HeaderEnvironment, HeaderIdempotencyKey, "Accept-Encoding", "Content-Length",
		"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	} {
		h.Del(name)
	}
	h.Set(HeaderRequestID, id)
	h.Set(HeaderTraceparent, traceparent)
	h.Set(HeaderShadow, "true")
	return h
}

// shadowPool is the queue and the workers of a gateway's mirrors.
// Workers start with the first mirror, so a gateway that shadows nothing
// runs none. enqueue takes a read lock, which only Close contends.
type shadowPool struct {
	policy  ShadowPolicy
	metrics *metrics.Recorder
	log     *slog.Logger

	queue chan *mirror
	bytes atomic.Int64 // held by queued mirrors

	mu      sync.RWMutex // Close holds it to stop enqueues
	closed  bool
	start   sync.Once
	stop    chan struct{} // closed by Close: drain the queue, then exit
	workers sync.WaitGroup

	// ctx ends calls in flight when Close runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
}

func newShadowPool(p ShadowPolicy, m *metrics.Recorder, log *slog.Logger) *shadowPool {
	p = p.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &shadowPool{
		policy: p, metrics: m, log: log,
		queue: make(chan *mirror, p.QueueSize), stop: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
}

// enqueue queues a mirror or drops it, never waiting.
func (p *shadowPool) enqueue(m *mirror) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.metrics.ObserveShadowDropped(m.key, metrics.ShadowDropShutdown)
		return
	}
	p.start.Do(func() {
		p.workers.Add(p.policy.Workers)
		for range p.policy.Workers {
			go p.work()
		}
	})
	if p.bytes.Add(m.size) > p.policy.QueueBytes && m.size > 0 {
		p.bytes.Add(-m.size)
		p.metrics.ObserveShadowDropped(m.key, metrics.ShadowDropQueueFull)
		return
	}
	select {
	case p.queue <- m:
	default:
		p.bytes.Add(-m.size)
		p.metrics.ObserveShadowDropped(m.key, metrics.ShadowDropQueueFull)
	}
}

func (p *shadowPool) work() {
	defer p.workers.Done()
	for {
		select {
		case m := <-p.queue:
			p.run(m)
		case <-p.stop:
			for {
				select {
				case m := <-p.queue:
					p.run(m)
				default:
					return
				}
			}
		}
	}
}

// close stops enqueues and waits for the workers to send what is queued;
// when ctx ends first, calls in flight are cancelled and the rest of the
// queue is dropped.
func (p *shadowPool) close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel()
		<-done
		return fmt.Errorf("shadow traffic: queued mirrors dropped at shutdown: %w", ctx.Err())
	}
}

// Close stops the gateway's background work: mirrors already queued are
// sent until ctx ends, then calls in flight are cancelled and the rest
// are dropped and counted; requests served after Close are not mirrored.
// Call it after the server stopped sending requests.
func (g *Gateway) Close(ctx context.Context) error {
	return g.shadows.close(ctx)
}

// run sends one mirror and records how it went.
func (p *shadowPool) run(m *mirror) {
	defer p.bytes.Add(-m.size)
	if p.ctx.Err() != nil {
		p.metrics.ObserveShadowDropped(m.key, metrics.ShadowDropShutdown)
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.policy.Timeout)
	defer cancel()
	start := time.Now()
	res := m.send(ctx, p.policy.MaxAnswerBytes)
	call := metrics.ShadowCall{Status: res.status, Latency: time.Since(start)}
	// A remote answer read whole counts even if the deadline passed just
	// after; an in-process handler cut short may have returned quietly.
	cut := res.err != nil || m.ep.Handler != nil
	switch {
	case cut && errors.Is(ctx.Err(), context.DeadlineExceeded):
		call.Status, call.TimedOut = 0, true
	case cut && p.ctx.Err() != nil:
		p.metrics.ObserveShadowDropped(m.key, metrics.ShadowDropShutdown)
		return
	}
	switch {
	case m.skip != "":
		call.Compare.Result, call.Compare.Skip = metrics.CompareSkipped, m.skip
	case call.Status < 200 || call.Status > 299:
		call.Compare.Result, call.Compare.Skip = metrics.CompareSkipped, metrics.SkipShadowFailed
	case res.truncated:
		call.Compare.Result, call.Compare.Skip = metrics.CompareSkipped, metrics.SkipShadowTruncated
	default:
		call.Compare = compareAnswers(m.kind, m.primary, comparedAnswer{body: res.body, sse: isEventStream(res.contentType)})
	}
	p.metrics.ObserveShadow(m.key, call)
	p.log.LogAttrs(context.Background(), slog.LevelDebug, "shadow request",
		slog.String("request_id", m.header.Get(HeaderRequestID)), slog.String("model", m.key.Model),
		slog.Int("version", m.key.Version), slog.String("environment", m.key.Environment),
		slog.Int("status", call.Status), slog.Bool("timed_out", call.TimedOut), slog.Duration("duration", call.Latency),
		slog.String("comparison", string(call.Compare.Result)), slog.String("skipped", string(call.Compare.Skip)),
		slog.Any("error", res.err))
}

// shadowResult is what a shadow answered.
type shadowResult struct {
	status      int // 0: no answer
	contentType string
	body        []byte
	truncated   bool
	err         error
}

// send makes the shadow call, in process or over the endpoint's
// transport (with its egress checks), reading at most limit bytes.
func (m *mirror) send(ctx context.Context, limit int) (res shadowResult) {
	ep := m.ep
	if ep.Handler != nil {
		return m.sendInProcess(ctx, ep.Handler, limit)
	}
	if ep.URL == nil || ep.Transport == nil {
		return shadowResult{err: errNoEndpoint}
	}
	base := ep.URL
	u := url.URL{Scheme: base.Scheme, Host: base.Host, User: base.User, RawQuery: m.query,
		Path: joinPath(base.Path, m.t.upstreamPath)}
	if m.t.upstreamRawPath != "" || base.RawPath != "" {
		u.RawPath = joinPath(base.EscapedPath(), orPath(m.t.upstreamRawPath, m.t.upstreamPath))
	}
	req, err := http.NewRequestWithContext(ctx, m.method, u.String(), bytes.NewReader(m.t.body))
	if err != nil {
		return shadowResult{err: err}
	}
	req.URL = &u
	req.Header = m.header
	resp, err := ep.Transport.RoundTrip(req)
	if err != nil {
		return shadowResult{err: err}
	}
	defer resp.Body.Close()
	res = shadowResult{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type")}
	res.body, err = io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	switch {
	case err != nil: // cut off mid-answer: no answer
		return shadowResult{err: err}
	case len(res.body) > limit:
		res.body, res.truncated = nil, true
	}
	return res
}

// sendInProcess serves the mirror with an in-process handler; a panic
// in it is the shadow's failure, not the gateway's.
func (m *mirror) sendInProcess(ctx context.Context, h http.Handler, limit int) (res shadowResult) {
	req, err := http.NewRequestWithContext(ctx, m.method, "/", bytes.NewReader(m.t.body))
	if err != nil {
		return shadowResult{err: err}
	}
	req.URL.Path, req.URL.RawQuery = m.t.handlerPath, m.query
	req.RequestURI = req.URL.RequestURI()
	req.Host = m.host
	req.Header = m.header
	w := &shadowWriter{header: http.Header{}, limit: limit}
	defer func() {
		if p := recover(); p != nil {
			res = shadowResult{err: fmt.Errorf("in-process handler: %v", p)}
			if p != http.ErrAbortHandler && w.status == 0 {
				res.status = http.StatusInternalServerError
			}
		}
	}()
	h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	res = shadowResult{status: w.status, contentType: w.header.Get("Content-Type"), body: w.body.Bytes(), truncated: w.over}
	if w.over {
		res.body = nil
	}
	return res
}

// shadowWriter keeps an in-process shadow's answer, up to a limit.
type shadowWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	limit  int
	over   bool
}

func (w *shadowWriter) Header() http.Header { return w.header }

func (w *shadowWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *shadowWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.over && w.body.Len()+len(p) > w.limit {
		w.over = true
		w.body.Reset()
	}
	if !w.over {
		w.body.Write(p)
	}
	return len(p), nil // keep the handler writing; the answer is judged whole or not at all
}

// Flush lets streaming handlers flush; there is no one to flush to.
func (w *shadowWriter) Flush() {}

// isEventStream reports a text/event-stream content type.
func isEventStream(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/event-stream"
}
