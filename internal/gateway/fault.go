package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// This file injects a version's fault (deployment.RouteVersion.Fault)
// into each attempt on it, before anything is forwarded: with its delay
// share the attempt first waits the delay, and with its abort share it
// is answered with the abort status without calling the model. An
// injected abort is what the version answered: it goes through the same
// path as a real answer of that status — a 502, 503 or 504 from a remote
// version may be retried and fall back to the stable version, a 5xx
// counts as a failure in the version's breaker, and the version's
// metrics record the status — so the rollout judge sees it exactly as it
// would see the real thing. Each attempt draws again, as each call to a
// flaky server would fail independently; a fallback to the stable
// version draws with the stable version's own fault. A version without
// a fault costs one nil check.

// HeaderFault marks an answer the gateway shaped with an injected fault:
// "abort" when it answered in place of the model, "delay" when it held
// the request first.
const HeaderFault = "X-Slipway-Fault"

// errFaultAbort is the cause of an injected abort that another attempt
// replaces, for the log.
var errFaultAbort = errors.New("aborted by fault injection")

// faultResolution is how finely fault shares are drawn: in millionths,
// so domain.MinFaultPercent (0.0001 %) is one.
const faultResolution = 1_000_000

// faultHit draws whether a request falls in a share of percent (0–100).
func (g *Gateway) faultHit(percent float64) bool {
	switch {
	case percent >= 100:
		return true
	case percent <= 0:
		return false
	}
	return g.rand(faultResolution) < int(percent*faultResolution/100+0.5)
}

// injectFault applies the fault of the attempt's version. It reports
// whether the fault decided the attempt — it aborted it, or the caller
// went away during the delay — and sets *f as attempt's result; false
// means the attempt goes on to the model.
func (x *exchange) injectFault(w http.ResponseWriter, f *failure) bool {
	l := &x.leg
	ft := l.rv.Fault
	if ft.DelayPercent > 0 && x.g.faultHit(ft.DelayPercent) {
		w.Header().Set(HeaderFault, "delay")
		if err := x.g.sleep(x.r.Context(), time.Duration(ft.Delay)); err != nil {
			*f = failure{kind: failCanceled, err: err}
			return true
		}
	}
	if ft.AbortPercent > 0 && x.g.faultHit(ft.AbortPercent) {
		*f = x.abortFault(w, ft)
		return true
	}
	return false
}

// abortFault answers the attempt with the fault's status, as the
// version would have: a 502/503/504 from a remote version is decided
// like a real one (retry, fallback, or answered), anything else is
// answered at once.
func (x *exchange) abortFault(w http.ResponseWriter, ft *domain.Fault) failure {
	l := &x.leg
	status := ft.AbortStatus
	l.status = status
	if retryableStatus(status) && l.rv.Endpoint.Handler == nil {
		l.decided = true
		if l.next = x.plan(failure{kind: failStatus, status: status}); l.next != stepNone {
			return failure{kind: failStatus, status: status, err: errFaultAbort}
		}
	}
	msg := fmt.Sprintf("version %d of model %q answered %d by fault injection (a deployment option for chaos tests; slipway deployment clear-fault removes it)",
		l.rv.Version, x.model, status)
	if status >= 500 {
		msg += " (request id " + x.id + ")"
	}
	w.Header().Set(HeaderFault, "abort")
	if x.api == apiOIP {
		oip.WriteError(w, status, msg)
		return failure{}
	}
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	writeJSON(w, status, openAIError{Error: openAIErrorDetail{Message: msg, Type: typ, Code: "fault_injected"}})
	return failure{}
}
