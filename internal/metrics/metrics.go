// Package metrics owns slipway's per-version live traffic metrics: what the
// gateway records for every request (status, latency, in-flight, token
// usage and its cost) kept two ways — as Prometheus collectors
// (slipway_gateway_*) for scraping, and as in-process sliding windows (last
// 10 s, 1 min, 5 min) that the API serves and rollout analysis reads with
// no scrape delay.
//
// Recording is O(1) and does not allocate once a version's series exists:
// series are found in a copy-on-write map read with one atomic load, and
// each series has its own mutex. Time comes from a clock.Clock, so tests
// move a fake clock instead of sleeping.
//
// Labels carry model, version, environment, status code, token kind and
// fixed outcome names only — never a caller's identity. Shadow versions'
// figures (shadow.go) are kept apart from live traffic. Beside the
// windows, every series keeps counters that only grow (totals.go), read
// as the judge's input for analysis runs longer than the windows. The
// package imports clock, analysis (for that input's type) and the
// Prometheus client; it must not import the gateway, deployments or
// stores.
package metrics

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/clock"
)

// Key names one served version of a model in one environment.
type Key struct {
	Model       string
	Environment string
	Version     int
}

// Price is what a version's tokens cost, in currency units per million
// tokens, so that cost can be compared across versions.
type Price struct {
	PerMTokPrompt     float64
	PerMTokCompletion float64
}

// cost of a usage; negative or non-finite prices count as zero.
func (p Price) cost(prompt, completion int) float64 {
	c := 0.0
	if p.PerMTokPrompt > 0 && !math.IsInf(p.PerMTokPrompt, 0) {
		c += float64(prompt) * p.PerMTokPrompt / 1e6
	}
	if p.PerMTokCompletion > 0 && !math.IsInf(p.PerMTokCompletion, 0) {
		c += float64(completion) * p.PerMTokCompletion / 1e6
	}
	return c
}

// IsError reports whether a status counts as an error in the windows: a
// 5xx answer, or a transport failure recorded as a status below 100.
// Client errors (4xx) are the caller's fault and do not count.
func IsError(status int) bool { return status >= 500 || status < 100 }

// Recorder records per-version traffic. It is safe for concurrent use.
type Recorder struct {
	clock clock.Clock
	prom  *collectors

	// series is an immutable map replaced on every new series, so the
	// hot path finds its series with one atomic load and no lock.
	series atomic.Pointer[map[Key]*series]
	mu     sync.Mutex // serialises series creation and removal
}

// series is one version's state.
type series struct {
	key      Key
	inFlight atomic.Int64
	done     func() // decrements in-flight; built once so InFlight does not allocate

	// Prometheus children, resolved once per series.
	duration   prometheus.Observer
	inFlightG  prometheus.Gauge
	prompt     prometheus.Counter
	completion prometheus.Counter
	cost       prometheus.Counter
	breakerG   prometheus.Gauge

	breaker atomic.Int32 // a BreakerState's index in breakerStates

	mu     sync.Mutex
	codes  map[int]prometheus.Counter // requests_total by status code
	ring   ring
	shadow *shadowRing // nil until the version is shadowed (shadow.go)
	total  cumulative  // counts since the series began (totals.go)
}

// New returns a recorder whose collectors are registered on reg (a private
// registry when nil) and whose windows read time from clk (the wall clock
// when nil). It panics if the collectors are already registered on reg, as
// prometheus.MustRegister does: wiring one recorder per registry is a
// program invariant.
func New(reg prometheus.Registerer, clk clock.Clock) *Recorder {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if clk == nil {
		clk = clock.Real{}
	}
	r := &Recorder{clock: clk, prom: newCollectors(reg)}
	empty := map[Key]*series{}
	r.series.Store(&empty)
	return r
}

// get returns the series of k, creating it on first use.
func (r *Recorder) get(k Key) *series {
	if s := (*r.series.Load())[k]; s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.series.Load()
	if s := old[k]; s != nil {
		return s
	}
	s := r.prom.newSeries(k)
	s.total.begin(r.clock.Now())
	next := make(map[Key]*series, len(old)+1)
	for kk, v := range old {
		next[kk] = v
	}
	next[k] = s
	r.series.Store(&next)
	return s
}

// Observe records one answered request: its status code (0 for a
// transport failure before any status) and how long it took.
func (r *Recorder) Observe(k Key, status int, latency time.Duration) {
	s := r.get(k)
	now := r.clock.Now().Unix()
	idx := latIndex(latency)
	isErr := IsError(status)

	s.mu.Lock()
	b := s.ring.at(now)
	b.count++
	if isErr {
		b.errors++
	}
	b.lat[idx]++
	s.total.add(status, isErr, idx)
	c := s.codes[status]
	if c == nil {
		c = r.prom.requests.WithLabelValues(k.Model, strconv.Itoa(k.Version), k.Environment, strconv.Itoa(status))
		s.codes[status] = c
	}
	s.mu.Unlock()

	c.Inc()
	s.duration.Observe(latency.Seconds())
}

// ObserveTokens records the token usage of one answer and its cost at the
// version's price. Negative counts are ignored.
func (r *Recorder) ObserveTokens(k Key, prompt, completion int, price Price) {
	prompt, completion = max(prompt, 0), max(completion, 0)
	if prompt == 0 && completion == 0 {
		return
	}
	s := r.get(k)
	cost := price.cost(prompt, completion)
	now := r.clock.Now().Unix()

	s.mu.Lock()
	b := s.ring.at(now)
	b.promptTokens += uint64(prompt)
	b.completionTokens += uint64(completion)
	b.cost += cost
	s.mu.Unlock()

	s.prompt.Add(float64(prompt))
	s.completion.Add(float64(completion))
	if cost > 0 {
		s.cost.Add(cost)
	}
}

// InFlight counts a request as in flight until the returned function is
// called; call it exactly once.
func (r *Recorder) InFlight(k Key) func() {
	s := r.get(k)
	s.inFlight.Add(1)
	s.inFlightG.Inc()
	return s.done
}

// ObserveUnrouted counts a request the gateway answered without reaching
// any version (unknown model, bad request, body too large …). Its labels
// hold the status code only: the model name a caller typed is unbounded.
func (r *Recorder) ObserveUnrouted(status int) {
	r.prom.unrouted.WithLabelValues(strconv.Itoa(status)).Inc()
}

// RetryOutcome says what became of a retry the gateway wanted.
type RetryOutcome string

// Retry outcomes.
const (
	// RetryRetried: the failed attempt was tried again.
	RetryRetried RetryOutcome = "retried"
	// RetryBudgetExhausted: the version's retry budget was spent.
	RetryBudgetExhausted RetryOutcome = "budget_exhausted"
	// RetryDeadlineExceeded: no time was left before the overall deadline.
	RetryDeadlineExceeded RetryOutcome = "deadline_exceeded"
)

// ObserveRetry counts a retry the gateway wanted after a failed attempt
// at version k, and what became of it.
func (r *Recorder) ObserveRetry(k Key, outcome RetryOutcome) {
	r.prom.retries.WithLabelValues(k.Model, strconv.Itoa(k.Version), k.Environment, string(outcome)).Inc()
}

// ObserveFallback counts a request of version k answered by version to,
// the stable version, instead.
func (r *Recorder) ObserveFallback(k Key, to int) {
	r.prom.fallback.WithLabelValues(k.Model, k.Environment, strconv.Itoa(k.Version), strconv.Itoa(to)).Inc()
}

// BreakerState is the state of a version's circuit breaker.
type BreakerState string

// Breaker states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerHalfOpen BreakerState = "half-open"
	BreakerOpen     BreakerState = "open"
)

// breakerStates are the states in the order of the gauge's values.
var breakerStates = [...]BreakerState{BreakerClosed, BreakerHalfOpen, BreakerOpen}

// SetBreaker records a change of version k's circuit breaker, shown in
// snapshots and exported as a gauge (0 closed, 1 half-open, 2 open).
func (r *Recorder) SetBreaker(k Key, state BreakerState) {
	i := 0
	for j, st := range breakerStates {
		if st == state {
			i = j
		}
	}
	s := r.get(k)
	s.breaker.Store(int32(i))
	s.breakerG.Set(float64(i))
}

// VersionWindows is the live traffic of one served version.
type VersionWindows struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	Version     int    `json:"version"`
	InFlight    int64  `json:"in_flight"`
	// Breaker is the state of the version's circuit breaker as last
	// changed by traffic: closed, open or half-open. An open breaker
	// whose cool-down has passed shows open until a request probes it.
	Breaker BreakerState `json:"breaker"`
	// Windows are 10s, 1m and 5m, in that order.
	Windows []Window `json:"windows"`
	// Shadow, for a version that got mirrored requests, is what it did
	// with them over the same windows; absent otherwise.
	Shadow []ShadowWindow `json:"shadow,omitempty"`
}

// Window returns the window of the given name ("10s", "1m", "5m").
func (v VersionWindows) Window(name string) (Window, bool) {
	for _, w := range v.Windows {
		if w.Window == name {
			return w, true
		}
	}
	return Window{}, false
}

// Snapshot returns the windows of every version of model that recorded
// traffic in env, in version order.
func (r *Recorder) Snapshot(model, env string) []VersionWindows {
	now := r.clock.Now().Unix()
	var out []VersionWindows
	for k, s := range *r.series.Load() {
		if k.Model != model || k.Environment != env {
			continue
		}
		s.mu.Lock()
		w := s.ring.windows(now)
		var sw []ShadowWindow
		if s.shadow != nil {
			sw = s.shadow.windows(now)
		}
		s.mu.Unlock()
		out = append(out, VersionWindows{
			Model: k.Model, Environment: k.Environment, Version: k.Version,
			InFlight: s.inFlight.Load(), Breaker: breakerStates[s.breaker.Load()], Windows: w, Shadow: sw,
		})
	}
	slices.SortFunc(out, func(a, b VersionWindows) int { return cmp.Compare(a.Version, b.Version) })
	return out
}

// Forget drops a version's windows and Prometheus series, for a version
// that no longer serves. Requests still in flight finish without error.
func (r *Recorder) Forget(k Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.series.Load()
	if _, ok := old[k]; !ok {
		return
	}
	next := make(map[Key]*series, len(old))
	for kk, v := range old {
		if kk != k {
			next[kk] = v
		}
	}
	r.series.Store(&next)
	r.prom.forget(k)
}
