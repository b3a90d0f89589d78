package analysis

import (
	"math/rand/v2"
	"testing"
)

// TestMoreErrorsNeverHelp: for the same traffic, more candidate errors
// never turn a Fail into anything else, nor anything into a Pass once a
// Fail was seen.
func TestMoreErrorsNeverHelp(t *testing.T) {
	s := Spec{MinSamples: 50, Rules: []Rule{{Metric: ErrorRate, Max: f64(0.02), MaxVsBaseline: f64(0.005)}}}
	r := rand.New(rand.NewPCG(51, 6))
	sawFail, sawPass := false, false
	for range 100 {
		n := uint64(1 + r.IntN(400))
		b := Version{Requests: uint64(r.IntN(20000)), Errors: 0}
		b.Errors = uint64(r.Float64() * 0.03 * float64(b.Requests))
		failed := false
		for k := uint64(0); k <= n; k++ {
			o := Judge(s, Observations{Candidate: Version{Requests: n, Errors: k}, Baseline: b}).Outcome
			if failed && o != Fail {
				t.Fatalf("candidate %d/%d, baseline %d/%d: %s after Fail with fewer errors", k, n, b.Errors, b.Requests, o)
			}
			failed = o == Fail
			sawFail, sawPass = sawFail || failed, sawPass || o == Pass
		}
	}
	if !sawFail || !sawPass {
		t.Errorf("saw a Fail %v, a Pass %v: the sweep tells nothing", sawFail, sawPass)
	}
}

// TestSlowerNeverHelps: stretching the candidate's latencies never turns
// a Fail into anything else.
func TestSlowerNeverHelps(t *testing.T) {
	s := Spec{MinSamples: 50, Rules: []Rule{{Metric: LatencyP99Ms, Max: f64(60), MaxRatioVsBaseline: f64(1.25)}}}
	r := rand.New(rand.NewPCG(52, 7))
	sawFail, sawPass := false, false
	var base latencyCounts
	for range 3000 {
		base.add(lognormalMs(r, 20, 0.4))
	}
	for range 100 {
		raw := make([]float64, 1+r.IntN(300))
		for i := range raw {
			raw[i] = lognormalMs(r, 20, 0.4)
		}
		failed := false
		for stretch := 1.0; stretch < 4; stretch *= 1.1 {
			var c latencyCounts
			for _, x := range raw {
				c.add(x * stretch)
			}
			obs := Observations{Candidate: Version{Requests: uint64(len(raw)), Latency: c.histogram()}, Baseline: Version{Requests: 3000, Latency: base.histogram()}}
			o := Judge(s, obs).Outcome
			if failed && o != Fail {
				t.Fatalf("%d latencies stretched %.2f×: %s after Fail", len(raw), stretch, o)
			}
			failed = o == Fail
			sawFail, sawPass = sawFail || failed, sawPass || o == Pass
		}
	}
	if !sawFail || !sawPass {
		t.Errorf("saw a Fail %v, a Pass %v: the stretches tell nothing", sawFail, sawPass)
	}
}

// TestJudgeDecisionsMatchChecks ties the simulations, which call the
// decision functions directly for speed, to Judge.
func TestJudgeDecisionsMatchChecks(t *testing.T) {
	const falseAll = 0.01
	s := Spec{FalseRollbackRate: falseAll, Rules: []Rule{{Metric: ErrorRate, Max: f64(0.02), MaxVsBaseline: f64(0.005)}}}
	r := rand.New(rand.NewPCG(53, 8))
	fails := 0
	for range 20000 {
		c := Version{Requests: uint64(1 + r.IntN(400))}
		c.Errors = uint64(r.IntN(int(c.Requests)/5 + 1))
		b := Version{Requests: uint64(r.IntN(5000))}
		b.Errors = uint64(r.Float64() * 0.05 * float64(b.Requests))
		judged := Judge(s, Observations{Candidate: c, Baseline: b}).Outcome == Fail
		if judged != errorRateFails(c, b, 0.02, 0.005, falseAll/2) {
			t.Fatalf("candidate %+v baseline %+v: Judge fails %v", c, b, judged)
		}
		if judged {
			fails++
		}
	}
	if fails == 0 || fails == 20000 {
		t.Errorf("%d of 20000 failed: the comparison tells nothing", fails)
	}
}
