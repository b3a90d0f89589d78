package analysis

import (
	"fmt"
	"math"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Defaults for fields a Spec leaves at zero.
const (
	// DefaultMinSamples is the requests each version must have served
	// before the candidate can pass, when minSamples is not given.
	DefaultMinSamples = 100
	// DefaultFalseRollbackRate is the chance of failing a healthy
	// candidate that the judge allows over a whole analysis, when
	// falseRollbackRate is not given.
	DefaultFalseRollbackRate = 0.01
)

// Bounds on a Spec, so a document cannot ask for the unreasonable.
const (
	maxRules          = 32
	maxQueryBytes     = 4096
	maxMinSamples     = 1_000_000_000
	maxFalseRollback  = 0.2
	minFalseRollback  = 1e-9
	maxLatencyMs      = 24 * 3600 * 1000.0
	maxLatencyRatio   = 1000.0
	defaultSpecPrefix = "analysis"
)

// Metric names a live metric the gateway records for every version.
type Metric string

// Metrics a rule may judge.
const (
	ErrorRate    Metric = "error_rate"
	LatencyP50Ms Metric = "latency_p50_ms"
	LatencyP90Ms Metric = "latency_p90_ms"
	LatencyP95Ms Metric = "latency_p95_ms"
	LatencyP99Ms Metric = "latency_p99_ms"
	// DisagreementRate is the share of a mirrored candidate's answers
	// that differ from the primary's (shadow traffic only).
	DisagreementRate Metric = "disagreement_rate"
	// ClientErrorRate is the share of requests answered 4xx: the
	// caller's fault when the baseline answers them alike, a broken
	// candidate when it refuses what the baseline accepts (a changed
	// input schema).
	ClientErrorRate Metric = "client_error_rate"
)

// Metrics lists every metric a rule may name.
var Metrics = []Metric{ErrorRate, ClientErrorRate, LatencyP50Ms, LatencyP90Ms, LatencyP95Ms, LatencyP99Ms, DisagreementRate}

// quantile is the latency quantile a metric names, 0 for error_rate.
func (m Metric) quantile() float64 {
	switch m {
	case LatencyP50Ms:
		return 0.50
	case LatencyP90Ms:
		return 0.90
	case LatencyP95Ms:
		return 0.95
	case LatencyP99Ms:
		return 0.99
	}
	return 0
}

func (m Metric) known() bool {
	for _, k := range Metrics {
		if m == k {
			return true
		}
	}
	return false
}

// Spec is the analysis block of a Rollout: what the candidate must show,
// against fixed thresholds and against the baseline it replaces, before
// it may take more traffic. Field names match the Rollout YAML.
type Spec struct {
	// MinSamples is the requests each version must have served before the
	// candidate can pass (0: DefaultMinSamples). It bounds Pass only:
	// overwhelming evidence fails a candidate sooner.
	MinSamples int `yaml:"minSamples" json:"minSamples,omitempty"`
	// Rules the candidate must satisfy; at least one.
	Rules []Rule `yaml:"rules" json:"rules"`
	// FalseRollbackRate is the allowed probability that a healthy
	// candidate is failed at any point of the analysis, however often it
	// is judged (0: DefaultFalseRollbackRate). It covers the statistical
	// rules; a Prometheus threshold is a plain comparison.
	FalseRollbackRate float64 `yaml:"falseRollbackRate" json:"falseRollbackRate,omitempty"`
}

// Rule is one condition: either a gateway metric (Metric with Max,
// MaxVsBaseline or MaxRatioVsBaseline) or a Prometheus query.
type Rule struct {
	Metric Metric `yaml:"metric" json:"metric,omitempty"`
	// Max is an absolute ceiling: an error ratio in [0, 1] for
	// error_rate, milliseconds for a latency quantile.
	Max *float64 `yaml:"max" json:"max,omitempty"`
	// MaxVsBaseline (error_rate only) is how much higher, in absolute
	// terms, the candidate's error ratio may be than the baseline's:
	// 0.005 allows 1.0 % against 0.5 %.
	MaxVsBaseline *float64 `yaml:"maxVsBaseline" json:"maxVsBaseline,omitempty"`
	// MaxRatioVsBaseline (latency only) is how many times slower than the
	// baseline the candidate may be, at least 1: 1.25 tolerates 25 %.
	MaxRatioVsBaseline *float64 `yaml:"maxRatioVsBaseline" json:"maxRatioVsBaseline,omitempty"`
	// Prometheus is a query judged against fixed bounds instead of a
	// gateway metric.
	Prometheus *PrometheusRule `yaml:"prometheus" json:"prometheus,omitempty"`
}

// PrometheusRule is an instant query whose value must stay within Min
// and Max (at least one given).
type PrometheusRule struct {
	Query string   `yaml:"query" json:"query"`
	Max   *float64 `yaml:"max" json:"max,omitempty"`
	Min   *float64 `yaml:"min" json:"min,omitempty"`
}

// SpecError is a Spec refused: which rule (Rule is the 0-based index, -1
// for the spec's own fields), which field, and why, so a YAML reader can
// point at the line. It is an ErrInvalid.
type SpecError struct {
	Rule   int
	Field  string
	Reason string
}

func (e *SpecError) Error() string {
	var b strings.Builder
	b.WriteString(defaultSpecPrefix)
	if e.Rule >= 0 {
		fmt.Fprintf(&b, ".rules[%d]", e.Rule)
	}
	if e.Field != "" {
		b.WriteString("." + e.Field)
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

// Unwrap makes a SpecError an ErrInvalid.
func (e *SpecError) Unwrap() error { return domain.ErrInvalid }

func specErr(rule int, field, format string, args ...any) error {
	return &SpecError{Rule: rule, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate refuses a Spec the judge could not apply or a person would
// misread. Every error is a *SpecError.
func (s Spec) Validate() error {
	if s.MinSamples < 0 || s.MinSamples > maxMinSamples {
		return specErr(-1, "minSamples", "is %d; it must be from 0 (the default, %d) to %d", s.MinSamples, DefaultMinSamples, maxMinSamples)
	}
	if r := s.FalseRollbackRate; r != 0 && (math.IsNaN(r) || r < minFalseRollback || r > maxFalseRollback) {
		return specErr(-1, "falseRollbackRate", "is %g; it must be a probability above 0 and at most %g (0 or absent: %g)", r, maxFalseRollback, DefaultFalseRollbackRate)
	}
	if len(s.Rules) == 0 {
		return specErr(-1, "rules", "no rules: an analysis without rules would pass every candidate that gets traffic; add error_rate or latency rules")
	}
	if len(s.Rules) > maxRules {
		return specErr(-1, "rules", "%d rules, at most %d allowed", len(s.Rules), maxRules)
	}
	seen := map[Metric]int{}
	for i, r := range s.Rules {
		if err := r.validate(i); err != nil {
			return err
		}
		if r.Metric != "" {
			if j, dup := seen[r.Metric]; dup {
				return specErr(i, "metric", "%s is already judged by rules[%d]; give all its thresholds in one rule", r.Metric, j)
			}
			seen[r.Metric] = i
		}
	}
	return nil
}

func (r Rule) validate(i int) error {
	if r.Prometheus != nil {
		if r.Metric != "" || r.Max != nil || r.MaxVsBaseline != nil || r.MaxRatioVsBaseline != nil {
			return specErr(i, "prometheus", "a rule is either a metric or a prometheus query; put max and min inside prometheus: {query, max, min}")
		}
		return r.Prometheus.validate(i)
	}
	if r.Metric == "" {
		return specErr(i, "metric", "missing: name a metric (%s) or give prometheus: {query, max}", metricList())
	}
	if !r.Metric.known() {
		return specErr(i, "metric", "%q is not one of %s", truncate(string(r.Metric), 40), metricList())
	}
	if r.Max == nil && r.MaxVsBaseline == nil && r.MaxRatioVsBaseline == nil {
		return specErr(i, "", "%s has no threshold: give max or %s", r.Metric, r.Metric.relativeField())
	}
	if err := finite(i, "max", r.Max); err != nil {
		return err
	}
	if err := finite(i, "maxVsBaseline", r.MaxVsBaseline); err != nil {
		return err
	}
	if err := finite(i, "maxRatioVsBaseline", r.MaxRatioVsBaseline); err != nil {
		return err
	}
	if r.Metric == DisagreementRate {
		if r.MaxVsBaseline != nil || r.MaxRatioVsBaseline != nil {
			return specErr(i, "", "disagreement_rate compares the candidate's mirrored answers with the primary's; it takes max only (0.01 is 1 %% of answers)")
		}
		if *r.Max < 0 || *r.Max >= 1 {
			return specErr(i, "max", "is %g; a disagreement ceiling is a fraction from 0 to below 1 (0.01 is 1 %%)", *r.Max)
		}
		return nil
	}
	if r.Metric == ErrorRate || r.Metric == ClientErrorRate {
		if r.MaxRatioVsBaseline != nil {
			return specErr(i, "maxRatioVsBaseline", "applies to latency; %s compares with the baseline by maxVsBaseline, an absolute difference such as 0.005", r.Metric)
		}
		if r.Max != nil && (*r.Max < 0 || *r.Max >= 1) {
			return specErr(i, "max", "is %g; an error rate ceiling is a fraction from 0 to below 1 (0.02 is 2 %%)", *r.Max)
		}
		if r.MaxVsBaseline != nil && (*r.MaxVsBaseline < 0 || *r.MaxVsBaseline >= 1) {
			return specErr(i, "maxVsBaseline", "is %g; it is a difference of error fractions from 0 to below 1 (0.005 is half a point)", *r.MaxVsBaseline)
		}
		return nil
	}
	if r.MaxVsBaseline != nil {
		return specErr(i, "maxVsBaseline", "applies to error_rate; latency compares with the baseline by maxRatioVsBaseline, such as 1.25")
	}
	if r.Max != nil && (*r.Max <= 0 || *r.Max > maxLatencyMs) {
		return specErr(i, "max", "is %g; a latency ceiling is milliseconds above 0 and at most %g", *r.Max, maxLatencyMs)
	}
	if r.MaxRatioVsBaseline != nil && (*r.MaxRatioVsBaseline < 1 || *r.MaxRatioVsBaseline > maxLatencyRatio) {
		return specErr(i, "maxRatioVsBaseline", "is %g; it is how many times slower the candidate may be, from 1 to %g", *r.MaxRatioVsBaseline, maxLatencyRatio)
	}
	return nil
}

func (p PrometheusRule) validate(i int) error {
	if strings.TrimSpace(p.Query) == "" {
		return specErr(i, "prometheus.query", "missing: give the PromQL instant query whose value is judged")
	}
	if len(p.Query) > maxQueryBytes {
		return specErr(i, "prometheus.query", "is %d bytes, at most %d allowed", len(p.Query), maxQueryBytes)
	}
	if p.Max == nil && p.Min == nil {
		return specErr(i, "prometheus", "no bound: give max, min or both")
	}
	if err := finite(i, "prometheus.max", p.Max); err != nil {
		return err
	}
	if err := finite(i, "prometheus.min", p.Min); err != nil {
		return err
	}
	if p.Max != nil && p.Min != nil && *p.Min > *p.Max {
		return specErr(i, "prometheus", "min %g is above max %g, so no value could pass", *p.Min, *p.Max)
	}
	return nil
}

func (m Metric) relativeField() string {
	if m == DisagreementRate {
		return "nothing else (disagreement_rate takes max only)"
	}
	if m == ErrorRate || m == ClientErrorRate {
		return "maxVsBaseline"
	}
	return "maxRatioVsBaseline"
}

func finite(i int, field string, v *float64) error {
	if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
		return specErr(i, field, "must be a finite number")
	}
	return nil
}

func metricList() string {
	names := make([]string, len(Metrics))
	for i, m := range Metrics {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// minSamples is MinSamples with its default.
func (s Spec) minSamples() uint64 {
	if s.MinSamples == 0 {
		return DefaultMinSamples
	}
	return uint64(s.MinSamples)
}

// falseRollbackRate is FalseRollbackRate with its default.
func (s Spec) falseRollbackRate() float64 {
	if s.FalseRollbackRate == 0 {
		return DefaultFalseRollbackRate
	}
	return s.FalseRollbackRate
}
