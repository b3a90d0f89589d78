package analysis

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// judgeErrorRate checks an error_rate rule — or a client_error_rate
// rule, the same tests over the requests answered 4xx: its ceiling and its
// margin over the baseline, each with a confidence sequence.
func judgeErrorRate(i int, r Rule, obs Observations, alpha float64) []Check {
	var out []Check
	kc, nc := obs.Candidate.Errors, obs.Candidate.Requests
	kb, nb := obs.Baseline.Errors, obs.Baseline.Requests
	what := "error rate"
	if r.Metric == ClientErrorRate {
		kc, kb, what = obs.Candidate.ClientErrors, obs.Baseline.ClientErrors, "client error rate"
	}
	pc, pb := ratio(kc, nc), ratio(kb, nb)
	if r.Max != nil {
		out = append(out, rateCeiling(i, r.Metric, what, "requests", kc, nc, *r.Max, alpha))
	}
	if r.MaxVsBaseline != nil {
		d := *r.MaxVsBaseline
		c := Check{Rule: i, Metric: string(r.Metric), Kind: "maxVsBaseline", Method: RateSequence,
			Observed: pc - pb, Threshold: d, Candidate: ptr(pc), Baseline: ptr(pb),
			CandidateSamples: nc, BaselineSamples: nb, Alpha: alpha}
		loC, hiC := rateBounds(kc, nc, alpha/2)
		loB, hiB := rateBounds(kb, nb, alpha/2)
		c.Lower, c.Upper = ptr(loC-hiB), ptr(hiC-loB)
		seen := fmt.Sprintf("candidate %s %d/%d = %s against the baseline's %d/%d = %s", what, kc, nc, pct(pc), kb, nb, pct(pb))
		switch {
		case nc == 0 || nb == 0:
			c.Outcome, c.Reason = Inconclusive, string(r.Metric)+" vs baseline: no requests yet on "+noTraffic(nc, nb)
		case diffAbove(kc, nc, kb, nb, d, alpha/2):
			c.Outcome = Fail
			c.Reason = fmt.Sprintf("%s is more than %s points worse (at least %s points at confidence %s)", seen, pts(d), pts(loC-hiB), pct(1-alpha))
		case pc-pb > d:
			c.Outcome = Inconclusive
			c.Reason = fmt.Sprintf("%s is more than %s points worse, not yet beyond chance", seen, pts(d))
		default:
			c.Outcome, c.Reason = Pass, fmt.Sprintf("%s is within %s points", seen, pts(d))
		}
		out = append(out, c)
	}
	return out
}

// rateCeiling checks a ratio k/n of the candidate's (errors over
// requests, disagreements over compared answers) against a ceiling m with
// a confidence sequence at level alpha; what names the ratio and unit
// what n counts, for people.
func rateCeiling(i int, metric Metric, what, unit string, k, n uint64, m, alpha float64) Check {
	p := ratio(k, n)
	c := Check{Rule: i, Metric: string(metric), Kind: "max", Method: RateSequence,
		Observed: p, Threshold: m, Candidate: ptr(p), CandidateSamples: n, Alpha: alpha}
	lo, hi := rateBounds(k, n, alpha)
	c.Lower, c.Upper = ptr(lo), ptr(hi)
	seen := fmt.Sprintf("candidate %s %d/%d = %s", what, k, n, pct(p))
	switch {
	case n == 0:
		c.Outcome, c.Reason = Inconclusive, fmt.Sprintf("%s: no candidate %s yet", metric, unit)
		c.Candidate = nil
	case rateAbove(k, n, m, alpha):
		c.EValue = eValue(logMixture(k, n, m))
		c.Outcome = Fail
		c.Reason = fmt.Sprintf("%s is above the %s ceiling (at least %s at confidence %s)", seen, pct(m), pct(lo), pct(1-alpha))
	case p > m:
		c.EValue = eValue(logMixture(k, n, m))
		c.Outcome = Inconclusive
		c.Reason = fmt.Sprintf("%s is above the %s ceiling, not yet beyond chance (e-value %.3g of %.3g needed)", seen, pct(m), *c.EValue, 1/alpha)
	default:
		c.Outcome, c.Reason = Pass, fmt.Sprintf("%s is within the %s ceiling", seen, pct(m))
	}
	return c
}

// judgeDisagreement checks a disagreement_rate rule: the share of the
// candidate's mirrored answers that differed from the primary's, against
// its ceiling. It is judged only while the candidate is mirrored
// (obs.Comparison set); once it takes live traffic there is nothing to
// compare and the rule makes no check.
func judgeDisagreement(i int, r Rule, obs Observations, alpha float64) []Check {
	if obs.Comparison == nil || r.Max == nil {
		return nil
	}
	return []Check{rateCeiling(i, DisagreementRate, "disagreement rate", "compared answers", obs.Comparison.Disagreed, obs.Comparison.Compared, *r.Max, alpha)}
}

// diffAbove reports whether the candidate's error rate is shown to
// exceed the baseline's by more than d: the candidate's lower bound
// above the baseline's upper bound plus d, each at level a. Cheap
// necessary conditions come first, so a healthy candidate costs no
// search.
func diffAbove(kc, nc, kb, nb uint64, d, a float64) bool {
	if nc == 0 || nb == 0 {
		return false
	}
	pc, pb := ratio(kc, nc), ratio(kb, nb)
	// The baseline's upper bound is at least pb, so the candidate's
	// lower bound must clear pb+d.
	if pc-pb <= d || !rateAbove(kc, nc, pb+d, a) {
		return false
	}
	_, hiB := rateBounds(kb, nb, a)
	return hiB+d < 1 && rateAbove(kc, nc, hiB+d, a)
}

// judgeLatency checks a latency rule: its ceiling on the candidate's
// quantile, and its ratio to the baseline both as a whole distribution
// (Mann-Whitney) and at the rule's quantile, so neither a general
// slowdown nor a slow tail gets through.
func judgeLatency(i int, r Rule, obs Observations, alpha float64) []Check {
	var out []Check
	q := r.Metric.quantile()
	need := uint64(math.Round(1 / (1 - q)))
	metric := string(r.Metric)
	hc, hb := obs.Candidate.Latency, obs.Baseline.Latency
	nc, nb := hc.Total(), hb.Total()
	estC, _ := hc.quantile(q)
	estB, _ := hb.quantile(q)
	label := strings.TrimSuffix(strings.TrimPrefix(metric, "latency_"), "_ms")

	if r.Max != nil {
		m := *r.Max
		c := Check{Rule: i, Metric: metric, Kind: "max", Method: QuantileSequence,
			Observed: estC, Threshold: m, Candidate: ptr(estC), CandidateSamples: nc, Alpha: alpha}
		lo, hi := quantileBounds(hc, q, alpha)
		c.Lower, c.Upper = ptr(lo), ptr(hi)
		// The q-quantile is above m exactly when more than a 1−q share
		// of latencies are: a rate, judged like an error rate.
		over := hc.countAbove(m)
		seen := fmt.Sprintf("candidate %s latency %s (%d of %d latencies above %s)", label, msStr(estC), over, nc, msStr(m))
		switch {
		case nc == 0:
			c.Outcome, c.Reason = Inconclusive, metric+": no candidate latencies yet"
			c.Candidate, c.Lower, c.Upper = nil, nil, nil
		case latencyAbove(hc, q, m, alpha):
			c.EValue = eValue(logMixture(over, nc, 1-q))
			c.Outcome = Fail
			c.Reason = fmt.Sprintf("%s is above the %s ceiling (at least %s at confidence %s)", seen, msStr(m), msStr(lo), pct(1-alpha))
		case estC > m:
			c.Outcome = Inconclusive
			c.Reason = fmt.Sprintf("%s is above the %s ceiling, not yet beyond chance", seen, msStr(m))
		case nc < need:
			c.Outcome = Inconclusive
			c.Reason = fmt.Sprintf("%s: %d candidate latencies, a %s needs at least %d", metric, nc, label, need)
		default:
			c.Outcome, c.Reason = Pass, fmt.Sprintf("%s is within the %s ceiling", seen, msStr(m))
		}
		out = append(out, c)
	}
	if r.MaxRatioVsBaseline == nil {
		return out
	}
	k := *r.MaxRatioVsBaseline

	// The whole distribution: Mann-Whitney against k × baseline.
	mw := compareLatency(hc, hb, k)
	c := Check{Rule: i, Metric: metric, Kind: "maxRatioVsBaseline", Method: MannWhitney,
		Observed: mw.theta, Threshold: 0.5, CandidateSamples: nc, BaselineSamples: nb, Alpha: alpha,
		Statistic: ptr(mw.z), PValue: ptr(normalSurvival(mw.z)), EValue: eValue(mw.logE)}
	seen := fmt.Sprintf("P(candidate latency > %g × baseline) = %.3f", k, mw.theta)
	switch {
	case nc == 0 || nb == 0:
		c.Outcome, c.Reason = Inconclusive, metric+" vs baseline: no latencies yet on "+noTraffic(nc, nb)
		c.Statistic, c.PValue, c.EValue = nil, nil, nil
	case mw.fails(alpha):
		c.Outcome = Fail
		c.Reason = fmt.Sprintf("%s: the candidate is slower than %g × the baseline (Mann-Whitney z = %.2f, e-value %.3g ≥ %.3g)", seen, k, mw.z, *c.EValue, 1/alpha)
	case mw.theta > 0.5:
		c.Outcome = Inconclusive
		c.Reason = fmt.Sprintf("%s: the candidate looks slower than %g × the baseline, not yet beyond chance (e-value %.3g of %.3g needed)", seen, k, *c.EValue, 1/alpha)
	default:
		c.Outcome, c.Reason = Pass, fmt.Sprintf("%s: the candidate is within %g × the baseline's latency", seen, k)
	}
	out = append(out, c)

	// The rule's quantile: the candidate's lower bound against k times
	// the baseline's upper bound.
	loC, hiC := quantileBounds(hc, q, alpha/2)
	loB, hiB := quantileBounds(hb, q, alpha/2)
	obsRatio := estC / math.Max(estB, 1e-9)
	c = Check{Rule: i, Metric: metric, Kind: "maxRatioVsBaseline", Method: QuantileSequence,
		Observed: obsRatio, Threshold: k, Candidate: ptr(estC), Baseline: ptr(estB),
		CandidateSamples: nc, BaselineSamples: nb, Alpha: alpha,
		Lower: ptr(loC / hiB), Upper: ptr(hiC / math.Max(loB, 1e-9))}
	seen = fmt.Sprintf("candidate %s latency %s against the baseline's %s", label, msStr(estC), msStr(estB))
	switch {
	case nc == 0 || nb == 0:
		c.Outcome, c.Reason = Inconclusive, metric+" vs baseline: no latencies yet on "+noTraffic(nc, nb)
		c.Observed, c.Candidate, c.Baseline, c.Lower, c.Upper = 0, nil, nil, nil, nil
	case quantileRatioAbove(hc, hb, q, k, alpha/2):
		c.Outcome = Fail
		c.Reason = fmt.Sprintf("%s is more than %g times slower (at least %.3g times at confidence %s)", seen, k, loC/hiB, pct(1-alpha))
	case estC > k*estB:
		c.Outcome = Inconclusive
		c.Reason = fmt.Sprintf("%s is more than %g times slower, not yet beyond chance", seen, k)
	case nc < need || nb < need:
		c.Outcome = Inconclusive
		c.Reason = fmt.Sprintf("%s vs baseline: %d candidate and %d baseline latencies, a %s needs at least %d each", metric, nc, nb, label, need)
	default:
		c.Outcome, c.Reason = Pass, fmt.Sprintf("%s is within %g times", seen, k)
	}
	return append(out, c)
}

// latencyAbove reports whether the q-quantile of the candidate's
// latencies h is shown to exceed m: the share of latencies above m is
// shown to exceed 1 − q, which is the quantile's lower bound above m.
func latencyAbove(h Histogram, q, m, alpha float64) bool {
	return rateAbove(h.countAbove(m), h.Total(), 1-q, alpha)
}

// quantileRatioAbove reports whether the candidate's q-quantile is shown
// to exceed k times the baseline's: its lower bound above k times the
// baseline's upper bound, each at level a.
func quantileRatioAbove(hc, hb Histogram, q, k, a float64) bool {
	if len(hc) == 0 || len(hb) == 0 {
		return false
	}
	_, hiB := quantileBounds(hb, q, a)
	return !math.IsInf(hiB, 1) && latencyAbove(hc, q, k*hiB, a)
}

// fails reports whether the rank test's evidence reached 1/α.
func (r mannWhitney) fails(alpha float64) bool { return r.logE >= math.Log(1/alpha) }

// quantileBounds bounds the q-quantile of the distribution h samples at
// level α, at every look at once: the order statistics at the ends of
// the count confidence sequence. lo is 0 and hi +Inf where the data do
// not bound it yet.
func quantileBounds(h Histogram, q, alpha float64) (lo, hi float64) {
	n := h.Total()
	if n == 0 {
		return 0, math.Inf(1)
	}
	cLo, cHi := countBounds(n, q, alpha)
	lo, hi = 0, math.Inf(1)
	if cLo >= 1 {
		lo = h.orderStat(cLo)
	}
	if cHi+1 <= n {
		hi = h.orderStat(cHi + 1)
	}
	return lo, hi
}

// judgePrometheus checks a query's value against its bounds: a plain
// comparison, since a query's value is not a count of trials.
func judgePrometheus(i int, p PrometheusRule, results map[string]PromResult) []Check {
	var out []Check
	res, ran := results[p.Query]
	for _, b := range []struct {
		kind  string
		bound *float64
		bad   func(v, b float64) bool
		word  string
	}{
		{"max", p.Max, func(v, b float64) bool { return v > b }, "above the maximum"},
		{"min", p.Min, func(v, b float64) bool { return v < b }, "below the minimum"},
	} {
		if b.bound == nil {
			continue
		}
		c := Check{Rule: i, Metric: "prometheus", Kind: b.kind, Method: Threshold, Threshold: *b.bound}
		q := fmt.Sprintf("prometheus query %q", truncate(p.Query, 80))
		switch {
		case !ran:
			c.Outcome, c.Reason = Error, q+" was not run"
		case errors.Is(res.Err, ErrNoData):
			c.Outcome, c.Reason = Inconclusive, q+" returned no data yet"
		case res.Err != nil:
			c.Outcome, c.Reason = Error, fmt.Sprintf("%s: %v", q, res.Err)
		case math.IsNaN(res.Value):
			c.Outcome, c.Reason = Inconclusive, q+" returned NaN (no data yet)"
		case b.bad(res.Value, *b.bound):
			c.Observed, c.Candidate = clampFinite(res.Value), ptr(res.Value)
			c.Outcome, c.Reason = Fail, fmt.Sprintf("%s = %g is %s %g", q, res.Value, b.word, *b.bound)
		case res.Early:
			c.Observed, c.Candidate = clampFinite(res.Value), ptr(res.Value)
			c.Outcome, c.Reason = Inconclusive, fmt.Sprintf("%s = %g is within %s %g, read before Prometheus could have scraped this run's traffic", q, res.Value, b.kind, *b.bound)
		default:
			c.Observed, c.Candidate = clampFinite(res.Value), ptr(res.Value)
			c.Outcome, c.Reason = Pass, fmt.Sprintf("%s = %g is within %s %g", q, res.Value, b.kind, *b.bound)
		}
		out = append(out, c)
	}
	return out
}

func ratio(k, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(k) / float64(n)
}

func noTraffic(nc, nb uint64) string {
	switch {
	case nc == 0 && nb == 0:
		return "either version"
	case nc == 0:
		return "the candidate"
	}
	return "the baseline"
}

// pts formats a difference of ratios in percentage points.
func pts(x float64) string { return fmt.Sprintf("%.3g", 100*x) }

// clampFinite keeps ±Inf out of JSON evidence.
func clampFinite(x float64) float64 { return math.Max(-math.MaxFloat64, math.Min(x, math.MaxFloat64)) }
