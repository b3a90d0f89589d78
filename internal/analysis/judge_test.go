package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// healthyBaseline is a baseline with plenty of traffic, 0.5 % errors
// and 20 ms latencies.
func healthyBaseline() Version {
	return Version{Requests: 5000, Errors: 25, Latency: Histogram{{Ms: 18, Count: 2500}, {Ms: 22, Count: 2450}, {Ms: 40, Count: 50}}}
}

// check finds the check of rule i with the given kind and method.
func check(t *testing.T, v Verdict, rule int, kind string, m Method) Check {
	t.Helper()
	for _, c := range v.Checks {
		if c.Rule == rule && c.Kind == kind && c.Method == m {
			return c
		}
	}
	t.Fatalf("no %s %s check of rule %d in %+v", kind, m, rule, v.Checks)
	return Check{}
}

func TestJudgeErrorRate(t *testing.T) {
	max2 := Spec{MinSamples: 100, Rules: []Rule{{Metric: ErrorRate, Max: f64(0.02)}}}
	vs := Spec{MinSamples: 100, Rules: []Rule{{Metric: ErrorRate, MaxVsBaseline: f64(0.005)}}}
	for _, tc := range []struct {
		name    string
		spec    Spec
		c, b    Version
		outcome Outcome
		check   Outcome
		says    string
	}{
		{"no traffic", max2, Version{}, Version{}, Inconclusive, Inconclusive, "no candidate requests"},
		{"one unlucky error in three", max2, Version{Requests: 3, Errors: 1}, healthyBaseline(), Inconclusive, Inconclusive, "not yet beyond chance"},
		{"clean but few", max2, Version{Requests: 50}, healthyBaseline(), Inconclusive, Pass, "served 50 of the 100"},
		{"clean", max2, Version{Requests: 300, Errors: 3}, healthyBaseline(), Pass, Pass, "within the 2 % ceiling"},
		{"30 % of 30", max2, Version{Requests: 30, Errors: 9}, healthyBaseline(), Fail, Fail, "above the 2 % ceiling"},
		{"fails before minSamples", max2, Version{Requests: 12, Errors: 6}, healthyBaseline(), Fail, Fail, "6/12"},
		{"slightly above, not proven", max2, Version{Requests: 400, Errors: 10}, healthyBaseline(), Inconclusive, Inconclusive, "not yet beyond chance"},
		{"vs baseline no baseline", vs, Version{Requests: 300}, Version{}, Inconclusive, Inconclusive, "no requests yet on the baseline"},
		{"vs baseline within", vs, Version{Requests: 1000, Errors: 9}, healthyBaseline(), Pass, Pass, "within 0.5 points"},
		{"vs baseline 20 %", vs, Version{Requests: 40, Errors: 8}, healthyBaseline(), Fail, Fail, "more than 0.5 points worse"},
		{"vs baseline worse, not proven", vs, Version{Requests: 200, Errors: 4}, healthyBaseline(), Inconclusive, Inconclusive, "not yet beyond chance"},
		{"vs a bad baseline", vs, Version{Requests: 400, Errors: 40}, Version{Requests: 5000, Errors: 500}, Pass, Pass, "within 0.5 points"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.spec, Observations{Candidate: tc.c, Baseline: tc.b})
			if v.Outcome != tc.outcome {
				t.Errorf("outcome %s, want %s: %s", v.Outcome, tc.outcome, v.Reason)
			}
			if len(v.Checks) != 1 || v.Checks[0].Outcome != tc.check {
				t.Fatalf("checks %+v, want one %s", v.Checks, tc.check)
			}
			if !strings.Contains(v.Reason, tc.says) {
				t.Errorf("reason %q does not say %q", v.Reason, tc.says)
			}
		})
	}
}

func TestJudgeErrorRateEvidence(t *testing.T) {
	s := Spec{FalseRollbackRate: 0.01, Rules: []Rule{{Metric: ErrorRate, Max: f64(0.02), MaxVsBaseline: f64(0.005)}}}
	v := Judge(s, Observations{Candidate: Version{Requests: 30, Errors: 9}, Baseline: healthyBaseline()})
	mx := check(t, v, 0, "max", RateSequence)
	if mx.Alpha != 0.005 || mx.Observed != 0.3 || mx.Threshold != 0.02 || mx.CandidateSamples != 30 {
		t.Errorf("max evidence %+v", mx)
	}
	if mx.Lower == nil || *mx.Lower <= 0.02 || mx.Upper == nil || *mx.Upper < 0.3 || mx.EValue == nil || *mx.EValue < 1/mx.Alpha {
		t.Errorf("max bounds %v %v e %v", mx.Lower, mx.Upper, mx.EValue)
	}
	d := check(t, v, 0, "maxVsBaseline", RateSequence)
	if d.Outcome != Fail || d.Baseline == nil || *d.Baseline != 0.005 || d.BaselineSamples != 5000 || *d.Lower <= 0.005 {
		t.Errorf("vs baseline evidence %+v", d)
	}
	if _, err := json.Marshal(v); err != nil {
		t.Errorf("evidence does not encode: %v", err)
	}
}

// slow returns n latencies, a share of them at slowMs and the rest
// spread like the healthy baseline's.
func slow(n uint64, share float64, fastMs, slowMs float64) Histogram {
	s := uint64(share * float64(n))
	f := n - s
	h := Histogram{{Ms: fastMs * 0.9, Count: f / 2}, {Ms: fastMs * 1.1, Count: f - f/2}}
	if s > 0 {
		h = append(h, Bin{Ms: slowMs, Count: s})
	}
	return h
}

func TestJudgeLatency(t *testing.T) {
	p99max := Spec{MinSamples: 100, Rules: []Rule{{Metric: LatencyP99Ms, Max: f64(100)}}}
	p50max := Spec{MinSamples: 100, Rules: []Rule{{Metric: LatencyP50Ms, Max: f64(30)}}}
	ratio := Spec{MinSamples: 100, Rules: []Rule{{Metric: LatencyP99Ms, MaxRatioVsBaseline: f64(1.25)}}}
	p50ratio := Spec{MinSamples: 100, Rules: []Rule{{Metric: LatencyP50Ms, MaxRatioVsBaseline: f64(1.25)}}}
	base := healthyBaseline()
	for _, tc := range []struct {
		name    string
		spec    Spec
		c       Histogram
		outcome Outcome
		checks  map[Method]Outcome
		says    string
	}{
		{"no latencies", p99max, nil, Inconclusive, map[Method]Outcome{QuantileSequence: Inconclusive}, "no candidate latencies"},
		{"p99 needs 100", p99max, slow(60, 0, 20, 0), Inconclusive, map[Method]Outcome{QuantileSequence: Inconclusive}, "needs at least 100"},
		{"p99 within", p99max, slow(500, 0.005, 20, 300), Pass, map[Method]Outcome{QuantileSequence: Pass}, "within the 100 ms ceiling"},
		{"p99 one slow in the first", p99max, slow(20, 0.05, 20, 300), Inconclusive, map[Method]Outcome{QuantileSequence: Inconclusive}, "not yet beyond chance"},
		{"p99 10 % slow", p99max, slow(300, 0.1, 20, 300), Fail, map[Method]Outcome{QuantileSequence: Fail}, "above the 100 ms ceiling"},
		{"p50 within", p50max, slow(200, 0.1, 20, 300), Pass, map[Method]Outcome{QuantileSequence: Pass}, "within the 30 ms ceiling"},
		{"p50 all slow", p50max, slow(30, 1, 20, 45), Fail, map[Method]Outcome{QuantileSequence: Fail}, "above the 30 ms ceiling"},
		{"ratio same", ratio, slow(400, 0.01, 20, 40), Pass, map[Method]Outcome{MannWhitney: Pass, QuantileSequence: Pass}, "within 1.25"},
		{"ratio twice as slow", ratio, slow(60, 0, 40, 0), Fail, map[Method]Outcome{MannWhitney: Fail, QuantileSequence: Inconclusive}, "slower than 1.25 × the baseline"},
		// A slow tail leaves the rank test unmoved; the p99 check sees it.
		{"ratio slow tail", ratio, slow(400, 0.05, 20, 400), Fail, map[Method]Outcome{MannWhitney: Pass, QuantileSequence: Fail}, "more than 1.25 times slower"},
		{"p50 ratio twice as slow", p50ratio, slow(40, 0, 40, 0), Fail, map[Method]Outcome{MannWhitney: Fail, QuantileSequence: Fail}, "slower"},
		{"ratio few", ratio, slow(8, 0, 22, 0), Inconclusive, map[Method]Outcome{MannWhitney: Pass, QuantileSequence: Inconclusive}, "a p99 needs at least 100 each"},
		{"ratio few and slower", ratio, slow(8, 0, 30, 0), Inconclusive, map[Method]Outcome{MannWhitney: Inconclusive, QuantileSequence: Inconclusive}, "not yet beyond chance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Version{Requests: tc.c.Total(), Latency: tc.c}
			v := Judge(tc.spec, Observations{Candidate: c, Baseline: base})
			if v.Outcome != tc.outcome {
				t.Errorf("outcome %s, want %s: %s", v.Outcome, tc.outcome, v.Reason)
			}
			for _, ch := range v.Checks {
				if want, ok := tc.checks[ch.Method]; !ok || ch.Outcome != want {
					t.Errorf("%s check %s, want %s: %s", ch.Method, ch.Outcome, want, ch.Reason)
				}
			}
			if len(v.Checks) != len(tc.checks) {
				t.Errorf("%d checks, want %d", len(v.Checks), len(tc.checks))
			}
			if !strings.Contains(v.Reason, tc.says) {
				t.Errorf("reason %q does not say %q", v.Reason, tc.says)
			}
		})
	}
}

// TestJudgeLatencyMaxAgreesWithBound: the ceiling check fails exactly
// when the quantile's lower bound is above the ceiling.
func TestJudgeLatencyMaxAgreesWithBound(t *testing.T) {
	fails := 0
	defer func() {
		if fails == 0 {
			t.Error("no case failed: the comparison tells nothing")
		}
	}()
	for n := uint64(20); n <= 2000; n += 37 {
		for _, share := range []float64{0, 0.01, 0.02, 0.04, 0.08, 0.2} {
			h := slow(n, share, 20, 300)
			c := judgeLatency(0, Rule{Metric: LatencyP99Ms, Max: f64(100)}, Observations{Candidate: Version{Latency: h}}, 0.005)[0]
			failed := c.Outcome == Fail
			if failed != (c.Lower != nil && *c.Lower > 100) {
				t.Fatalf("n=%d share=%g: %s with lower bound %v", n, share, c.Outcome, c.Lower)
			}
			if failed {
				fails++
			}
		}
	}
}

// TestJudgeLatencyRatioAgreesWithBound: the quantile ratio check fails
// exactly when the ratio's lower bound is above the tolerance.
func TestJudgeLatencyRatioAgreesWithBound(t *testing.T) {
	base := healthyBaseline().Latency
	rule := Rule{Metric: LatencyP99Ms, MaxRatioVsBaseline: f64(1.25)}
	fails := 0
	for n := uint64(20); n <= 2000; n += 37 {
		for _, share := range []float64{0, 0.01, 0.02, 0.04, 0.08, 0.2} {
			c := judgeLatency(0, rule, Observations{Candidate: Version{Latency: slow(n, share, 20, 300)}, Baseline: Version{Latency: base}}, 0.005)[1]
			failed := c.Outcome == Fail
			if failed != (c.Lower != nil && *c.Lower > 1.25) {
				t.Fatalf("n=%d share=%g: %s with lower bound %v", n, share, c.Outcome, c.Lower)
			}
			if failed {
				fails++
			}
		}
	}
	if fails == 0 {
		t.Error("no case failed: the comparison tells nothing")
	}
}

type fakeProvider map[string]struct {
	v   float64
	err error
}

func (f fakeProvider) Query(_ context.Context, q string, _ time.Time) (float64, error) {
	r, ok := f[q]
	if !ok {
		return 0, fmt.Errorf("query %q: %w", q, ErrNoData)
	}
	return r.v, r.err
}

func TestJudgePrometheus(t *testing.T) {
	s := Spec{MinSamples: 10, Rules: []Rule{
		{Prometheus: &PrometheusRule{Query: "failures", Max: f64(3)}},
		{Prometheus: &PrometheusRule{Query: "conversions", Min: f64(0.1), Max: f64(0.9)}},
	}}
	traffic := Observations{Candidate: Version{Requests: 20}, Baseline: Version{Requests: 20}}
	for _, tc := range []struct {
		name    string
		p       Provider
		outcome Outcome
		says    string
	}{
		{"within", fakeProvider{"failures": {v: 2}, "conversions": {v: 0.5}}, Pass, "all 3 checks"},
		{"above max", fakeProvider{"failures": {v: 4}, "conversions": {v: 0.5}}, Fail, `"failures" = 4 is above the maximum 3`},
		{"below min", fakeProvider{"failures": {v: 0}, "conversions": {v: 0.05}}, Fail, "below the minimum 0.1"},
		{"no data", fakeProvider{"failures": {v: 0}}, Inconclusive, `"conversions" returned no data`},
		{"down", fakeProvider{"failures": {err: errors.New("connection refused")}, "conversions": {v: 0.5}}, Error, "connection refused"},
		{"no provider", nil, Error, "no Prometheus provider"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := traffic
			obs.Prometheus = QueryPrometheus(t.Context(), tc.p, s, time.Unix(1e9, 0))
			v := Judge(s, obs)
			if v.Outcome != tc.outcome || !strings.Contains(v.Reason, tc.says) {
				t.Errorf("%s %q, want %s saying %q", v.Outcome, v.Reason, tc.outcome, tc.says)
			}
		})
	}
	if v := Judge(s, traffic); v.Outcome != Error || !strings.Contains(v.Reason, "was not run") {
		t.Errorf("queries not run: %s %q", v.Outcome, v.Reason)
	}
}

// TestJudgeFailOutranksError: a candidate shown broken is failed even
// while Prometheus is down; Error outranks Inconclusive.
func TestJudgeFailOutranksError(t *testing.T) {
	s := Spec{Rules: []Rule{
		{Metric: ErrorRate, Max: f64(0.02)},
		{Prometheus: &PrometheusRule{Query: "q", Max: f64(1)}},
	}}
	down := map[string]PromResult{"q": {Err: errors.New("timeout")}}
	broken := Observations{Candidate: Version{Requests: 30, Errors: 10}, Baseline: healthyBaseline(), Prometheus: down}
	if v := Judge(s, broken); v.Outcome != Fail {
		t.Errorf("broken candidate, Prometheus down: %s %s", v.Outcome, v.Reason)
	}
	young := Observations{Candidate: Version{Requests: 3}, Baseline: healthyBaseline(), Prometheus: down}
	if v := Judge(s, young); v.Outcome != Error || !strings.Contains(v.Reason, "timeout") {
		t.Errorf("little traffic, Prometheus down: %s %s", v.Outcome, v.Reason)
	}
}

func TestJudgeRefusesImpossibleObservations(t *testing.T) {
	s := Spec{Rules: []Rule{{Metric: ErrorRate, Max: f64(0.02)}}}
	for _, tc := range []struct {
		obs  Observations
		says string
	}{
		{Observations{Candidate: Version{Requests: 3, Errors: 5}}, "candidate: 5 errors out of 3 requests"},
		{Observations{Baseline: Version{Latency: Histogram{{Ms: 5, Count: 1}, {Ms: 3, Count: 1}}}}, "baseline: latency bins 0 and 1 are not in increasing order"},
		{Observations{Candidate: Version{Latency: Histogram{{Ms: -1, Count: 1}}}}, "not negative"},
	} {
		if v := Judge(s, tc.obs); v.Outcome != Error || !strings.Contains(v.Reason, tc.says) {
			t.Errorf("%s %q, want Error saying %q", v.Outcome, v.Reason, tc.says)
		}
	}
}

// TestJudgeNeedsMinSamplesOnBoth: everything within thresholds still
// waits for minSamples on both versions.
func TestJudgeNeedsMinSamplesOnBoth(t *testing.T) {
	s := Spec{MinSamples: 200, Rules: []Rule{{Metric: ErrorRate, Max: f64(0.02)}}}
	c := Version{Requests: 500}
	for _, tc := range []struct {
		b       Version
		outcome Outcome
	}{{Version{Requests: 199}, Inconclusive}, {Version{Requests: 200}, Pass}} {
		if v := Judge(s, Observations{Candidate: c, Baseline: tc.b}); v.Outcome != tc.outcome {
			t.Errorf("baseline %d requests: %s %s", tc.b.Requests, v.Outcome, v.Reason)
		}
	}
}

func TestVersionSince(t *testing.T) {
	start := Version{Requests: 10, Errors: 1, Latency: Histogram{{Ms: 5, Count: 4}, {Ms: 9, Count: 6}}}
	now := Version{Requests: 25, Errors: 3, Latency: Histogram{{Ms: 1, Count: 2}, {Ms: 5, Count: 4}, {Ms: 9, Count: 10}, {Ms: 20, Count: 1}}}
	d, err := now.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	want := Version{Requests: 15, Errors: 2, Latency: Histogram{{Ms: 1, Count: 2}, {Ms: 9, Count: 4}, {Ms: 20, Count: 1}}}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", d, want)
	}
	for _, bad := range []Version{
		{Requests: 30},
		{Requests: 10, Errors: 4},
		{Latency: Histogram{{Ms: 5, Count: 5}}},
		{Latency: Histogram{{Ms: 7, Count: 1}}},
		{Latency: Histogram{{Ms: 30, Count: 1}}},
	} {
		if _, err := now.Since(bad); err == nil {
			t.Errorf("%+v accepted as a start", bad)
		}
	}
}

func TestFromSamples(t *testing.T) {
	in := []float64{3, 1, 3, 2, 1, 3}
	h := FromSamples(in)
	if fmt.Sprint(h) != "[{1 2} {2 1} {3 3}]" || in[0] != 3 {
		t.Errorf("%v from %v", h, in)
	}
	if q, _ := h.quantile(0.5); q != 2 {
		t.Errorf("median %g", q)
	}
	if n := h.countAbove(2); n != 3 {
		t.Errorf("above 2: %d", n)
	}
}
