package gateway

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
)

// This file bounds what callers may ask of the gateway:
//
//   - a token bucket per caller — its API token, or its address when it
//     presented none (gatewayauth.go) — from LimitPolicy.TokenRate;
//   - a token bucket per deployment (model and environment), from the
//     routing policy's limits, shared by every caller;
//   - a concurrency limit per version endpoint, from the same limits: a
//     version at its limit refuses admission as an open breaker does, so
//     the request goes to the stable version or gets 503 at once;
//   - a cap on the size of an answer (writer.go), whatever the version.
//
// Both rate limits apply to inference requests only (infer and the
// OpenAI POST endpoints; metadata, readiness and listings are free) and
// only once the request names a served model: an unknown model is 404
// whatever the buckets say. A request the caller's bucket refuses does
// not touch the deployment's; one the deployment's refuses has spent its
// caller's token. Refusals are 429 with Retry-After in whole seconds
// (rounded up, at least 1) — when the bucket will hold a token again.

// LimitPolicy bounds callers and answers. The zero value has no rate
// limits and caps answers at 64 MiB.
type LimitPolicy struct {
	// TokenRate refills each caller's bucket, in requests per second;
	// 0 turns per-caller limits off.
	TokenRate float64
	// TokenBurst is each caller's bucket size (default one second of
	// requests, at least 1).
	TokenBurst int
	// MaxCallers bounds the callers whose buckets are kept (default
	// 65,536). A bucket idle long enough to have refilled is dropped at
	// no cost — a new one is the same; past the bound, under a flood of
	// distinct callers, buckets in use are dropped too and their callers
	// start again with a full one.
	MaxCallers int
	// MaxResponseBytes caps the size of an answer (default 64 MiB;
	// negative: unlimited). An answer that declares a larger
	// Content-Length gets the client a 502 before any of it is sent; a
	// streamed one that outgrows it is cut off.
	MaxResponseBytes int64
}

// DefaultMaxResponseBytes is the answer size cap when none is set.
const DefaultMaxResponseBytes = 64 << 20

// limits is the gateway's limit state.
type limits struct {
	callers     *callerBuckets // nil: no per-caller limit
	models      modelBuckets
	maxResponse int64 // 0: unlimited
}

func newLimits(p LimitPolicy) *limits {
	l := &limits{maxResponse: p.MaxResponseBytes}
	switch {
	case l.maxResponse == 0:
		l.maxResponse = DefaultMaxResponseBytes
	case l.maxResponse < 0:
		l.maxResponse = 0
	}
	if p.TokenRate > 0 && !math.IsInf(p.TokenRate, 0) {
		burst := p.TokenBurst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(p.TokenRate)))
		}
		l.callers = newCallerBuckets(rate.Limit(p.TokenRate), burst, p.MaxCallers)
	}
	empty := map[modelEnv]*modelBucket{}
	l.models.m.Store(&empty)
	return l
}

// take spends one token of b at now, or says how long until one is there.
// It allocates nothing (Limiter.ReserveN would).
func take(b *rate.Limiter, now time.Time) (time.Duration, bool) {
	if b.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - b.TokensAt(now)
	return time.Duration(missing / float64(b.Limit()) * float64(time.Second)), false
}

// retryAfterSeconds is a wait as Retry-After says it: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// callerKey names a caller's bucket: a token ID, or an address for a
// caller that presented no token. The two never share a bucket.
type callerKey struct {
	anonymous bool
	id        string
}

// callerBuckets are the per-caller token buckets, in shards so that
// callers rarely wait on one another's lock.
type callerBuckets struct {
	limit    rate.Limit
	burst    int
	idle     time.Duration // an unused bucket is full again after this
	perShard int
	seed     maphash.Seed
	shards   [callerShards]callerShard
}

const callerShards = 64

type callerShard struct {
	mu    sync.Mutex
	m     map[callerKey]*callerBucket
	swept time.Time
}

type callerBucket struct {
	lim  *rate.Limiter
	used time.Time // guarded by the shard's lock
}

func newCallerBuckets(limit rate.Limit, burst, maxCallers int) *callerBuckets {
	if maxCallers <= 0 {
		maxCallers = 1 << 16
	}
	c := &callerBuckets{
		limit: limit, burst: burst, perShard: max(1, maxCallers/callerShards), seed: maphash.MakeSeed(),
		idle: time.Duration(float64(burst) / float64(limit) * float64(time.Second)),
	}
	for i := range c.shards {
		c.shards[i].m = map[callerKey]*callerBucket{}
	}
	return c
}

// take spends one of k's tokens at now.
func (c *callerBuckets) take(k callerKey, now time.Time) (time.Duration, bool) {
	s := &c.shards[maphash.String(c.seed, k.id)%callerShards]
	s.mu.Lock()
	b := s.m[k]
	if b == nil {
		if len(s.m) >= c.perShard || now.Sub(s.swept) >= max(c.idle, time.Minute) {
			s.sweep(now, c.idle, c.perShard)
		}
		b = &callerBucket{lim: rate.NewLimiter(c.limit, c.burst)}
		s.m[k] = b
	}
	b.used = now
	s.mu.Unlock()
	return take(b.lim, now)
}

// sweep drops the buckets unused for idle — they have refilled, so
// dropping them changes nothing — and, while the shard is still full, an
// arbitrary eighth of it.
func (s *callerShard) sweep(now time.Time, idle time.Duration, limit int) {
	s.swept = now
	for k, b := range s.m {
		if now.Sub(b.used) >= idle {
			delete(s.m, k)
		}
	}
	if len(s.m) < limit {
		return
	}
	drop := max(1, len(s.m)/8)
	for k := range s.m { // map order is arbitrary
		if drop == 0 {
			break
		}
		delete(s.m, k)
		drop--
	}
}

// len is the number of callers whose buckets are kept.
func (c *callerBuckets) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// modelEnv names a deployment.
type modelEnv struct{ model, env string }

// modelBucket is a deployment's token bucket, built for one rate and
// burst: when the routing policy changes them, a new bucket replaces it.
type modelBucket struct {
	rps   float64
	burst int
	lim   *rate.Limiter
}

// modelBuckets holds the deployments' buckets in a copy-on-write map read
// with one atomic load; the lock serialises replacements only.
type modelBuckets struct {
	m  atomic.Pointer[map[modelEnv]*modelBucket]
	mu sync.Mutex
}

// get returns the bucket of route r, replacing one built for other
// limits, and dropping those of deployments the table t no longer has.
func (mb *modelBuckets) get(r *deployment.Route, t *deployment.Table) *rate.Limiter {
	k := modelEnv{r.Model, r.Environment}
	rps, burst := r.Limits.RequestsPerSecond, r.Limits.EffectiveBurst()
	if b := (*mb.m.Load())[k]; b != nil && b.rps == rps && b.burst == burst {
		return b.lim
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	old := *mb.m.Load()
	if b := old[k]; b != nil && b.rps == rps && b.burst == burst {
		return b.lim
	}
	next := make(map[modelEnv]*modelBucket, len(old)+1)
	for kk, b := range old {
		if cur := t.Lookup(kk.model, kk.env); cur != nil && cur.Limits.RequestsPerSecond == b.rps && cur.Limits.EffectiveBurst() == b.burst {
			next[kk] = b
		}
	}
	b := &modelBucket{rps: rps, burst: burst, lim: rate.NewLimiter(rate.Limit(rps), burst)}
	next[k] = b
	mb.m.Store(&next)
	return b.lim
}

// callerWithinRate spends one of the caller's tokens on a routed
// inference request; it answers 429 itself and returns false when its
// bucket is empty.
func (x *exchange) callerWithinRate() bool {
	c := x.g.limits.callers
	if c == nil {
		return true
	}
	wait, ok := c.take(x.lim.caller, x.g.clock.Now())
	if ok {
		return true
	}
	x.g.metrics.ObserveRateLimited(x.model, x.env, metrics.RateScopeToken)
	who := "this token"
	if x.lim.caller.anonymous {
		who = "callers without a token from this address"
	}
	x.tooMany(wait, fmt.Sprintf("rate limit exceeded: %s may send %g requests per second (bursts of %d)", who, float64(c.limit), c.burst))
	return false
}

// modelWithinRate spends one of the deployment's tokens; it answers 429
// itself and returns false when its bucket is empty.
func (x *exchange) modelWithinRate() bool {
	l := x.route.Limits
	if l.RequestsPerSecond <= 0 {
		return true
	}
	g := x.g
	wait, ok := take(g.limits.models.get(x.route, g.table()), g.clock.Now())
	if ok {
		return true
	}
	g.metrics.ObserveRateLimited(x.model, x.env, metrics.RateScopeModel)
	x.tooMany(wait, fmt.Sprintf("rate limit exceeded: model %q takes %g requests per second in environment %q (bursts of %d)", x.model, l.RequestsPerSecond, x.env, l.EffectiveBurst()))
	return false
}

// tooMany answers 429 with Retry-After. The request reached no version:
// it is counted as unrouted, not in the chosen version's metrics, which
// rollout analysis judges.
func (x *exchange) tooMany(wait time.Duration, msg string) {
	x.version = nil
	secs := retryAfterSeconds(wait)
	x.w.Header().Set("Retry-After", strconv.Itoa(secs))
	x.fail(http.StatusTooManyRequests, "rate_limit_exceeded", fmt.Sprintf("%s; retry in %ds", msg, secs))
}

// exchangeLimits is the limit state of one request.
type exchangeLimits struct {
	caller callerKey
	// held are the versions whose concurrency limit counts this request
	// now: the attempt's and, while it is being decided, the stable
	// version's. Every slot taken is given back exactly once — when its
	// attempt is recorded, when its admission is returned, or at the
	// latest when the request finishes, whatever path it took.
	held    []*upstream
	heldBuf [2]*upstream
	// busy is the version whose concurrency limit last refused this
	// request, nil when none did.
	busy *upstream
}

// takeSlot counts the request against u's concurrency limit (the route's
// MaxConcurrency), reporting false when u is at the limit. Without a
// limit it counts nothing and always admits.
func (x *exchange) takeSlot(u *upstream) bool {
	limit := int64(x.route.Limits.MaxConcurrency)
	if limit <= 0 {
		return true
	}
	if u.slots.Add(1) > limit {
		u.slots.Add(-1)
		x.lim.busy = u
		x.g.metrics.ObserveConcurrencyRejected(u.key)
		return false
	}
	l := &x.lim
	if l.held == nil {
		l.held = l.heldBuf[:0]
	}
	l.held = append(l.held, u)
	return true
}

// giveSlot gives back one slot the request holds on u, if any.
func (x *exchange) giveSlot(u *upstream) {
	l := &x.lim
	if i := slices.Index(l.held, u); i >= 0 {
		u.slots.Add(-1)
		l.held = slices.Delete(l.held, i, i+1)
	}
}

// giveAllSlots gives back every slot still held; finish calls it.
func (x *exchange) giveAllSlots() {
	for _, u := range x.lim.held {
		u.slots.Add(-1)
	}
	x.lim.held = x.lim.held[:0]
}

// atCapacity answers 503 at once: the version that would answer (and
// the stable version, when the request may go there) is at its
// concurrency limit or otherwise refusing.
func (x *exchange) atCapacity() {
	x.w.Header().Set("Retry-After", "1")
	limit := x.route.Limits.MaxConcurrency
	v := x.version.Version
	msg := fmt.Sprintf("version %d of model %q is at its limit of %d requests in flight; retry in 1s", v, x.model, limit)
	if x.fallbackFrom != 0 {
		msg = fmt.Sprintf("versions %d and %d (stable) of model %q are at their limit of %d requests in flight or failing; retry in 1s", x.fallbackFrom, v, x.model, limit)
	}
	x.fail(http.StatusServiceUnavailable, "over_capacity", msg)
}

// clientAddr is the address of the caller's connection, without its
// port: anonymous callers are limited per address, as nginx's limit_req
// keyed by $binary_remote_addr does. Forwarding headers are not trusted.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// errResponseTooLarge is the write error of an answer over the cap; the
// proxy paths abort the client's connection on it.
var errResponseTooLarge = errors.New("answer is larger than the gateway's response cap")

// declaredOver reports whether an answer's Content-Length exceeds m.
func declaredOver(h http.Header, m int64) bool {
	cl := h.Get("Content-Length")
	if cl == "" {
		return false
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	return err == nil && n > m
}

// refuse answers 502 instead of an answer whose Content-Length is over
// the cap m, before any of it is sent; writes of its body then fail. The
// 502 goes out whole (with its Content-Length, flushed, Connection:
// close), as the proxy paths abort the connection on the failed write.
func (w *responseWriter) refuse(m int64) {
	x := w.x
	declared := w.Header().Get("Content-Length")
	x.answerTooLarge("refused", m)
	out := w.ResponseWriter
	clear(out.Header())
	msg := fmt.Sprintf("the model's answer is %s bytes, more than the gateway's limit of %d bytes", declared, m)
	if v := x.version; v != nil {
		msg = fmt.Sprintf("version %d of model %q answered %s bytes, more than the gateway's limit of %d bytes", v.Version, x.model, declared, m)
	}
	// Render the error in the request's protocol into a buffer, to send
	// it with its length.
	buf := newBufferWriter(64 << 10)
	w.ResponseWriter, w.failing = buf, true
	x.fail(http.StatusBadGateway, "response_too_large", msg)
	w.ResponseWriter, w.failing, w.refused = out, false, true
	x.status = http.StatusBadGateway // whatever the proxy path makes of the failed write
	h := out.Header()
	for k, v := range buf.header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(buf.body.Len()))
	h.Set("Connection", "close")
	out.WriteHeader(buf.status)
	_, _ = out.Write(buf.body.Bytes())
	_ = http.NewResponseController(out).Flush()
}

// cutOff ends an answer that outgrew the cap m after it started: it is
// recorded as 502 and the client's connection is aborted (finish), so
// the client sees it cut off, never a shorter answer that looks whole.
func (w *responseWriter) cutOff(m int64) {
	w.cut = true
	w.x.status = http.StatusBadGateway
	w.x.answerTooLarge("cut off", m)
}

func (x *exchange) answerTooLarge(what string, m int64) {
	ver := 0
	if v := x.version; v != nil {
		ver = v.Version
		x.g.metrics.ObserveResponseTooLarge(x.key(v))
	}
	x.g.log.LogAttrs(x.r.Context(), slog.LevelWarn, "answer over the response cap "+what,
		slog.String("request_id", x.id), slog.String("model", x.model), slog.Int("version", ver),
		slog.String("environment", x.env), slog.Int64("max_response_bytes", m))
}
