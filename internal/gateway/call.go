package gateway

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
)

// This file is the life of one routed request once its version is
// chosen: admission by the version's breaker, attempts, retries within
// the budget and the deadline, and fallback to the stable version.
//
//	chosen version ──breaker open──> stable version ──breaker open──> 503
//	      │ attempt fails (retryable, budget, deadline) → retry after backoff
//	      │ attempts spent, idempotent (or never sent)  → stable version
//	      └ answer starts ─────────────────────────────── no retry, ever
//
// In-process versions are not retried (there is no connection between
// to fail), but their outcomes feed their breakers like any other.

// nextStep is what follows a failed attempt.
type nextStep uint8

const (
	stepNone     nextStep = iota // answer the failure
	stepRetry                    // try the same version again
	stepFallback                 // try the stable version
)

// failure is how an attempt went wrong (kind failNone: it answered).
type failure struct {
	kind     failKind
	status   int   // the upstream's status, for failStatus
	timedOut bool  // the per-try timeout fired
	err      error // the transport's error, for the log
}

// code is the status a failed attempt is recorded with in metrics.
func (f failure) code() int {
	switch {
	case f.kind == failStatus:
		return f.status
	case f.kind == failCanceled:
		return 499
	case f.timedOut:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// leg is the state of the calls to one version for one request.
type leg struct {
	rv         *deployment.RouteVersion
	up         *upstream
	tk         ticket
	t          target
	tries      int
	counted    bool // the request is counted in the version's retry budget
	start      time.Time
	tryTimeout time.Duration

	// Set while an attempt runs.
	status  int // the upstream's status, once its head arrived
	decided bool
	next    nextStep
	wrote   atomic.Bool // set by the transport's goroutine
	trace   *httptrace.ClientTrace

	// The stable version's admission, when next is stepFallback.
	pendingUp *upstream
	pendingTk ticket
}

// enter starts a leg on rv with an admitted ticket.
func (x *exchange) enter(rv *deployment.RouteVersion, u *upstream, tk ticket) {
	l := &x.leg
	l.rv, l.up, l.tk, l.t = rv, u, tk, x.target(rv)
	l.tries, l.counted = 0, false
}

// target says where a request goes on version rv.
func (x *exchange) target(rv *deployment.RouteVersion) target {
	if x.api == apiOpenAI {
		return x.openAITarget(rv)
	}
	return x.oipTarget(rv)
}

func (x *exchange) key(rv *deployment.RouteVersion) metrics.Key {
	return metrics.Key{Model: x.model, Environment: x.env, Version: rv.Version}
}

// admit asks rv's breaker for a ticket.
func (x *exchange) admit(rv *deployment.RouteVersion) (*upstream, ticket) {
	u := x.g.upstreams.get(x.key(rv), x.g.table())
	if !x.takeSlot(u) {
		return u, ticket{} // at its concurrency limit: refused like an open breaker
	}
	tk, st, changed := u.allow(x.g.clock)
	if !tk.ok {
		x.giveSlot(u)
	}
	if changed {
		x.breakerChanged(u.key, st)
	}
	return u, tk
}

func (x *exchange) breakerChanged(k metrics.Key, st breakerState) {
	x.g.metrics.SetBreaker(k, metrics.BreakerState(st.String()))
	x.g.log.LogAttrs(x.r.Context(), slog.LevelWarn, "circuit breaker changed",
		slog.String("model", k.Model), slog.Int("version", k.Version), slog.String("environment", k.Environment),
		slog.String("state", st.String()), slog.String("request_id", x.id))
}

// call sends the request to the chosen version (x.version) and answers
// the client on w: retries, breakers and fallback as the file comment
// says.
func (x *exchange) call(w http.ResponseWriter) {
	g := x.g
	if st := x.route.StableVersion(); st != nil && !g.noFallback && !x.pinned &&
		st.Version != x.version.Version && orProtocol(st.Endpoint.Protocol) == orProtocol(x.version.Endpoint.Protocol) {
		x.stable = st
	}
	u, tk := x.admit(x.version)
	if !tk.ok {
		if x.stable == nil {
			x.circuitOpen(u)
			return
		}
		// The request was the version's; the rollout judge must see that
		// it could not take it (metrics.Totals.Refused).
		g.metrics.ObserveRefused(x.key(x.version))
		if u, tk = x.admit(x.stable); !tk.ok {
			x.fallbackFrom, x.version = x.version.Version, x.stable // named in the answer, not counted
			x.circuitOpen(u)
			return
		}
		x.fallBack()
	}
	x.enter(x.version, u, tk)
	x.deadline = time.Now().Add(g.retry.Deadline)
	for {
		f := x.attempt(w)
		if f.kind == failNone {
			return
		}
		if f.kind == failCanceled {
			x.status = 499
			return
		}
		l := &x.leg
		step := l.next
		if !l.decided {
			step = x.plan(f)
		}
		switch step {
		case stepRetry:
			d := min(g.retry.backoff(l.tries-1, g.rand), time.Until(x.deadline))
			if err := g.sleep(x.r.Context(), d); err != nil {
				x.status = 499 // the caller went away
				return
			}
			u, tk := x.admit(l.rv)
			if !tk.ok || time.Until(x.deadline) <= 0 {
				if tk.ok { // admitted but no time left: give the ticket back
					l.up.finish(g.clock.Now(), tk, outcomeNeutral, false)
					x.giveSlot(u)
				}
				if !x.planFallback(f) {
					x.answerFailure(f)
					return
				}
				x.abandon(f)
				x.fallBack()
				x.enter(x.version, l.pendingUp, l.pendingTk)
				continue
			}
			g.metrics.ObserveRetry(x.key(l.rv), metrics.RetryRetried)
			x.abandon(f)
			l.up, l.tk = u, tk
		case stepFallback:
			x.abandon(f)
			x.fallBack()
			x.enter(x.version, l.pendingUp, l.pendingTk)
		default:
			x.answerFailure(f)
			return
		}
	}
}

// plan decides what follows a failed attempt, once: another try of the
// same version when the failure is retryable, attempts, time and budget
// remain; else the stable version when the request may go there.
func (x *exchange) plan(f failure) nextStep {
	l, g := &x.leg, x.g
	if retryable(f.kind, x.idempotent) && l.rv.Endpoint.Handler == nil && l.tries < g.retry.MaxAttempts {
		count := !l.counted
		l.counted = true
		switch {
		case time.Until(x.deadline) <= 0:
			g.metrics.ObserveRetry(x.key(l.rv), metrics.RetryDeadlineExceeded)
		case !l.up.withdraw(g.clock.Now(), count):
			g.metrics.ObserveRetry(x.key(l.rv), metrics.RetryBudgetExhausted)
		default:
			return stepRetry
		}
	}
	if x.planFallback(f) {
		return stepFallback
	}
	return stepNone
}

// planFallback reports whether a failed request may go to the stable
// version — it has not already, there is one, the request is idempotent
// or never reached the model, there is time left, and the stable
// version's breaker admits it — and keeps the admission.
func (x *exchange) planFallback(f failure) bool {
	if x.stable == nil || x.fallbackFrom != 0 || f.kind == failNone || f.kind == failCanceled {
		return false
	}
	if !x.idempotent && f.kind != failUnsent {
		return false
	}
	if time.Until(x.deadline) <= 0 {
		return false
	}
	u, tk := x.admit(x.stable)
	if !tk.ok {
		return false
	}
	x.leg.pendingUp, x.leg.pendingTk = u, tk
	return true
}

// fallBack moves the request from the version it was routed to onto the
// stable version.
func (x *exchange) fallBack() {
	from := x.version
	x.fallbackFrom = from.Version
	x.g.metrics.ObserveFallback(x.key(from), x.stable.Version)
	x.version = x.stable
}

// attempt makes one call to the leg's version, writing its answer to w
// unless it failed in a way another attempt may repair, and records the
// outcome in the version's breaker. It returns how it failed (failNone:
// it answered, whatever the status).
func (x *exchange) attempt(w http.ResponseWriter) (f failure) {
	l := &x.leg
	l.tries++
	l.status, l.decided, l.next = 0, false, stepNone
	l.wrote.Store(false)
	l.start = time.Now()
	if x.span != nil {
		defer x.endAttempt(x.startAttempt(), w, &f)
	}
	x.done = x.g.metrics.InFlight(x.key(l.rv))
	recorded := false
	defer func() {
		if !recorded { // a panic: an in-process handler failed or an answer was cut off
			o := outcomeFailure
			if x.r.Context().Err() != nil {
				o = outcomeNeutral
			}
			x.record(o)
		}
	}()
	ep := l.rv.Endpoint
	o := outcomeSuccess
	switch {
	case l.rv.Fault != nil && x.injectFault(w, &f): // fault.go
	case ep.Handler != nil:
		x.forwardInProcess(w, ep, l.t)
		if writtenStatus(w) >= 500 {
			o = outcomeFailure
		}
	case ep.URL == nil || ep.Transport == nil:
		f = failure{kind: failFatal, err: errNoEndpoint}
	default:
		f = x.forwardRemote(w, ep, l.t)
	}
	switch {
	case x.r.Context().Err() != nil:
		o = outcomeNeutral
	case f.kind != failNone || l.status >= 500:
		o = outcomeFailure
	}
	recorded = true
	x.record(o)
	return f
}

// record gives the attempt's outcome to the version's breaker and counts
// the request in its retry budget once.
func (x *exchange) record(o outcome) {
	l := &x.leg
	count := !l.counted
	l.counted = true
	if st, changed := l.up.finish(x.g.clock.Now(), l.tk, o, count); changed {
		x.breakerChanged(l.up.key, st)
	}
	x.giveSlot(l.up)
}

// abandon closes a failed attempt that another one replaces: it is
// recorded in the metrics of its version with its failure status.
func (x *exchange) abandon(f failure) {
	l := &x.leg
	x.g.metrics.Observe(x.key(l.rv), f.code(), time.Since(l.start))
	x.done()
	x.done = nil
	x.g.log.LogAttrs(x.r.Context(), slog.LevelWarn, "upstream attempt failed",
		slog.String("request_id", x.id), slog.String("model", x.model), slog.Int("version", l.rv.Version),
		slog.String("environment", x.env), slog.Int("attempt", l.tries), slog.Int("status", f.code()),
		slog.Any("error", f.err))
}

// writtenStatus is the status an in-process handler answered on w.
func writtenStatus(w http.ResponseWriter) int {
	switch w := w.(type) {
	case *responseWriter:
		return w.status
	case *bufferWriter:
		return w.status
	}
	return 0
}

// circuitOpen answers 503 at once: the version that would answer has an
// open breaker. Retry-After says when it will probe again.
func (x *exchange) circuitOpen(u *upstream) {
	if x.lim.busy != nil {
		x.atCapacity() // a concurrency limit refused it, not (only) a breaker
		return
	}
	after := u.retryAfter(x.g.clock.Now())
	secs := max(1, int(math.Ceil(after.Seconds())))
	x.w.Header().Set("Retry-After", strconv.Itoa(secs))
	msg := fmt.Sprintf("version %d of model %q is failing and its circuit breaker is open; retry in %ds", x.version.Version, x.model, secs)
	if x.fallbackFrom != 0 {
		msg = fmt.Sprintf("versions %d and %d (stable) of model %q are failing and their circuit breakers are open; retry in %ds",
			x.fallbackFrom, x.version.Version, x.model, secs)
	}
	x.fail(http.StatusServiceUnavailable, "circuit_open", msg)
}

// answerFailure answers the last failed attempt: 504 when the upstream
// was silent past the per-try timeout, its own status when it answered
// 502/503/504 that a planned retry replaced, 502 for anything else it
// did wrong; 503 when even the stable version failed after a fallback.
func (x *exchange) answerFailure(f failure) {
	if f.kind == failCanceled || x.r.Context().Err() != nil {
		x.status = 499
		return
	}
	l := &x.leg
	v := x.version.Version
	x.g.log.LogAttrs(x.r.Context(), slog.LevelWarn, "upstream failed",
		slog.String("request_id", x.id), slog.String("model", x.model), slog.Int("version", v),
		slog.String("environment", x.env), slog.Int("attempts", l.tries), slog.Int("status", f.code()),
		slog.Any("error", f.err))
	var reason string
	switch {
	case f.timedOut && transportTimeout(f.err):
		reason = "did not answer within its timeout option"
	case f.timedOut:
		reason = "did not answer within " + l.tryTimeout.String()
	case f.kind == failStatus:
		reason = "answered " + strconv.Itoa(f.status) + " " + http.StatusText(f.status)
	default:
		reason = "failed: " + upstreamReason(f.err)
	}
	switch {
	case x.fallbackFrom != 0:
		x.fail(http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("version %d of model %q failed, and the stable version %d %s", x.fallbackFrom, x.model, v, reason))
	case f.timedOut:
		x.fail(http.StatusGatewayTimeout, "upstream_timeout", fmt.Sprintf("version %d of model %q %s", v, x.model, reason))
	case f.kind == failStatus:
		x.fail(f.status, "upstream_error", fmt.Sprintf("version %d of model %q %s", v, x.model, reason))
	default:
		x.fail(http.StatusBadGateway, "upstream_error", fmt.Sprintf("version %d of model %q %s", v, x.model, reason))
	}
}
