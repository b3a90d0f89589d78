package gateway

import (
	"errors"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/metrics"
)

// Every cell of the table: the listed transitions and nothing else.
func TestBreakerTransitionTable(t *testing.T) {
	want := map[breakerCell]breakerState{
		{stateClosed, evSuccess}:          stateClosed,
		{stateClosed, evFailure}:          stateClosed,
		{stateClosed, evTrip}:             stateOpen,
		{stateOpen, evCoolDown}:           stateHalfOpen,
		{stateHalfOpen, evProbeSuccess}:   stateClosed,
		{stateHalfOpen, evProbeFailure}:   stateOpen,
		{stateHalfOpen, evProbeAbandoned}: stateHalfOpen,
	}
	for s := stateClosed; s <= stateHalfOpen; s++ {
		for e := evSuccess; e <= evProbeAbandoned; e++ {
			next, err := breakerNext(s, e)
			w, ok := want[breakerCell{s, e}]
			switch {
			case ok && (err != nil || next != w):
				t.Errorf("%s on %s = %s, %v; want %s", e, s, next, err, w)
			case !ok && !errors.Is(err, errInvalidTransition):
				t.Errorf("%s on %s = %s, %v; want errInvalidTransition", e, s, next, err)
			}
		}
	}
	if len(breakerTransitions) != len(want) {
		t.Errorf("the table has %d cells, the test knows %d", len(breakerTransitions), len(want))
	}
}

// A walk through every transition of one circuit, time given by hand.
func TestCircuitWalk(t *testing.T) {
	p := BreakerPolicy{ConsecutiveFailures: 3, FailureRatio: 0.5, MinRequests: 10, Window: 10 * time.Second, CoolDown: 5 * time.Second}.withDefaults()
	c := newCircuit(p)
	t0 := time.Unix(1_000_000, 0)
	now := t0
	call := func(o outcome) (ticket, bool) {
		t.Helper()
		tk, _ := c.allow(now)
		if !tk.ok {
			t.Fatalf("at %v a call in state %s was refused", now.Sub(t0), c.state)
		}
		return tk, c.record(now, tk, o)
	}
	expect := func(step string, s breakerState) {
		t.Helper()
		if c.state != s {
			t.Fatalf("%s: state %s, want %s", step, c.state, s)
		}
	}
	refused := func(step string) {
		t.Helper()
		if tk, _ := c.allow(now); tk.ok {
			t.Fatalf("%s: a call was admitted in state %s", step, c.state)
		}
	}

	// closed --success/failure--> closed: failures short of 3 in a row.
	call(outcomeFailure)
	call(outcomeFailure)
	call(outcomeSuccess) // resets the streak
	call(outcomeFailure)
	call(outcomeFailure)
	expect("two failures after a success", stateClosed)
	// closed --trip--> open: the third failure in a row.
	stale, _ := c.allow(now) // admitted while closed, finishes late
	if _, changed := call(outcomeFailure); !changed {
		t.Fatal("the trip did not report a change")
	}
	expect("three failures in a row", stateOpen)
	refused("open, no cool-down yet")
	if got := c.retryAfter(now.Add(2 * time.Second)); got != 3*time.Second {
		t.Errorf("retry after %v, want 3s", got)
	}
	if c.record(now, stale, outcomeSuccess) || c.state != stateOpen {
		t.Fatal("a success admitted before the trip closed the breaker")
	}

	// open --cool-down--> half-open: one probe goes, the rest wait.
	now = now.Add(5*time.Second - time.Nanosecond)
	refused("one nanosecond before the cool-down ends")
	now = now.Add(time.Nanosecond)
	probe, changed := c.allow(now)
	if !probe.ok || !probe.probe || !changed {
		t.Fatalf("after the cool-down: ticket %+v changed %v, want the probe", probe, changed)
	}
	expect("probe out", stateHalfOpen)
	refused("half-open with the probe out")
	// half-open --probe-failure--> open, with a fresh cool-down.
	if !c.record(now, probe, outcomeFailure) {
		t.Fatal("probe failure did not report a change")
	}
	expect("probe failed", stateOpen)
	now = now.Add(4 * time.Second)
	refused("the cool-down restarted")
	now = now.Add(time.Second)

	// half-open --probe-abandoned--> half-open: the next call probes.
	probe, _ = c.allow(now)
	if c.record(now, probe, outcomeNeutral) {
		t.Fatal("an abandoned probe reported a change")
	}
	expect("probe abandoned", stateHalfOpen)
	probe, _ = c.allow(now)
	if !probe.ok || !probe.probe {
		t.Fatalf("after an abandoned probe: %+v, want a new probe", probe)
	}
	// A non-probe ticket cannot close a half-open breaker.
	if c.record(now, ticket{ok: true, gen: c.gen}, outcomeSuccess) {
		t.Fatal("a call that was not the probe closed the breaker")
	}
	// half-open --probe-success--> closed, counting afresh.
	if !c.record(now, probe, outcomeSuccess) {
		t.Fatal("probe success did not report a change")
	}
	expect("probe succeeded", stateClosed)
	call(outcomeFailure)
	call(outcomeFailure)
	expect("old failures were forgotten", stateClosed)

	// closed --trip--> open by ratio: half the calls of the window fail,
	// never three in a row, once there are at least 10.
	c = newCircuit(p)
	for i := range 9 {
		now = now.Add(100 * time.Millisecond)
		o := outcomeSuccess
		if i%2 == 0 {
			o = outcomeFailure
		}
		call(o)
	}
	expect("5 of 9 failed: too few calls to judge", stateClosed)
	call(outcomeSuccess)
	expect("5 of 10 failed, the last a success", stateClosed) // only failures trip
	call(outcomeFailure)
	expect("6 of 11 failed", stateOpen)

	// The ratio window slides: calls older than the window are gone. Six
	// failures in nine calls (never three in a row) are too few to judge;
	// a tenth call that fails trips the breaker within the window, and not
	// once the window has moved past the nine.
	for _, wait := range []time.Duration{0, 11 * time.Second} {
		c = newCircuit(p)
		for _, o := range []outcome{outcomeFailure, outcomeFailure, outcomeSuccess, outcomeFailure, outcomeFailure,
			outcomeSuccess, outcomeFailure, outcomeFailure, outcomeSuccess} {
			call(o)
		}
		expect("six of nine failed", stateClosed)
		now = now.Add(wait)
		call(outcomeFailure)
		if want := map[bool]breakerState{true: stateOpen, false: stateClosed}[wait == 0]; c.state != want {
			t.Fatalf("a tenth failure %v later: state %s, want %s", wait, c.state, want)
		}
	}

	// Neutral outcomes (the caller went away) count for nothing.
	c = newCircuit(p)
	for range 10 {
		call(outcomeNeutral)
	}
	call(outcomeFailure)
	call(outcomeFailure)
	expect("neutral outcomes", stateClosed)
}

// The concurrency wrapper: closed is one atomic load; the state reaches
// the metrics snapshot.
func TestUpstreamBreakerAndSnapshot(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	us := newUpstreams(BreakerPolicy{ConsecutiveFailures: 2}.withDefaults(), RetryPolicy{}.withDefaults(time.Second))
	k := metrics.Key{Model: "m", Environment: "production", Version: 2}
	u := us.get(k, nil)
	if us.get(k, nil) != u {
		t.Fatal("a second get made new state")
	}
	for range 2 {
		tk, _, _ := u.allow(clk)
		u.finish(clk.Now(), tk, outcomeFailure, true)
	}
	if us.state(k) != stateOpen {
		t.Fatalf("state %s after two failures", us.state(k))
	}
	if tk, _, _ := u.allow(clk); tk.ok {
		t.Fatal("an open breaker admitted a call")
	}
	clk.Advance(5 * time.Second)
	tk, st, changed := u.allow(clk)
	if !tk.ok || !tk.probe || st != stateHalfOpen || !changed {
		t.Fatalf("after the cool-down: %+v %s %v", tk, st, changed)
	}
	if st, changed := u.finish(clk.Now(), tk, outcomeSuccess, false); st != stateClosed || !changed {
		t.Fatalf("probe success: %s %v", st, changed)
	}
	off := newUpstreams(BreakerPolicy{Disabled: true, ConsecutiveFailures: 1}.withDefaults(), RetryPolicy{}.withDefaults(time.Second))
	d := off.get(k, nil)
	for range 5 {
		tk, _, _ := d.allow(clk)
		if !tk.ok {
			t.Fatal("a disabled breaker refused a call")
		}
		d.finish(clk.Now(), tk, outcomeFailure, true)
	}
}
