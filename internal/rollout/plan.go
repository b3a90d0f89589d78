package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/domain"
)

// StepKind is what one step of a plan does.
type StepKind string

// Step kinds.
const (
	// StepTraffic sets the split (and mirror, and sticky key) and starts a
	// new analysis run; it is done once the controller has put it into
	// effect.
	StepTraffic StepKind = "traffic"
	// StepPause holds the traffic for a duration; a Fail still rolls back.
	StepPause StepKind = "pause"
	// StepAnalysis waits for a Pass of the current run.
	StepAnalysis StepKind = "analysis"
	// StepSmoke waits for the results of the smoke requests.
	StepSmoke StepKind = "smoke"
	// StepApproval waits for a person holding Role.
	StepApproval StepKind = "approval"
	// StepReport records the judge's per-arm figures of an A/B test.
	StepReport StepKind = "report"
	// StepPromote sends all traffic to the candidate and moves the
	// environment's aliases; the rollout is Promoting from there.
	StepPromote StepKind = "promote"
)

// PlanStep is one step of a plan.
type PlanStep struct {
	Kind StepKind
	// Traffic is the split a StepTraffic sets (weights of baseline and
	// candidate, mirror percent, sticky key).
	Traffic domain.RolloutTraffic
	// Duration is how long a StepPause holds.
	Duration time.Duration
	// MinSamples is the samples a StepAnalysis needs before a Pass
	// counts: the spec's, or the step's when it asks for more.
	MinSamples int
	// Role is who may decide a StepApproval.
	Role domain.Role
}

// String describes the step for people: "weight 5", "pause 30s".
func (s PlanStep) String() string {
	switch s.Kind {
	case StepTraffic:
		t := s.Traffic
		switch {
		case t.Sticky != nil:
			return fmt.Sprintf("split %d %% by %s", t.Candidate, t.Sticky)
		case t.ShadowPercent > 0:
			return "mirror " + strconv.FormatFloat(t.ShadowPercent, 'f', -1, 64) + " %"
		case t.Candidate == 0:
			return "start candidate at 0 %"
		}
		return "weight " + strconv.Itoa(t.Candidate)
	case StepPause:
		return "pause " + s.Duration.String()
	case StepAnalysis:
		return "analysis (" + strconv.Itoa(s.MinSamples) + " samples)"
	case StepApproval:
		return "approval by " + string(s.Role)
	}
	return string(s.Kind)
}

// Plan is what a spec expands to: the steps in order, and what applies
// to all of them. It is derived from the stored spec each time a rollout
// is loaded, so it is never stored itself; NewPlan is deterministic.
type Plan struct {
	Strategy         Strategy
	Steps            []PlanStep
	Analysis         *analysis.Spec
	Rollback         RollbackMode
	ProgressDeadline time.Duration
	// KeepPrevious is how long the baseline stays warm after the switch,
	// with undo possible.
	KeepPrevious time.Duration
	Smoke        []SmokeCase
}

// String is the steps joined by arrows.
func (p Plan) String() string {
	parts := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		parts[i] = s.String()
	}
	return strings.Join(parts, " → ")
}

// NewPlan expands a validated spec:
//
//   - every plan starts the candidate beside the baseline at 0 %, so it
//     is loaded and warm before it takes a request;
//   - canary: each item's weight, pause, analysis and approval in that
//     order; with an analysis block, an item that sets a weight below 100
//     ends with an analysis gate (the candidate must pass at a weight
//     before the weight goes up) even when it names none;
//   - shadow: mirror for the duration, an analysis gate, then the canary
//     items (the first weight ends the mirror);
//   - blueGreen: smoke requests, the pre-switch mirror with its gate;
//   - abTest: the sticky split for the duration, the per-arm report, then
//     an analysis gate (winner: analysis) or an approval (winner: manual);
//   - all end with promote: all traffic to the candidate, aliases moved.
func NewPlan(s Spec) Plan {
	p := Plan{Strategy: s.Strategy, Analysis: s.Analysis, Rollback: s.Rollback, ProgressDeadline: s.ProgressDeadline}
	minSamples := 0
	if s.Analysis != nil {
		minSamples = s.Analysis.MinSamples
	}
	add := func(st PlanStep) { p.Steps = append(p.Steps, st) }
	gate := func(n int) { add(PlanStep{Kind: StepAnalysis, MinSamples: max(n, minSamples)}) }
	traffic := func(t domain.RolloutTraffic) { add(PlanStep{Kind: StepTraffic, Traffic: t}) }
	traffic(split(0))
	mirror := func(m Mirror) {
		t := split(0)
		t.ShadowPercent = m.Percent
		traffic(t)
		add(PlanStep{Kind: StepPause, Duration: m.Duration})
		gate(0)
	}
	canary := func(steps []CanaryStep) {
		for _, c := range steps {
			if c.Weight > 0 {
				traffic(split(c.Weight))
			}
			if c.Pause > 0 {
				add(PlanStep{Kind: StepPause, Duration: c.Pause})
			}
			switch {
			case c.Analysis != nil:
				gate(c.Analysis.MinSamples)
			case s.Analysis != nil && c.Weight > 0 && c.Weight < 100:
				gate(0)
			}
			if c.Approval != nil {
				add(PlanStep{Kind: StepApproval, Role: c.Approval.Role})
			}
		}
	}
	switch s.Strategy {
	case Canary:
		canary(s.Canary.Steps)
	case Shadow:
		t := split(0)
		t.ShadowPercent = s.Shadow.Percent
		traffic(t)
		add(PlanStep{Kind: StepPause, Duration: s.Shadow.Duration})
		if s.Analysis != nil {
			gate(0)
		}
		canary(s.Shadow.Steps)
	case BlueGreen:
		b := s.BlueGreen
		p.KeepPrevious, p.Smoke = b.KeepPrevious, b.Smoke
		if len(b.Smoke) > 0 {
			add(PlanStep{Kind: StepSmoke})
		}
		if b.PreSwitch != nil {
			mirror(*b.PreSwitch)
		}
	case ABTest:
		ab := s.ABTest
		t := split(ab.Split)
		key := ab.Key
		t.Sticky = &key
		traffic(t)
		add(PlanStep{Kind: StepPause, Duration: ab.Duration})
		add(PlanStep{Kind: StepReport})
		if ab.Winner == WinnerAnalysis {
			gate(0)
		} else {
			add(PlanStep{Kind: StepApproval, Role: domain.RoleApprover})
		}
	}
	add(PlanStep{Kind: StepPromote, Traffic: promoted()})
	return p
}

// split is the candidate at w % of live traffic, the baseline at the rest.
func split(w int) domain.RolloutTraffic {
	return domain.RolloutTraffic{Baseline: 100 - w, Candidate: w}
}

// promoted is all traffic on the candidate, the baseline kept warm.
func promoted() domain.RolloutTraffic { return split(100) }

// restored is all traffic back on the baseline, the candidate kept at 0.
func restored() domain.RolloutTraffic { return split(0) }

// remainingApprovals lists the roles of the approval steps from step i on.
func (p Plan) remainingApprovals(i int) []domain.Role {
	var out []domain.Role
	for j := max(i, 0); j < len(p.Steps); j++ {
		if p.Steps[j].Kind == StepApproval {
			out = append(out, p.Steps[j].Role)
		}
	}
	return out
}
