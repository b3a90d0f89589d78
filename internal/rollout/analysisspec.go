package rollout

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/yamldoc"
)

// The analysis block is the judge's own analysis.Spec. It is read here,
// strictly and with lines, and checked by the judge's Validate, whose
// refusals are placed at the line of the rule and field they name.

type analysisFile struct {
	MinSamples        *int        `yaml:"minSamples"`
	Rules             []yaml.Node `yaml:"rules"`
	FalseRollbackRate *float64    `yaml:"falseRollbackRate"`
}

type analysisRuleFile struct {
	Metric             string    `yaml:"metric"`
	Max                *float64  `yaml:"max"`
	MaxVsBaseline      *float64  `yaml:"maxVsBaseline"`
	MaxRatioVsBaseline *float64  `yaml:"maxRatioVsBaseline"`
	Prometheus         yaml.Node `yaml:"prometheus"`
}

// analysisBlock reads the analysis block, with the judge's defaults
// written in so plans and listings show the numbers in force.
func (p parser) analysisBlock(n *yaml.Node) (analysis.Spec, error) {
	var f analysisFile
	if err := p.decode(n, &f, "analysis"); err != nil {
		return analysis.Spec{}, err
	}
	var a analysis.Spec
	if f.MinSamples != nil {
		if *f.MinSamples < 1 {
			return a, p.errorf(yamldoc.KeyLine(n, "minSamples"), "analysis.minSamples is %d; it must be at least 1 (leave it out for %d)", *f.MinSamples, analysis.DefaultMinSamples)
		}
		a.MinSamples = *f.MinSamples
	}
	if f.FalseRollbackRate != nil {
		a.FalseRollbackRate = *f.FalseRollbackRate
		if a.FalseRollbackRate == 0 {
			return a, p.errorf(yamldoc.KeyLine(n, "falseRollbackRate"), "analysis.falseRollbackRate is 0; no test can promise that (leave it out for %g)", analysis.DefaultFalseRollbackRate)
		}
	}
	for i := range f.Rules {
		rn := &f.Rules[i]
		at := fmt.Sprintf("analysis rule %d", i+1)
		var rf analysisRuleFile
		if err := p.decode(rn, &rf, at); err != nil {
			return a, err
		}
		r := analysis.Rule{Metric: analysis.Metric(rf.Metric), Max: rf.Max, MaxVsBaseline: rf.MaxVsBaseline, MaxRatioVsBaseline: rf.MaxRatioVsBaseline}
		if yamldoc.Present(rf.Prometheus) {
			var pr analysis.PrometheusRule
			if err := p.decode(&rf.Prometheus, &pr, at+": prometheus"); err != nil {
				return a, err
			}
			r.Prometheus = &pr
		}
		a.Rules = append(a.Rules, r)
	}
	if err := a.Validate(); err != nil {
		return a, p.errorf(specErrorLine(n, f.Rules, err), "%s", yamldoc.Reason(err))
	}
	if a.MinSamples == 0 {
		a.MinSamples = analysis.DefaultMinSamples
	}
	if a.FalseRollbackRate == 0 {
		a.FalseRollbackRate = analysis.DefaultFalseRollbackRate
	}
	return a, nil
}

// specErrorLine finds the line of the rule and field a judge's refusal
// names: analysis.rules[2].prometheus.query is the query's line.
func specErrorLine(block *yaml.Node, rules []yaml.Node, err error) int {
	var se *analysis.SpecError
	if !errors.As(err, &se) {
		return block.Line
	}
	n := block
	if se.Rule >= 0 && se.Rule < len(rules) {
		n = &rules[se.Rule]
	}
	if se.Field == "" {
		return n.Line
	}
	line := n.Line
	for _, seg := range strings.Split(se.Field, ".") {
		line = yamldoc.KeyLine(n, seg)
		if n = valueOf(n, seg); n == nil {
			break
		}
	}
	return line
}

// valueOf is the value node of key in mapping m, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
