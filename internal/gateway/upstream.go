package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
)

// upstream is the resilience state of one served version — model,
// environment and version, as metrics key it: its circuit breaker and its
// retry budget. The breaker's state and generation are mirrored in one
// atomic word, so admitting a call to a closed breaker is one load; the
// mutex is taken to record a result and while the breaker is not closed.
type upstream struct {
	key      metrics.Key
	disabled bool // breakers off: always admit

	fast atomic.Uint64 // generation<<2 | state
	// slots counts the requests holding a place in the version's
	// concurrency limit (limits.go); only counted while it has one.
	slots atomic.Int64

	mu     sync.Mutex
	c      circuit
	budget retryBudget
}

func newUpstream(k metrics.Key, bp BreakerPolicy, rp RetryPolicy) *upstream {
	return &upstream{key: k, disabled: bp.Disabled, c: newCircuit(bp), budget: newRetryBudget(rp)}
}

func (u *upstream) publish() { u.fast.Store(u.c.gen<<2 | uint64(u.c.state)) }

// allow admits a call or refuses it. changed reports that the breaker
// moved (open to half-open); state is then its new state.
func (u *upstream) allow(clk clock.Clock) (t ticket, state breakerState, changed bool) {
	f := u.fast.Load()
	if breakerState(f&3) == stateClosed || u.disabled {
		return ticket{ok: true, gen: f >> 2}, stateClosed, false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	t, changed = u.c.allow(clk.Now())
	if changed {
		u.publish()
	}
	return t, u.c.state, changed
}

// finish records the outcome of a call admitted with t; request counts
// it in the retry budget as a new request (not a retry). changed reports
// that the breaker moved; state is then its new state.
func (u *upstream) finish(now time.Time, t ticket, o outcome, request bool) (state breakerState, changed bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if request {
		u.budget.request(now.Unix())
	}
	if u.disabled {
		return stateClosed, false
	}
	if changed = u.c.record(now, t, o); changed {
		u.publish()
	}
	return u.c.state, changed
}

// withdraw takes a retry from the budget; request first counts the
// request being retried, when finish has not counted it yet.
func (u *upstream) withdraw(now time.Time, request bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if request {
		u.budget.request(now.Unix())
	}
	return u.budget.withdraw(now.Unix())
}

// retryAfter is how long the breaker still refuses calls.
func (u *upstream) retryAfter(now time.Time) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.c.retryAfter(now)
}

// upstreams holds the state of every version the gateway called, in a
// copy-on-write map read with one atomic load.
type upstreams struct {
	breaker BreakerPolicy
	retry   RetryPolicy
	m       atomic.Pointer[map[metrics.Key]*upstream]
	mu      sync.Mutex // serialises creation
}

func newUpstreams(bp BreakerPolicy, rp RetryPolicy) *upstreams {
	u := &upstreams{breaker: bp, retry: rp}
	empty := map[metrics.Key]*upstream{}
	u.m.Store(&empty)
	return u
}

// get returns the state of k, creating it on first use. Creating one
// drops the state of versions the routing table t no longer serves, so
// the map holds what is served plus what was created since.
func (us *upstreams) get(k metrics.Key, t *deployment.Table) *upstream {
	if u := (*us.m.Load())[k]; u != nil {
		return u
	}
	us.mu.Lock()
	defer us.mu.Unlock()
	old := *us.m.Load()
	if u := old[k]; u != nil {
		return u
	}
	next := make(map[metrics.Key]*upstream, len(old)+1)
	for kk, v := range old {
		if r := t.Lookup(kk.Model, kk.Environment); r != nil && r.Version(kk.Version) != nil {
			next[kk] = v
		}
	}
	u := newUpstream(k, us.breaker, us.retry)
	next[k] = u
	us.m.Store(&next)
	return u
}

// state returns the breaker state of k, closed when it has none.
func (us *upstreams) state(k metrics.Key) breakerState {
	if u := (*us.m.Load())[k]; u != nil && !u.disabled {
		return breakerState(u.fast.Load() & 3)
	}
	return stateClosed
}
