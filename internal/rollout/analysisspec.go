package rollout

import (
	"fmt"
	"math"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/yamldoc"
)

// AnalysisSpec is the analysis block of a rollout: the rules the judge
// applies to the candidate, how many samples it needs before a Pass, and
// the false-rollback rate its sequential tests are tuned to.
//
// It mirrors the field names of the judge's own spec (internal/analysis,
// written beside this package); until that type is committed the block
// is read and checked here, structurally: the judge refuses metrics it
// does not know when the controller hands it the rules.
type AnalysisSpec struct {
	MinSamples        int
	Rules             []AnalysisRule
	FalseRollbackRate float64
}

// AnalysisRule is one rule: a live metric of the gateway (Metric) or a
// Prometheus query, with at least one threshold.
type AnalysisRule struct {
	Metric             string
	Min                *float64
	Max                *float64
	MaxVsBaseline      *float64 // candidate at most baseline + this
	MaxRatioVsBaseline *float64 // candidate at most baseline × this
	Prometheus         *PrometheusRule
}

// PrometheusRule judges the value of a PromQL query against bounds.
type PrometheusRule struct {
	Query string
	Min   *float64
	Max   *float64
}

// Defaults and bounds of the analysis block.
const (
	DefaultMinSamples        = 100
	DefaultFalseRollbackRate = 0.01
	maxAnalysisRules         = 32
	maxQueryBytes            = 4 << 10
)

type analysisFile struct {
	MinSamples        *int        `yaml:"minSamples"`
	Rules             []yaml.Node `yaml:"rules"`
	FalseRollbackRate *float64    `yaml:"falseRollbackRate"`
}

type analysisRuleFile struct {
	Metric             string    `yaml:"metric"`
	Min                *float64  `yaml:"min"`
	Max                *float64  `yaml:"max"`
	MaxVsBaseline      *float64  `yaml:"maxVsBaseline"`
	MaxRatioVsBaseline *float64  `yaml:"maxRatioVsBaseline"`
	Prometheus         yaml.Node `yaml:"prometheus"`
}

type prometheusFile struct {
	Query string   `yaml:"query"`
	Min   *float64 `yaml:"min"`
	Max   *float64 `yaml:"max"`
}

var metricName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func (p parser) analysis(n *yaml.Node) (AnalysisSpec, error) {
	var f analysisFile
	if err := p.decode(n, &f, "analysis"); err != nil {
		return AnalysisSpec{}, err
	}
	a := AnalysisSpec{MinSamples: DefaultMinSamples, FalseRollbackRate: DefaultFalseRollbackRate}
	if f.MinSamples != nil {
		if *f.MinSamples < 1 || *f.MinSamples > maxMinSamples {
			return a, p.errorf(yamldoc.KeyLine(n, "minSamples"), "analysis.minSamples %d must be from 1 to %d", *f.MinSamples, maxMinSamples)
		}
		a.MinSamples = *f.MinSamples
	}
	if f.FalseRollbackRate != nil {
		r := *f.FalseRollbackRate
		if math.IsNaN(r) || r <= 0 || r > 0.5 {
			return a, p.errorf(yamldoc.KeyLine(n, "falseRollbackRate"), "analysis.falseRollbackRate %v must be above 0 and at most 0.5", r)
		}
		a.FalseRollbackRate = r
	}
	if len(f.Rules) == 0 {
		return a, p.errorf(yamldoc.KeyLine(n, "rules"), "analysis.rules is missing or empty: give at least one rule")
	}
	if len(f.Rules) > maxAnalysisRules {
		return a, p.errorf(yamldoc.KeyLine(n, "rules"), "analysis has %d rules, at most %d allowed", len(f.Rules), maxAnalysisRules)
	}
	for i := range f.Rules {
		r, err := p.analysisRule(&f.Rules[i], i+1)
		if err != nil {
			return a, err
		}
		a.Rules = append(a.Rules, r)
	}
	return a, nil
}

func (p parser) analysisRule(n *yaml.Node, i int) (AnalysisRule, error) {
	at := fmt.Sprintf("analysis rule %d", i)
	var f analysisRuleFile
	if err := p.decode(n, &f, at); err != nil {
		return AnalysisRule{}, err
	}
	r := AnalysisRule{Metric: f.Metric, Min: f.Min, Max: f.Max, MaxVsBaseline: f.MaxVsBaseline, MaxRatioVsBaseline: f.MaxRatioVsBaseline}
	if yamldoc.Present(f.Prometheus) {
		if f.Metric != "" || f.Min != nil || f.Max != nil || f.MaxVsBaseline != nil || f.MaxRatioVsBaseline != nil {
			return r, p.errorf(n.Line, "%s: a prometheus rule takes its bounds inside prometheus: {query, min, max}, and no metric", at)
		}
		var pf prometheusFile
		if err := p.decode(&f.Prometheus, &pf, at+": prometheus"); err != nil {
			return r, err
		}
		if pf.Query == "" || len(pf.Query) > maxQueryBytes {
			return r, p.errorf(f.Prometheus.Line, "%s: prometheus.query must be a PromQL query of 1 to %d bytes", at, maxQueryBytes)
		}
		if pf.Min == nil && pf.Max == nil {
			return r, p.errorf(f.Prometheus.Line, "%s: prometheus rule has no bound; give min or max", at)
		}
		if err := checkBounds(map[string]*float64{"min": pf.Min, "max": pf.Max}, pf.Min, pf.Max); err != nil {
			return r, p.errorf(f.Prometheus.Line, "%s: prometheus.%s", at, err)
		}
		r.Prometheus = &PrometheusRule{Query: pf.Query, Min: pf.Min, Max: pf.Max}
		return r, nil
	}
	if !metricName.MatchString(f.Metric) {
		return r, p.errorf(n.Line, "%s: metric %q must be a metric name such as error_rate or latency_p99_ms (or give prometheus: {query, max})", at, truncate(f.Metric, 40))
	}
	if r.Min == nil && r.Max == nil && r.MaxVsBaseline == nil && r.MaxRatioVsBaseline == nil {
		return r, p.errorf(n.Line, "%s: rule on %s has no threshold; give min, max, maxVsBaseline or maxRatioVsBaseline", at, r.Metric)
	}
	named := map[string]*float64{"min": r.Min, "max": r.Max, "maxVsBaseline": r.MaxVsBaseline, "maxRatioVsBaseline": r.MaxRatioVsBaseline}
	if err := checkBounds(named, r.Min, r.Max); err != nil {
		return r, p.errorf(n.Line, "%s: %s", at, err)
	}
	if r.MaxRatioVsBaseline != nil && *r.MaxRatioVsBaseline <= 0 {
		return r, p.errorf(yamldoc.KeyLine(n, "maxRatioVsBaseline"), "%s: maxRatioVsBaseline %v must be above 0", at, *r.MaxRatioVsBaseline)
	}
	return r, nil
}

// checkBounds refuses non-finite thresholds and min above max.
func checkBounds(named map[string]*float64, lo, hi *float64) error {
	for _, k := range []string{"min", "max", "maxVsBaseline", "maxRatioVsBaseline"} {
		if v := named[k]; v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			return fmt.Errorf("%s must be a finite number", k)
		}
	}
	if lo != nil && hi != nil && *lo > *hi {
		return fmt.Errorf("min %v is above max %v, so no value could pass", *lo, *hi)
	}
	return nil
}
