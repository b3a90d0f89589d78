package analysis

import (
	"math/rand/v2"
	"testing"
)

// steps is a canary's traffic plan: total requests at each canary weight.
var steps = []struct {
	requests int
	weight   float64
}{{1000, 0.05}, {2000, 0.25}, {4000, 0.5}}

// TestLatencyAAFalseFails: A/A rollouts through the step plan (5 %, 25 %,
// 50 % canary weight; 7,000 requests), both versions drawing latencies
// from one distribution recorded in the gateway's histogram layout,
// judged every 25 requests by latency_p99_ms with no tolerance at all
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
				if seen++; seen%25 != 0 || done {
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
	t.Logf("A/A latency, %d rollouts judged every 25 of 7,000 requests: %d false fails (%.4f; allowed %g); by method %v", n, any, float64(any)/float64(n), falseAll, failed)
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
	for range detectionRuns(300) {
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
	if len(d) < detectionRuns(300) {
		t.Fatalf("only %d of %d twice-as-slow canaries failed", len(d), detectionRuns(300))
	}
	med, p95 := quantileInt(d, 0.5), quantileInt(d, 0.95)
	t.Logf("2× latency vs tolerance 1.25: canary requests to Fail median %d, mean %.1f, p95 %d, max %d", med, mean(d), p95, d[len(d)-1])
	if med > 40 || p95 > 80 {
		t.Errorf("2× slower canary: median %d (want ≤ 40), p95 %d (want ≤ 80)", med, p95)
	}

	// 1.2 × slower is within the tolerance: judged every 10 canary
	// requests up to 3,000, never failed.
	for run := range detectionRuns(40) {
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

// TestJudgeAAFalseFails: whole A/A rollouts through Judge itself, under
// the analysis (error_rate max 0.02 and maxVsBaseline 0.005,
// latency p99 max 200 ms and ratio 1.25, falseRollbackRate 0.01), 1 %
// errors on both versions, through the step plan, judged every 25
// requests: fewer than 1 % are ever failed.
func TestJudgeAAFalseFails(t *testing.T) {
	t.Parallel()
	spec := Spec{MinSamples: 200, FalseRollbackRate: 0.01, Rules: []Rule{
		{Metric: ErrorRate, Max: f64(0.02), MaxVsBaseline: f64(0.005)},
		{Metric: LatencyP99Ms, Max: f64(200), MaxRatioVsBaseline: f64(1.25)},
	}}
	n := detectionRuns(200)
	r := rand.New(rand.NewPCG(43, 6))
	failed, passed := 0, 0
	for range n {
		var c, b arm
		seen, fail, pass := 0, false, false
		for _, st := range steps {
			for range st.requests {
				a := &b
				if r.Float64() < st.weight {
					a = &c
				}
				a.serve(r, 0.01)
				a.lat.add(lognormalMs(r, 20, 0.5))
				if seen++; seen%25 != 0 || fail {
					continue
				}
				c.v.Latency, b.v.Latency = c.lat.histogram(), b.lat.histogram()
				switch Judge(spec, Observations{Candidate: c.v, Baseline: b.v}).Outcome {
				case Fail:
					fail = true
				case Pass:
					pass = true
				}
			}
		}
		if fail {
			failed++
		}
		if pass {
			passed++
		}
	}
	t.Logf("A/A through Judge, %d rollouts judged every 25 of 7,000 requests: %d false fails (allowed 1 %%), %d passed at some look", n, failed, passed)
	if float64(failed)/float64(n) >= 0.01 {
		t.Errorf("%d of %d A/A rollouts failed", failed, n)
	}
	if passed < n*9/10 {
		t.Errorf("only %d of %d healthy rollouts ever passed", passed, n)
	}
}
