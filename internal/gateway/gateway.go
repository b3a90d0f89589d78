// Package gateway is slipway's data plane: the one stable inference endpoint
// applications call. It speaks the Open Inference Protocol v2 (/v2/...) and
// the OpenAI API (/v1/...), picks the environment and the served version of
// each request from the routing table the deployment service publishes,
// forwards the request to that version — an in-process handler or a remote
// server through the version's egress-checked transport — and records
// per-version metrics for every request it routes.
//
// Environment rule: a request is served by the environment named in its
// X-Slipway-Environment header when present (it must be a valid name, or
// the answer is 400), otherwise by Config.DefaultEnvironment ("production").
//
// Resilience: a failed call is retried only when that cannot make things
// worse (see retry.go), within a per-version retry budget; every version
// has a circuit breaker (breaker.go); while a version's breaker is open,
// or after its call failed, its requests go to the deployment's stable
// version (call.go). A stable version that fails gets the client a 503
// quickly, never a hang.
//
// The hot path takes no lock of its own: the routing table is read through
// RouteSource (an atomic load in the deployment service), a closed
// breaker is one atomic load, and the mutexes taken are the metrics
// series one and the version's breaker one, to record the outcome. The
// gateway reads routes and writes metrics; it never imports stores, the
// registry or the controller.
package gateway

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/requestid"
)

// Headers the gateway reads or writes.
const (
	// HeaderEnvironment picks the environment of a request.
	HeaderEnvironment = "X-Slipway-Environment"
	// HeaderVersion names the version that answered.
	HeaderVersion = "X-Slipway-Version"
	// HeaderFallbackFrom names the version a request was routed to when
	// the stable version answered it instead.
	HeaderFallbackFrom = "X-Slipway-Fallback-From"
	HeaderRequestID    = requestid.Header
	// HeaderIdempotencyKey marks a request the caller says is safe to
	// repeat: it is retried and falls back like an idempotent call.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderTraceparent is W3C trace context, passed through or created.
	HeaderTraceparent = "traceparent"
)

// RouteSource gives the current routing table; implementations publish
// immutable tables through an atomic pointer, so Routes is one load. Nil
// means no table has been loaded yet.
type RouteSource interface {
	Routes() *deployment.Table
}

// Config wires a Gateway.
type Config struct {
	Routes  RouteSource
	Metrics *metrics.Recorder // a private recorder when nil
	Log     *slog.Logger      // slog.Default when nil
	// DefaultEnvironment serves requests without an environment header
	// (default "production").
	DefaultEnvironment string
	// MaxBodyBytes caps request bodies (default 8 MiB); larger ones get 413.
	MaxBodyBytes int64
	// UpstreamTimeout bounds the wait for a remote version's response
	// headers and every pause between its body chunks (default 30 s); a
	// stream that keeps sending is not cut off.
	UpstreamTimeout time.Duration
	// Rand returns a uniform integer in [0, n) for the weighted pick. It
	// must be safe for concurrent use; tests pass a seeded source.
	// Default math/rand/v2.IntN.
	Rand func(n int) int
	// ServerVersion is reported by GET /v2 (default "dev").
	ServerVersion string
	// Retry and Breaker configure retries and circuit breakers; their
	// zero values take the defaults.
	Retry   RetryPolicy
	Breaker BreakerPolicy
	// DisableFallback keeps every request on the version it was routed
	// to, even while that version's breaker is open.
	DisableFallback bool
	// Clock times breakers and retry budgets (default the wall clock);
	// tests move a fake one.
	Clock clock.Clock
	// Sleep waits between retries and for injected delays (fault.go),
	// returning early with the context's error (default a timer).
	Sleep func(ctx context.Context, d time.Duration) error
	// Limits bound callers' request rates and answers' sizes (limits.go);
	// Idempotency bounds the store of answers to Idempotency-Keys
	// (idempotency.go). Their zero values take the defaults.
	Limits      LimitPolicy
	Idempotency IdempotencyPolicy
	// Tokens checks the slipway API tokens callers present
	// (gatewayauth.go); nil leaves every caller anonymous. RequireToken
	// refuses requests without a valid token; it needs Tokens.
	Tokens       TokenVerifier
	RequireToken bool
	// TracerProvider, when set, records a server span per request and a
	// client span per upstream attempt (trace.go); nil turns tracing off
	// at the cost of a nil check.
	TracerProvider trace.TracerProvider
	// Shadow bounds the mirroring of requests to shadow versions
	// (shadow.go); the zero value takes the defaults.
	Shadow ShadowPolicy
	// Server bounds the gateway's own HTTP/1.1 server (Serve, server.go);
	// the zero value takes the defaults. Its Log defaults to Log.
	Server ServerConfig
	// AccessLog, when set, gets the access-log line of every request
	// that Log is enabled for (info, debug for health probes), written
	// directly in the form Log's JSON handler would give it
	// (accesslog.go); nil sends the lines through Log. Set it to the
	// writer under Log's slog.JSONHandler, or leave it nil when Log
	// formats differently or adds attributes of its own.
	AccessLog io.Writer
}

// Gateway serves inference requests. It is safe for concurrent use.
type Gateway struct {
	routes     RouteSource
	metrics    *metrics.Recorder
	log        *slog.Logger
	defaultEnv string
	maxBody    int64
	timeout    time.Duration
	rand       func(int) int
	version    string
	retry      RetryPolicy
	noFallback bool
	clock      clock.Clock
	sleep      func(context.Context, time.Duration) error
	upstreams  *upstreams
	auth       gatewayAuth
	limits     *limits
	idem       *idempotencyStore
	tracer     trace.Tracer // nil: tracing off
	// proxyLog and buffers are shared by every remote call: building them
	// per request cost a logger and a 32 KiB copy buffer each.
	proxyLog *log.Logger
	buffers  *bufferPool
	conns    *connPools  // upstream connections of the HTTP/1.1 path (proxy.go)
	shadows  *shadowPool // mirrors to shadow versions (shadow.go)
	srv      *Server     // the gateway's own HTTP/1.1 server (server.go)
	access   *accessLog  // nil: access-log lines go through log
	answers  sync.Pool   // *[]byte buffers for rewritten answers (oip.go)
	// exchanges served by the gateway's own server are reused once
	// finished: nothing holds one after its request but ReverseProxy's
	// transport goroutines, whose exchanges are kept out of the pool
	// (exchange.kept), and a writer that keeps the header map (the
	// answer's values are slices of the exchange), which that server's
	// writer does not.
	exchanges sync.Pool
}

var _ http.Handler = (*Gateway)(nil)

// New builds a gateway, filling defaults.
func New(c Config) *Gateway {
	if c.Metrics == nil {
		c.Metrics = metrics.New(nil, nil)
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.DefaultEnvironment == "" {
		c.DefaultEnvironment = "production"
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 8 << 20
	}
	if c.UpstreamTimeout <= 0 {
		c.UpstreamTimeout = 30 * time.Second
	}
	if c.Rand == nil {
		c.Rand = mrand.IntN
	}
	if c.ServerVersion == "" {
		c.ServerVersion = "dev"
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	c.Retry = c.Retry.withDefaults(c.UpstreamTimeout)
	c.Breaker = c.Breaker.withDefaults()
	if c.RequireToken && c.Tokens == nil {
		panic("gateway: RequireToken needs Tokens to check them")
	}
	if c.Server.Log == nil {
		c.Server.Log = c.Log
	}
	g := &Gateway{
		routes: c.Routes, metrics: c.Metrics, log: c.Log, defaultEnv: c.DefaultEnvironment,
		maxBody: c.MaxBodyBytes, timeout: c.UpstreamTimeout, rand: c.Rand, version: c.ServerVersion,
		retry: c.Retry, noFallback: c.DisableFallback, clock: c.Clock, sleep: c.Sleep, tracer: newTracer(c.TracerProvider, c.ServerVersion),
		upstreams: newUpstreams(c.Breaker, c.Retry),
		auth:      gatewayAuth{tokens: c.Tokens, require: c.RequireToken},
		limits:    newLimits(c.Limits),
		idem:      newIdempotencyStore(c.Idempotency),
		proxyLog:  log.New(slogWriter{c.Log}, "", 0), buffers: newBufferPool(), conns: newConnPools(),
		shadows: newShadowPool(c.Shadow, c.Metrics, c.Log),
	}
	if c.AccessLog != nil {
		g.access = newAccessLog(c.AccessLog)
	}
	g.answers.New = func() any { b := make([]byte, 0, 4<<10); return &b }
	g.exchanges.New = func() any { return new(exchange) }
	g.srv = NewServer(g, c.Server)
	return g
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// table returns the current routing table, or nil before the first load.
func (g *Gateway) table() *deployment.Table {
	if g.routes == nil {
		return nil
	}
	return g.routes.Routes()
}

// apiKind says which protocol's error body a request gets.
type apiKind uint8

const (
	apiOIP apiKind = iota
	apiOpenAI
)

// exchange is the state of one request as it moves through the gateway.
type exchange struct {
	g           *Gateway
	w           *responseWriter
	r           *http.Request
	id          string
	traceparent string     // sent upstream; while tracing, names the attempt's span as parent
	span        trace.Span // the server span, nil when tracing is off
	start       time.Time
	api         apiKind
	quiet       bool // health probes log at debug level

	// Set once a version is chosen. version is the one answering: the
	// stable one after a fallback.
	env     string
	model   string
	route   *deployment.Route
	version *deployment.RouteVersion
	pinned  bool
	routed  routedBy // how the version was chosen (route.go)
	done    func()   // ends the in-flight count of the current attempt

	// The caller and the concurrency slots it holds (limits.go).
	lim exchangeLimits

	// The state of the calls (call.go).
	idempotent   bool
	stable       *deployment.RouteVersion // the fallback target, nil for none
	fallbackFrom int                      // the version routed to, after a fallback
	deadline     time.Time
	leg          leg
	// What the request asks, to build its target on each version.
	body   []byte
	oip    oipCall
	openai openAIRequest
	// status overrides the written status in metrics and logs (499 for a
	// caller that went away, 502 for a stream an upstream cut off).
	status int
	usage  *usageTap // &tap for OpenAI calls
	tap    usageTap
	shadow *shadowPlan // set when a copy goes to the route's shadow (shadow.go)

	rw        responseWriter // x.w, allocated with the exchange
	kept      bool           // something may use the exchange after it finishes: not reused
	answer    bytesBody      // a rewritten answer's body (oip.go)
	answerBuf *[]byte        // lent from Gateway.answers, given back by finish
	vals      [4]string      // backing of the answer's header values the gateway sets
}

// Canonical forms of the header keys the hot path reads and sets.
const (
	keyRequestID   = "X-Request-Id"
	keyTraceparent = "Traceparent"
)

// firstValue is Header.Get for a key already in canonical form.
func firstValue(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// versionString is strconv.Itoa without an allocation for the version
// numbers a deployment usually has.
func versionString(v int) string {
	if v >= 0 && v < len(smallNumbers) {
		return smallNumbers[v]
	}
	return strconv.Itoa(v)
}

var smallNumbers = func() (s [100]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// ServeHTTP routes one request: request ID and trace context, the endpoint,
// then metrics and one access-log line.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := g.exchanges.Get().(*exchange)
	*x = exchange{g: g, r: r, start: time.Now()}
	// Canonical keys and the exchange's own value slices: Header.Get and
	// Set canonicalise a key like "X-Request-ID" and allocate a slice
	// per call.
	x.id = firstValue(r.Header, keyRequestID)
	x.traceparent = firstValue(r.Header, keyTraceparent)
	if !validTraceparent(x.traceparent) {
		x.traceparent = newTraceparent()
		if !requestid.Valid(x.id) {
			// A request with neither gets as its ID the first 16 hex
			// digits of the trace it starts: random, no second draw or
			// allocation, and it finds the trace.
			x.id = x.traceparent[3:19]
		}
	}
	if !requestid.Valid(x.id) {
		x.id = requestid.New()
	}
	if g.tracer != nil {
		x.startSpan()
	}
	x.w = &x.rw
	x.rw = responseWriter{ResponseWriter: w, x: x}
	x.vals[0] = x.id
	w.Header()[keyRequestID] = x.vals[0:1:1]
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		x.api = apiOpenAI
	}
	defer x.finish()
	if x.authenticate() {
		g.dispatch(x)
	}
}

// finish runs after every request: it turns a panic into a 500, records
// metrics and writes the access log.
func (x *exchange) finish() {
	p := recover()
	if p != nil && p != http.ErrAbortHandler {
		x.g.log.ErrorContext(x.r.Context(), "panic serving inference request", "request_id", x.id, "panic", fmt.Sprint(p))
		if x.w.status == 0 {
			x.fail(http.StatusInternalServerError, "internal_error", "the gateway failed while serving this request")
		}
	}
	if p == http.ErrAbortHandler && x.status == 0 {
		x.status = http.StatusBadGateway // the upstream broke off mid-answer
	}
	x.giveAllSlots() // before the answer leaves: a client's next request must find them free
	sw, ownServer := x.rw.ResponseWriter.(*srvWriter)
	// The client need not wait for the bookkeeping: a complete answer
	// goes out first, or is held to go out with the wait for the
	// connection's next request, and the bookkeeping then runs there.
	if ownServer && p == nil && !x.w.cut && sw.sendComplete(x) {
		return
	}
	cut := p == http.ErrAbortHandler || x.w.cut
	x.account(ownServer) // x may be reused from here on
	if cut {
		panic(http.ErrAbortHandler) // the client must see the answer cut off
	}
}

// afterAnswer is the bookkeeping of an exchange whose answer the
// gateway's server held (sendComplete): it runs once the answer is out.
func (x *exchange) afterAnswer() { x.account(true) }

// account counts the exchange in the metrics, hands a shadow its mirror,
// writes the access log and returns what the exchange borrowed; on the
// gateway's own server (ownServer) the exchange goes back to its pool.
func (x *exchange) account(ownServer bool) {
	status := x.status
	if status == 0 {
		status = x.w.status
	}
	if status == 0 {
		status = http.StatusOK
	}
	end := time.Now()
	d := end.Sub(x.start)
	ver := 0
	if x.version != nil {
		ver = x.version.Version
		key := metrics.Key{Model: x.model, Environment: x.env, Version: ver}
		x.g.metrics.Observe(key, status, d)
		if x.usage != nil {
			if p, c, ok := x.usage.result(); ok {
				x.g.metrics.ObserveTokens(key, p, c, metrics.Price{
					PerMTokPrompt:     x.version.PricePerMTokPrompt,
					PerMTokCompletion: x.version.PricePerMTokCompletion,
				})
			}
		}
		if x.done != nil {
			x.done()
		}
	} else if !x.quiet {
		x.g.metrics.ObserveUnrouted(status)
	}
	if x.shadow != nil {
		x.sendShadow(status) // the answer is complete: a mirror cannot delay it
	}
	if b := x.answerBuf; b != nil {
		x.answerBuf = nil
		if cap(*b) <= 1<<20 {
			x.g.answers.Put(b)
		}
	}
	if x.span != nil {
		x.endSpan(status, ver)
	}
	x.logAccess(status, ver, end, d)
	// The answer's header values the gateway set are slices of the
	// exchange (vals): only a writer that copied them at WriteHeader,
	// the gateway's own server's, lets the exchange be reused.
	if ownServer && !x.kept {
		g := x.g
		*x = exchange{}
		g.exchanges.Put(x)
	}
}

// logAccess writes the request's access-log line: at info, or at debug
// for health probes.
func (x *exchange) logAccess(status, ver int, end time.Time, d time.Duration) {
	level := slog.LevelInfo
	if x.quiet {
		level = slog.LevelDebug
	}
	ctx := x.r.Context()
	if !x.g.log.Enabled(ctx, level) {
		return
	}
	e := accessEntry{
		time: end, level: level, requestID: x.id, method: x.r.Method, path: x.r.URL.Path,
		status: status, bytes: x.w.bytes, duration: d, model: x.model, version: ver, environment: x.env,
		fallbackFrom: x.fallbackFrom, attempts: x.leg.tries, traceID: traceID(x.traceparent), routedBy: x.routed.String(),
	}
	if x.g.access != nil {
		x.g.access.write(&e)
		return
	}
	x.g.log.LogAttrs(ctx, level, accessMsg, e.attrs()...)
}

// dispatch matches the path. Paths are matched by hand rather than with
// http.ServeMux so that every miss, including a wrong method, gets the
// protocol's own error body.
func (g *Gateway) dispatch(x *exchange) {
	p := x.r.URL.Path
	switch {
	case p == "/v2/health/live":
		x.quiet = true
		if x.allow(http.MethodGet, http.MethodHead) {
			writeJSON(x.w, http.StatusOK, map[string]bool{"live": true})
		}
	case p == "/v2/health/ready":
		x.quiet = true
		if x.allow(http.MethodGet, http.MethodHead) {
			g.serveReady(x)
		}
	case p == "/v2" || p == "/v2/":
		if x.allow(http.MethodGet) {
			writeJSON(x.w, http.StatusOK, serverMetadata{Name: "slipway", Version: g.version, Extensions: []string{}})
		}
	case strings.HasPrefix(p, "/v2/models/"):
		g.serveOIPModel(x, strings.TrimPrefix(p, "/v2/models/"))
	case p == "/v1/models":
		if x.allow(http.MethodGet) {
			g.serveOpenAIModels(x)
		}
	case strings.HasPrefix(p, "/v1/models/"):
		if x.allow(http.MethodGet) {
			g.serveOpenAIModel(x, strings.TrimPrefix(p, "/v1/models/"))
		}
	case p == "/v1/chat/completions" || p == "/v1/completions" || p == "/v1/embeddings":
		if x.allow(http.MethodPost) {
			g.serveOpenAI(x)
		}
	default:
		x.fail(http.StatusNotFound, "not_found", fmt.Sprintf("no inference endpoint at %s %s; see /v2 (Open Inference Protocol) and /v1 (OpenAI)", x.r.Method, truncate(p, 120)))
	}
}

// allow answers 405 unless the request uses one of methods.
func (x *exchange) allow(methods ...string) bool {
	for _, m := range methods {
		if x.r.Method == m {
			return true
		}
	}
	x.w.Header().Set("Allow", strings.Join(methods, ", "))
	x.fail(http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s does not take %s; use %s", x.r.URL.Path, x.r.Method, strings.Join(methods, " or ")))
	return false
}

// environment applies the environment rule; it answers 400 and returns
// false for an invalid header.
func (x *exchange) environment() bool {
	env := x.r.Header.Get(HeaderEnvironment)
	if env == "" {
		x.env = x.g.defaultEnv
		return true
	}
	if err := domain.ValidateName("environment", env); err != nil {
		x.fail(http.StatusBadRequest, "invalid_environment", fmt.Sprintf("header %s: %v", HeaderEnvironment, err))
		return false
	}
	x.env = env
	return true
}

// resolve finds the version that serves a request for model: the pinned
// one when pin is set, else the route's policy picks (pickVersion, which
// reads x.body for a JSON sticky key). It answers the error itself
// and returns false when there is none.
func (x *exchange) resolve(model, pin string) bool {
	if !x.environment() {
		return false
	}
	t := x.g.table()
	if t == nil {
		x.fail(http.StatusServiceUnavailable, "not_ready", "the gateway has not loaded its routing table yet; retry shortly")
		return false
	}
	route := t.Lookup(model, x.env)
	if route == nil {
		x.fail(http.StatusNotFound, "model_not_found", fmt.Sprintf("model %q is not served in environment %q", truncate(model, 80), x.env))
		return false
	}
	var rv *deployment.RouteVersion
	if pin != "" {
		n, err := strconv.Atoi(pin)
		if err != nil || n < 1 || pin != strconv.Itoa(n) { // "+1" and "01" are not how versions are named
			x.fail(http.StatusBadRequest, "invalid_version", fmt.Sprintf("version %q is not a version number (1, 2, 3 …)", truncate(pin, 40)))
			return false
		}
		x.pinned, x.routed = true, routedPin
		if rv = route.Version(n); rv == nil && route.IsDown(n) {
			x.fail(http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("version %d of model %q is deployed in environment %q but its runtime could not start (slipway deployment get shows why); versions answering: %s", n, model, x.env, servedList(route)))
			return false
		} else if rv == nil {
			x.fail(http.StatusNotFound, "version_not_served", fmt.Sprintf("version %d of model %q is not served in environment %q; served versions: %s", n, model, x.env, servedList(route)))
			return false
		}
	} else if rv, x.routed = pickVersion(route, x.r.Header, x.body, x.g.rand); rv == nil {
		x.fail(http.StatusServiceUnavailable, "no_traffic", fmt.Sprintf("no version of model %q takes traffic in environment %q (served versions: %s)", model, x.env, servedList(route)))
		return false
	}
	x.model, x.route, x.version = model, route, rv
	if route.Shadow != nil {
		x.planShadow()
	}
	return true
}

// servedList names a route's versions for error messages: "1, 2".
func servedList(r *deployment.Route) string {
	if len(r.Versions) == 0 {
		return "none"
	}
	s := make([]string, len(r.Versions))
	for i, v := range r.Versions {
		s[i] = strconv.Itoa(v.Version)
	}
	return strings.Join(s, ", ")
}

// validTraceparent checks a W3C traceparent header: version-traceid-
// parentid-flags in lower-case hex, no all-zero ids, version ff invalid.
// Versions above 00 may carry more fields after the first four.
func validTraceparent(s string) bool {
	if len(s) < 55 || (len(s) > 55 && (s[:2] == "00" || s[55] != '-')) {
		return false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return false
	}
	return lowerHex(s[:2]) && lowerHex(s[3:35]) && lowerHex(s[36:52]) && lowerHex(s[53:55]) &&
		s[3:35] != strings.Repeat("0", 32) && s[36:52] != strings.Repeat("0", 16)
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// newTraceparent starts a trace for a request that arrived without one,
// flagged sampled so that downstream servers keep what they record. The
// IDs come from math/rand/v2's generator (ChaCha8, seeded by the
// system): trace IDs must be unique, not secret, as OpenTelemetry's own
// ID generator has it, and reading the system's source cost a
// hundredth of the gateway's CPU per request.
func newTraceparent() string {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], mrand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], mrand.Uint64())
	binary.LittleEndian.PutUint64(b[16:], mrand.Uint64())
	b[0] |= 1 // never all zero
	b[16] |= 1
	var t [55]byte
	copy(t[:], "00-")
	hex.Encode(t[3:35], b[:16])
	t[35] = '-'
	hex.Encode(t[36:52], b[16:])
	copy(t[52:], "-01")
	return string(t[:])
}

func traceID(tp string) string {
	if len(tp) < 35 {
		return ""
	}
	return tp[3:35]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
