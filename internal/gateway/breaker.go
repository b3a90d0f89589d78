package gateway

import (
	"errors"
	"fmt"
	"time"
)

// This file is the circuit breaker of one version endpoint as a pure
// state machine: a table of (state, event) → state and a circuit that
// turns outcomes and the time it is given into events. The concurrency
// wrapper lives in upstream.go; nothing here locks, sleeps or reads a
// clock, so a test walks every transition with made-up times.

// BreakerPolicy says when a version's breaker opens and how it recovers.
// The zero value takes every default.
type BreakerPolicy struct {
	// Disabled turns breakers off: every version always gets its traffic.
	Disabled bool
	// ConsecutiveFailures opens the breaker after that many failures in
	// a row (default 5).
	ConsecutiveFailures int
	// FailureRatio opens it when at least this fraction of the calls in
	// the last Window failed (default 0.5), once there were at least
	// MinRequests calls in the window (default 20).
	FailureRatio float64
	MinRequests  int
	Window       time.Duration // default 10 s, at most 5 min
	// CoolDown is how long an open breaker refuses calls before it lets
	// one probe through (default 5 s).
	CoolDown time.Duration
}

func (p BreakerPolicy) withDefaults() BreakerPolicy {
	if p.ConsecutiveFailures <= 0 {
		p.ConsecutiveFailures = 5
	}
	if p.FailureRatio <= 0 || p.FailureRatio > 1 {
		p.FailureRatio = 0.5
	}
	if p.MinRequests <= 0 {
		p.MinRequests = 20
	}
	if p.Window < time.Second {
		p.Window = 10 * time.Second
	}
	p.Window = min(p.Window, 5*time.Minute)
	if p.CoolDown <= 0 {
		p.CoolDown = 5 * time.Second
	}
	return p
}

// breakerState is where a breaker is.
type breakerState uint8

const (
	// stateClosed: calls go through; outcomes are counted.
	stateClosed breakerState = iota
	// stateOpen: calls are refused until the cool-down has passed.
	stateOpen
	// stateHalfOpen: one probe call is out; others are refused.
	stateHalfOpen
)

func (s breakerState) String() string {
	switch s {
	case stateClosed:
		return "closed"
	case stateOpen:
		return "open"
	case stateHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("breakerState(%d)", uint8(s))
}

// breakerEvent is what happened to a breaker.
type breakerEvent uint8

const (
	evSuccess        breakerEvent = iota // a call succeeded
	evFailure                            // a call failed, thresholds not reached
	evTrip                               // a call failed and a threshold is reached
	evCoolDown                           // a call arrived after the cool-down: it is the probe
	evProbeSuccess                       // the probe succeeded
	evProbeFailure                       // the probe failed
	evProbeAbandoned                     // the probe ended neither way (the caller went away)
)

func (e breakerEvent) String() string {
	return [...]string{"success", "failure", "trip", "cool-down", "probe-success", "probe-failure", "probe-abandoned"}[e]
}

type breakerCell struct {
	from  breakerState
	event breakerEvent
}

// breakerTransitions is the whole state machine. Anything not listed is
// not a transition (breakerNext refuses it).
var breakerTransitions = map[breakerCell]breakerState{
	{stateClosed, evSuccess}:          stateClosed,
	{stateClosed, evFailure}:          stateClosed,
	{stateClosed, evTrip}:             stateOpen,
	{stateOpen, evCoolDown}:           stateHalfOpen,
	{stateHalfOpen, evProbeSuccess}:   stateClosed,
	{stateHalfOpen, evProbeFailure}:   stateOpen,
	{stateHalfOpen, evProbeAbandoned}: stateHalfOpen,
}

var errInvalidTransition = errors.New("invalid breaker transition")

// breakerNext returns the state event leads to from s.
func breakerNext(s breakerState, e breakerEvent) (breakerState, error) {
	next, ok := breakerTransitions[breakerCell{s, e}]
	if !ok {
		return s, fmt.Errorf("%w: %s on %s", errInvalidTransition, s, e)
	}
	return next, nil
}

// outcome is how a call ended, for the breaker.
type outcome uint8

const (
	outcomeSuccess outcome = iota // any answer below 500
	outcomeFailure                // transport error, timeout, 5xx
	outcomeNeutral                // the caller went away: says nothing of the version
)

// ticket is what admitting a call hands out, and what its result must
// bring back: results of calls admitted under an older generation (the
// breaker changed state since) are ignored, so a slow success admitted
// before the breaker opened cannot close it.
type ticket struct {
	ok    bool   // the call may go
	probe bool   // it is the half-open probe
	gen   uint64 // the generation it was admitted under
}

// circuit is one breaker's state. It is not safe for concurrent use.
type circuit struct {
	p           BreakerPolicy
	state       breakerState
	gen         uint64 // bumps on every state change
	consecutive int
	openedAt    time.Time
	probing     bool
	buckets     []circuitBucket // ring indexed by second mod len
}

type circuitBucket struct {
	sec             int64
	calls, failures uint32
}

func newCircuit(p BreakerPolicy) circuit {
	return circuit{p: p, buckets: make([]circuitBucket, int(p.Window/time.Second))}
}

// fire moves to the state event leads to, reporting whether it changed.
func (c *circuit) fire(e breakerEvent, now time.Time) bool {
	next, err := breakerNext(c.state, e)
	if err != nil {
		panic(err) // a bug in circuit, which only fires events its state allows
	}
	if next == c.state {
		return false
	}
	c.state = next
	c.gen++
	c.consecutive, c.probing = 0, false
	switch next {
	case stateOpen:
		c.openedAt = now
	case stateClosed:
		clear(c.buckets) // a closed breaker starts counting afresh
	case stateHalfOpen:
		c.probing = true
	}
	return true
}

// allow says whether a call may go now. An open breaker whose cool-down
// has passed half-opens and admits the call as its probe.
func (c *circuit) allow(now time.Time) (t ticket, changed bool) {
	switch c.state {
	case stateClosed:
		return ticket{ok: true, gen: c.gen}, false
	case stateOpen:
		if now.Sub(c.openedAt) < c.p.CoolDown {
			return ticket{gen: c.gen}, false
		}
		changed = c.fire(evCoolDown, now)
		return ticket{ok: true, probe: true, gen: c.gen}, changed
	default: // half-open
		if c.probing {
			return ticket{gen: c.gen}, false // the probe is out
		}
		c.probing = true // the last probe was abandoned: this one probes
		return ticket{ok: true, probe: true, gen: c.gen}, false
	}
}

// retryAfter is how long an open breaker still refuses calls.
func (c *circuit) retryAfter(now time.Time) time.Duration {
	if c.state != stateOpen {
		return 0
	}
	return max(c.p.CoolDown-now.Sub(c.openedAt), 0)
}

// record takes the outcome of a call admitted with t, reporting whether
// the state changed.
func (c *circuit) record(now time.Time, t ticket, o outcome) bool {
	if !t.ok || t.gen != c.gen {
		return false // admitted under another state: stale
	}
	if c.state == stateHalfOpen {
		if !t.probe {
			return false
		}
		switch o {
		case outcomeSuccess:
			return c.fire(evProbeSuccess, now)
		case outcomeFailure:
			return c.fire(evProbeFailure, now)
		default:
			c.probing = false // let the next call probe
			c.fire(evProbeAbandoned, now)
			return false
		}
	}
	if c.state != stateClosed || o == outcomeNeutral {
		return false
	}
	b := c.at(now.Unix())
	b.calls++
	if o == outcomeSuccess {
		c.consecutive = 0
		return c.fire(evSuccess, now)
	}
	b.failures++
	c.consecutive++
	if c.consecutive >= c.p.ConsecutiveFailures || c.ratioTripped(now.Unix()) {
		return c.fire(evTrip, now)
	}
	return c.fire(evFailure, now)
}

// ratioTripped reports whether the failure ratio over the window has
// reached the threshold with enough calls to judge.
func (c *circuit) ratioTripped(sec int64) bool {
	var calls, failures uint64
	n := int64(len(c.buckets))
	for i := range c.buckets {
		if b := &c.buckets[i]; b.sec > sec-n && b.sec <= sec {
			calls += uint64(b.calls)
			failures += uint64(b.failures)
		}
	}
	return calls >= uint64(c.p.MinRequests) && float64(failures) >= c.p.FailureRatio*float64(calls)
}

func (c *circuit) at(sec int64) *circuitBucket {
	n := int64(len(c.buckets))
	b := &c.buckets[((sec%n)+n)%n]
	if b.sec != sec {
		*b = circuitBucket{sec: sec}
	}
	return b
}
