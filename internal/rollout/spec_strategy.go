package rollout

import (
	"fmt"
	"math"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/yamldoc"
)

type canaryFile struct {
	Steps []yaml.Node `yaml:"steps"`
}

type stepFile struct {
	Weight   *int      `yaml:"weight"`
	Pause    string    `yaml:"pause"`
	Analysis yaml.Node `yaml:"analysis"`
	Approval yaml.Node `yaml:"approval"`
}

type approvalFile struct {
	Role string `yaml:"role"`
}

type analysisStepFile struct {
	MinSamples *int `yaml:"minSamples"`
}

type blueGreenFile struct {
	Smoke        []yaml.Node `yaml:"smoke"`
	KeepPrevious string      `yaml:"keepPrevious"`
	PreSwitch    yaml.Node   `yaml:"preSwitch"`
}

type mirrorFile struct {
	Duration string   `yaml:"duration"`
	Percent  *float64 `yaml:"percent"`
}

type shadowFile struct {
	Duration string      `yaml:"duration"`
	Percent  *float64    `yaml:"percent"`
	Steps    []yaml.Node `yaml:"steps"`
}

type abTestFile struct {
	Key      string `yaml:"key"`
	Duration string `yaml:"duration"`
	Split    *int   `yaml:"split"`
	Winner   string `yaml:"winner"`
}

func (p parser) canary(n *yaml.Node, analysis bool) (CanarySpec, error) {
	var f canaryFile
	if err := p.decode(n, &f, "canary"); err != nil {
		return CanarySpec{}, err
	}
	steps, err := p.steps(n, f.Steps, "canary", analysis, false)
	return CanarySpec{Steps: steps}, err
}

// steps reads a list of canary steps. mirrored says traffic is mirrored
// to the candidate before the first weight (shadow), so an analysis step
// there has something to judge.
func (p parser) steps(parent *yaml.Node, nodes []yaml.Node, where string, analysis, mirrored bool) ([]CanaryStep, error) {
	if len(nodes) == 0 {
		return nil, p.errorf(yamldoc.KeyLine(parent, "steps"), "%s.steps is missing or empty: give at least one step", where)
	}
	if len(nodes) > maxCanarySteps {
		return nil, p.errorf(yamldoc.KeyLine(parent, "steps"), "%s has %d steps, at most %d allowed", where, len(nodes), maxCanarySteps)
	}
	out := make([]CanaryStep, 0, len(nodes))
	weight := 0
	for i := range nodes {
		n := &nodes[i]
		at := fmt.Sprintf("%s step %d", where, i+1)
		var f stepFile
		if err := p.decode(n, &f, at); err != nil {
			return nil, err
		}
		var s CanaryStep
		if wn := valueOf(n, "weight"); wn != nil && wn.Tag != "!!int" {
			// YAML would read 10.5 as 10: a fraction is refused, not cut.
			return nil, p.errorf(wn.Line, "%s: weight %q must be a whole percent, such as 10", at, truncate(wn.Value, 40))
		}
		if f.Weight != nil {
			w := *f.Weight
			if w < 1 || w > 100 {
				return nil, p.errorf(yamldoc.KeyLine(n, "weight"), "%s: weight %d is the candidate's percent of traffic, from 1 to 100", at, w)
			}
			if w <= weight {
				return nil, p.errorf(yamldoc.KeyLine(n, "weight"), "%s: weight %d must be above the previous step's %d; weights only go up (abort or undo to go back)", at, w, weight)
			}
			s.Weight, weight = w, w
		}
		if f.Pause != "" {
			d, err := parseDuration(f.Pause, time.Millisecond, MaxPause)
			if err != nil {
				return nil, p.errorf(yamldoc.KeyLine(n, "pause"), "%s: pause: %s", at, err)
			}
			s.Pause = d
		}
		if yamldoc.Present(f.Analysis) {
			if !analysis {
				return nil, p.errorf(yamldoc.KeyLine(n, "analysis"), "%s: an analysis step needs the rollout's analysis block (its rules)", at)
			}
			if weight == 0 && !mirrored {
				return nil, p.errorf(yamldoc.KeyLine(n, "analysis"), "%s: an analysis step before any weight has no traffic to judge; put it after a weight step", at)
			}
			var af analysisStepFile
			if err := p.decode(&f.Analysis, &af, at+": analysis"); err != nil {
				return nil, err
			}
			s.Analysis = &AnalysisStep{}
			if af.MinSamples != nil {
				if *af.MinSamples < 1 || *af.MinSamples > maxMinSamples {
					return nil, p.errorf(f.Analysis.Line, "%s: analysis.minSamples %d must be from 1 to %d", at, *af.MinSamples, maxMinSamples)
				}
				s.Analysis.MinSamples = *af.MinSamples
			}
		}
		if yamldoc.Present(f.Approval) {
			var af approvalFile
			if err := p.decode(&f.Approval, &af, at+": approval"); err != nil {
				return nil, err
			}
			role, err := approvalRole(af.Role)
			if err != nil {
				return nil, p.errorf(f.Approval.Line, "%s: approval.role: %s", at, yamldoc.Reason(err))
			}
			s.Approval = &ApprovalStep{Role: role}
		}
		if s.Weight == 0 && s.Pause == 0 && s.Analysis == nil && s.Approval == nil {
			return nil, p.errorf(n.Line, "%s is empty: give weight, pause, analysis or approval", at)
		}
		out = append(out, s)
	}
	return out, nil
}

// approvalRole is the role an approval needs; approver by default. A
// viewer cannot approve anything.
func approvalRole(s string) (domain.Role, error) {
	if s == "" {
		return domain.RoleApprover, nil
	}
	r, err := domain.ParseRole(s)
	if err != nil {
		return "", err
	}
	if r == domain.RoleViewer {
		return "", fmt.Errorf("a viewer may not approve; use approver, deployer or admin: %w", domain.ErrInvalid)
	}
	return r, nil
}

func (p parser) blueGreen(n *yaml.Node, analysis bool) (BlueGreenSpec, error) {
	var f blueGreenFile
	if err := p.decode(n, &f, "blueGreen"); err != nil {
		return BlueGreenSpec{}, err
	}
	var b BlueGreenSpec
	if len(f.Smoke) > maxSmokeCases {
		return b, p.errorf(yamldoc.KeyLine(n, "smoke"), "blueGreen has %d smoke requests, at most %d allowed", len(f.Smoke), maxSmokeCases)
	}
	for i := range f.Smoke {
		c, err := p.smokeCase(&f.Smoke[i], i+1)
		if err != nil {
			return b, err
		}
		b.Smoke = append(b.Smoke, c)
	}
	if f.KeepPrevious != "" {
		d, err := parseDuration(f.KeepPrevious, 0, MaxKeepPrevious)
		if err != nil {
			return b, p.errorf(yamldoc.KeyLine(n, "keepPrevious"), "blueGreen.keepPrevious: %s", err)
		}
		b.KeepPrevious = d
	}
	if yamldoc.Present(f.PreSwitch) {
		if !analysis {
			return b, p.errorf(yamldoc.KeyLine(n, "preSwitch"), "blueGreen.preSwitch judges mirrored traffic and needs the rollout's analysis block (its rules)")
		}
		var m mirrorFile
		if err := p.decode(&f.PreSwitch, &m, "blueGreen.preSwitch"); err != nil {
			return b, err
		}
		mirror, err := p.mirror(&f.PreSwitch, m.Duration, m.Percent, "blueGreen.preSwitch")
		if err != nil {
			return b, err
		}
		b.PreSwitch = &mirror
	}
	if len(b.Smoke) == 0 && b.PreSwitch == nil {
		return b, p.errorf(n.Line, "blueGreen checks nothing before switching all traffic: give smoke requests, or preSwitch (mirrored traffic judged by the analysis)")
	}
	return b, nil
}

// mirror reads a duration (required) and a percent (default 100).
func (p parser) mirror(n *yaml.Node, dur string, pct *float64, where string) (Mirror, error) {
	var m Mirror
	if dur == "" {
		return m, p.errorf(n.Line, "%s.duration is missing: how long to mirror traffic, such as 10m", where)
	}
	d, err := parseDuration(dur, time.Second, MaxShadowDuration)
	if err != nil {
		return m, p.errorf(yamldoc.KeyLine(n, "duration"), "%s.duration: %s", where, err)
	}
	m.Duration, m.Percent = d, 100
	if pct != nil {
		if math.IsNaN(*pct) || *pct <= 0 || *pct > 100 {
			return m, p.errorf(yamldoc.KeyLine(n, "percent"), "%s.percent %v must be above 0 and at most 100", where, *pct)
		}
		m.Percent = *pct
	}
	return m, nil
}

func (p parser) shadow(n *yaml.Node, analysis bool) (ShadowSpec, error) {
	var f shadowFile
	if err := p.decode(n, &f, "shadow"); err != nil {
		return ShadowSpec{}, err
	}
	m, err := p.mirror(n, f.Duration, f.Percent, "shadow")
	if err != nil {
		return ShadowSpec{}, err
	}
	steps, err := p.steps(n, f.Steps, "shadow", analysis, true)
	return ShadowSpec{Mirror: m, Steps: steps}, err
}

func (p parser) abTest(n *yaml.Node, analysis bool) (ABTestSpec, error) {
	var f abTestFile
	if err := p.decode(n, &f, "abTest"); err != nil {
		return ABTestSpec{}, err
	}
	var ab ABTestSpec
	if !analysis {
		return ab, p.errorf(n.Line, "abTest reports each metric per arm and needs the rollout's analysis block (its rules)")
	}
	if f.Key == "" {
		return ab, p.errorf(n.Line, "abTest.key is missing: the sticky key, header:NAME or json:FIELD")
	}
	k, err := domain.ParseStickyKey(f.Key)
	if err != nil {
		return ab, p.errorf(yamldoc.KeyLine(n, "key"), "abTest.key: %s", yamldoc.Reason(err))
	}
	ab.Key = k
	if f.Duration == "" {
		return ab, p.errorf(n.Line, "abTest.duration is missing: how long the test runs, such as 72h")
	}
	if ab.Duration, err = parseDuration(f.Duration, time.Second, MaxABTestDuration); err != nil {
		return ab, p.errorf(yamldoc.KeyLine(n, "duration"), "abTest.duration: %s", err)
	}
	ab.Split = 50
	if sn := valueOf(n, "split"); sn != nil && sn.Tag != "!!int" {
		return ab, p.errorf(sn.Line, "abTest.split %q must be a whole percent, such as 30", truncate(sn.Value, 40))
	}
	if f.Split != nil {
		if *f.Split < 1 || *f.Split > 99 {
			return ab, p.errorf(yamldoc.KeyLine(n, "split"), "abTest.split %d is the candidate's percent, from 1 to 99", *f.Split)
		}
		ab.Split = *f.Split
	}
	switch f.Winner {
	case "", string(WinnerManual):
		ab.Winner = WinnerManual
	case string(WinnerAnalysis):
		ab.Winner = WinnerAnalysis
	default:
		return ab, p.errorf(yamldoc.KeyLine(n, "winner"), "abTest.winner is %q; it is manual (a person promotes or aborts) or analysis (a Pass promotes)", truncate(f.Winner, 40))
	}
	return ab, nil
}
