package analysis

import (
	"math/rand/v2"
	"testing"
)

// steps is a canary's traffic plan: total requests at each canary weight.
var steps = []struct {
	requests int
	weight   float64
}{{2000, 0.05}, {4000, 0.25}, {8000, 0.5}}

// TestLatencyAAFalseFails: A/A rollouts through the step plan (5 %, 25 %,
// 50 % canary weight; 14,000 requests), both versions drawing latencies
// from one distribution recorded in the gateway's histogram layout,
// judged every 40 requests by latency_p99_ms with no tolerance at all
// (maxRatioVsBaseline 1, so any drift of the test would show) and max
// 200 ms, falseRollbackRate 0.01. The share of rollouts ever failed
// stays below 0.01. The decisions are judgeLatency's own functions
// (TestJudgeLatencyMaxAgreesWithBound and TestJudgeLatencyRatioAgreesWithBound
// tie them to its checks).
func TestLatencyAAFalseFails(t *testing.T) {
	t.Parallel()
	const falseAll = 0.01
	spec := Spec{FalseRollbackRate: falseAll, Rules: []Rule{{Metric: LatencyP99Ms, MaxRatioVsBaseline: f64(1), Max: f64(200)}}}
	alpha := falseAll / float64(statisticalChecks(spec))
	rule := spec.Rules[0]
	n := runs(300)
	r := rand.New(rand.NewPCG(41, 4))
	failed := map[Method]int{}
	any := 0
	for range n {
		var c, b arm
		done, seen := false, 0
		for _, st := range steps {
			for range st.requests {
				if r.Float64() < st.weight {
					c.lat.add(lognormalMs(r, 20, 0.6))
				} else {
					b.lat.add(lognormalMs(r, 20, 0.6))
				}
				if seen++; seen%40 != 0 || done {
					continue
				}
				hc, hb := c.lat.histogram(), b.lat.histogram()
				for m, fails := range map[Method]bool{
					MannWhitney:      compareLatency(hc, hb, *rule.MaxRatioVsBaseline).fails(alpha),
					QuantileSequence: quantileRatioAbove(hc, hb, 0.99, *rule.MaxRatioVsBaseline, alpha/2) || latencyAbove(hc, 0.99, *rule.Max, alpha),
				} {
					if fails {
						failed[m]++
						done = true
					}
				}
				if done {
					any++
				}
			}
		}
	}
	t.Logf("A/A latency, %d rollouts judged every 40 of 14,000 requests: %d false fails (%.4f; allowed %g); by method %v", n, any, float64(any)/float64(n), falseAll, failed)
	if float64(any)/float64(n) >= falseAll {
		t.Errorf("false-fail share %g ≥ %g", float64(any)/float64(n), falseAll)
	}
}

// TestLatencyRegressionDetection: a candidate twice as slow as the
// baseline, against maxRatioVsBaseline 1.25, at 5 % canary weight and
// judged after every canary request, is failed within a few dozen
// canary latencies; one 1.2 times as slow is never failed.
func TestLatencyRegressionDetection(t *testing.T) {
	t.Parallel()
	spec := Spec{FalseRollbackRate: 0.01, Rules: []Rule{{Metric: LatencyP99Ms, MaxRatioVsBaseline: f64(1.25)}}}
	r := rand.New(rand.NewPCG(42, 5))
	var d []int
	for range runs(300) {
		var c, b arm
		for c.v.Requests < 20000 {
			if r.Float64() >= 0.05 {
				b.lat.add(lognormalMs(r, 20, 0.5))
				continue
			}
			c.v.Requests++
			c.lat.add(lognormalMs(r, 40, 0.5))
			obs := Observations{Candidate: Version{Latency: c.lat.histogram()}, Baseline: Version{Latency: b.lat.histogram()}}
			if Judge(spec, obs).Outcome == Fail {
				d = append(d, int(c.v.Requests))
				break
			}
		}
	}
	sortInts(d)
	if len(d) < runs(300) {
		t.Fatalf("only %d of %d twice-as-slow canaries failed", len(d), runs(300))
	}
	med, p95 := quantileInt(d, 0.5), quantileInt(d, 0.95)
	t.Logf("2× latency vs tolerance 1.25: canary requests to Fail median %d, mean %.1f, p95 %d, max %d", med, mean(d), p95, d[len(d)-1])
	if med > 40 || p95 > 80 {
		t.Errorf("2× slower canary: median %d (want ≤ 40), p95 %d (want ≤ 80)", med, p95)
	}

	// 1.2 × slower is within the tolerance: judged every 10 canary
	// requests up to 3,000, never failed.
	for run := range runs(50) {
		var c, b arm
		for c.v.Requests < 3000 {
			if r.Float64() >= 0.25 {
				b.lat.add(lognormalMs(r, 20, 0.5))
				continue
			}
			c.v.Requests++
			c.lat.add(lognormalMs(r, 24, 0.5))
			if c.v.Requests%10 != 0 {
				continue
			}
			obs := Observations{Candidate: Version{Latency: c.lat.histogram()}, Baseline: Version{Latency: b.lat.histogram()}}
			if v := Judge(spec, obs); v.Outcome == Fail {
				t.Fatalf("run %d: a canary 1.2 × slower failed a 1.25 tolerance after %d requests: %s", run, c.v.Requests, v.Reason)
			}
		}
	}
}
