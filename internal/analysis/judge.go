package analysis

import (
	"fmt"
	"math"
	"strings"
)

// Outcome is what the judge concludes.
type Outcome string

// Outcomes, from the controller's point of view: Pass lets the rollout
// go on, Fail rolls it back, Inconclusive waits for more traffic, Error
// means the evidence could not be gathered (a Prometheus query failed,
// counters went backwards) and says nothing about the candidate.
const (
	Pass         Outcome = "Pass"
	Fail         Outcome = "Fail"
	Inconclusive Outcome = "Inconclusive"
	Error        Outcome = "Error"
)

// Method names how a check reached its outcome.
type Method string

// Methods.
const (
	// RateSequence: a confidence sequence for an error ratio.
	RateSequence Method = "rate-confidence-sequence"
	// QuantileSequence: a confidence sequence for a latency quantile.
	QuantileSequence Method = "quantile-confidence-sequence"
	// MannWhitney: a Mann-Whitney U test judged by an always-valid
	// normal-mixture boundary.
	MannWhitney Method = "mann-whitney"
	// Threshold: a plain comparison of a Prometheus query's value.
	Threshold Method = "threshold"
)

// Verdict is the judge's conclusion with the evidence behind it, for the
// controller to act on and record, and for a person to read.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	// Reason is one sentence saying why.
	Reason    string       `json:"reason"`
	Candidate VersionTotal `json:"candidate"`
	Baseline  VersionTotal `json:"baseline"`
	// MinSamples and FalseRollbackRate are the Spec's, defaults applied.
	MinSamples        uint64  `json:"min_samples"`
	FalseRollbackRate float64 `json:"false_rollback_rate"`
	// Checks are the rules' checks in rule order; a rule with two
	// thresholds makes two checks, a latency ratio three.
	Checks []Check `json:"checks"`
}

// VersionTotal is how much traffic of one version the verdict rests on.
type VersionTotal struct {
	Requests       uint64 `json:"requests"`
	Errors         uint64 `json:"errors"`
	LatencySamples uint64 `json:"latency_samples"`
}

// Check is one threshold of one rule, judged. Observed is the estimate
// of the judged quantity (an error ratio, a difference of ratios, a
// latency in ms, a ratio of latencies, a probability, a query's value);
// Lower and Upper bound it at level Alpha at every look at once.
type Check struct {
	Rule      int     `json:"rule"` // index in Spec.Rules
	Metric    string  `json:"metric"`
	Kind      string  `json:"kind"` // max, maxVsBaseline, maxRatioVsBaseline, min
	Method    Method  `json:"method"`
	Outcome   Outcome `json:"outcome"`
	Observed  float64 `json:"observed"`
	Threshold float64 `json:"threshold"`
	// Candidate and Baseline are the versions' own values behind
	// Observed (error ratios, latency quantiles in ms).
	Candidate        *float64 `json:"candidate,omitempty"`
	Baseline         *float64 `json:"baseline,omitempty"`
	CandidateSamples uint64   `json:"candidate_samples"`
	BaselineSamples  uint64   `json:"baseline_samples,omitempty"`
	Lower            *float64 `json:"lower,omitempty"`
	Upper            *float64 `json:"upper,omitempty"`
	// Statistic and PValue are the Mann-Whitney z and its fixed-horizon
	// one-sided p-value, for people used to them; the decision uses
	// EValue, which stays valid under continuous monitoring.
	Statistic *float64 `json:"statistic,omitempty"`
	PValue    *float64 `json:"p_value,omitempty"`
	// EValue is the evidence against a healthy candidate: Fail when it
	// reaches 1/Alpha.
	EValue *float64 `json:"e_value,omitempty"`
	// Alpha is the share of FalseRollbackRate this check may spend (0
	// for a plain threshold).
	Alpha  float64 `json:"alpha,omitempty"`
	Reason string  `json:"reason"`
}

// Judge decides whether the candidate is healthy, from everything seen
// since the analysis started. It is pure and cheap (microseconds for the
// gateway's histograms), so the controller may call it after every batch
// of requests: the statistical checks stay valid however often they are
// looked at.
//
// A candidate fails as soon as one check shows, beyond the level that
// check was given, that a threshold is exceeded; it passes only when
// both versions served at least MinSamples requests and every check is
// within its threshold on enough data; otherwise the verdict is
// Inconclusive. Failure outranks Error, which outranks Inconclusive: a
// candidate shown to be broken is rolled back even when Prometheus is
// down.
func Judge(s Spec, obs Observations) Verdict {
	v := Verdict{
		Candidate:         total(obs.Candidate),
		Baseline:          total(obs.Baseline),
		MinSamples:        s.minSamples(),
		FalseRollbackRate: s.falseRollbackRate(),
	}
	if err := s.Validate(); err != nil {
		v.Outcome, v.Reason = Error, err.Error()
		return v
	}
	if err := obs.Candidate.check(); err != nil {
		v.Outcome, v.Reason = Error, "candidate: "+err.Error()
		return v
	}
	if err := obs.Baseline.check(); err != nil {
		v.Outcome, v.Reason = Error, "baseline: "+err.Error()
		return v
	}
	if c := obs.Comparison; c != nil && c.Disagreed > c.Compared {
		v.Outcome, v.Reason = Error, fmt.Sprintf("comparison: %d disagreements out of %d compared answers", c.Disagreed, c.Compared)
		return v
	}
	alpha := v.FalseRollbackRate / float64(statisticalChecks(s))
	for i, r := range s.Rules {
		switch {
		case r.Prometheus != nil:
			v.Checks = append(v.Checks, judgePrometheus(i, *r.Prometheus, obs.Prometheus)...)
		case r.Metric == ErrorRate || r.Metric == ClientErrorRate:
			v.Checks = append(v.Checks, judgeErrorRate(i, r, obs, alpha)...)
		case r.Metric == DisagreementRate:
			v.Checks = append(v.Checks, judgeDisagreement(i, r, obs, alpha)...)
		default:
			v.Checks = append(v.Checks, judgeLatency(i, r, obs, alpha)...)
		}
	}
	if len(v.Checks) == 0 {
		// Every rule is one that does not apply to this traffic (a
		// disagreement_rate rule while the candidate takes live traffic):
		// nothing was judged, so nothing passed.
		v.Outcome, v.Reason = Inconclusive, "no rule judges this traffic: disagreement_rate applies only while the candidate is mirrored; add a rule such as error_rate"
		return v
	}
	v.Outcome, v.Reason = conclude(v)
	return v
}

// statisticalChecks counts the checks that share FalseRollbackRate
// (Bonferroni): one per error-rate or latency threshold, two for a
// latency ratio (distribution and quantile).
func statisticalChecks(s Spec) int {
	n := 0
	for _, r := range s.Rules {
		if r.Prometheus != nil {
			continue
		}
		if r.Max != nil {
			n++
		}
		if r.MaxVsBaseline != nil {
			n++
		}
		if r.MaxRatioVsBaseline != nil {
			n += 2
		}
	}
	return max(n, 1)
}

func total(v Version) VersionTotal {
	return VersionTotal{Requests: v.Requests, Errors: v.Errors, LatencySamples: v.Latency.Total()}
}

// conclude combines the checks into the verdict's outcome and reason.
func conclude(v Verdict) (Outcome, string) {
	for _, o := range []Outcome{Fail, Error} {
		var why []string
		for _, c := range v.Checks {
			if c.Outcome == o {
				why = append(why, c.Reason)
			}
		}
		if len(why) > 0 {
			return o, strings.Join(why, "; ")
		}
	}
	var short []string
	if n := v.Candidate.Requests; n < v.MinSamples {
		short = append(short, fmt.Sprintf("the candidate has served %d of the %d requests it needs", n, v.MinSamples))
	}
	if n := v.Baseline.Requests; n < v.MinSamples {
		short = append(short, fmt.Sprintf("the baseline has served %d of the %d requests it needs", n, v.MinSamples))
	}
	for _, c := range v.Checks {
		if c.Outcome == Inconclusive {
			short = append(short, c.Reason)
		}
	}
	if len(short) > 0 {
		return Inconclusive, strings.Join(short, "; ")
	}
	why := make([]string, len(v.Checks))
	for i, c := range v.Checks {
		why[i] = c.Reason
	}
	all := fmt.Sprintf("all %d checks are", len(v.Checks))
	if len(v.Checks) == 1 {
		all = "the one check is"
	}
	return Pass, fmt.Sprintf("%s within their thresholds after %d candidate and %d baseline requests: %s", all, v.Candidate.Requests, v.Baseline.Requests, strings.Join(why, "; "))
}

// ptr returns a pointer to a finite x, or nil, so evidence never holds
// a value JSON cannot carry.
func ptr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// eValue is exp(logE), capped so it stays finite.
func eValue(logE float64) *float64 {
	return ptr(math.Exp(math.Min(logE, 700)))
}

func pct(x float64) string {
	s := fmt.Sprintf("%.2f", 100*x)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + " %"
}

func msStr(x float64) string { return fmt.Sprintf("%.4g ms", x) }
