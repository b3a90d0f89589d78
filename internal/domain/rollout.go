package domain

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Rollout is a persisted state machine moving one environment's traffic
// for one model from a baseline version to a candidate. It is
// write-ahead: the controller stores each new Rollout before it acts on
// it, and InEffect says whether it has acted since. The transitions
// between phases are the table in internal/rollout/fsm.go; this type is
// only what is stored.
type Rollout struct {
	ID          int64  `json:"id"`
	Model       string `json:"model"`
	Environment string `json:"environment"`
	// Strategy is the spec's strategy, for listings: canary, blueGreen,
	// shadow or abTest.
	Strategy string `json:"strategy"`
	// Baseline is the version that served when the rollout was created,
	// Candidate the one it moves traffic to; CandidateRef is how the spec
	// named it ("@challenger" or "3").
	Baseline     int    `json:"baseline"`
	Candidate    int    `json:"candidate"`
	CandidateRef string `json:"candidate_ref"`
	// Spec is the YAML as applied; the plan is expanded from it.
	Spec string `json:"spec"`
	// PromotionID is the completed promotion that let the candidate into
	// the environment (0: the environment has no gate policy). The
	// promotion moved the environment's aliases when it was approved; the
	// rollout moves traffic, and puts the aliases back if it fails.
	PromotionID int64 `json:"promotion_id,omitempty"`

	Phase RolloutPhase `json:"phase"`
	// Reason says why the rollout is in its phase, for a person: the
	// rule that failed, who paused it, the deadline that passed.
	Reason string `json:"reason,omitempty"`
	// Step is the index of the current step of the plan; StepStartedAt is
	// when it began (a resume restarts it).
	Step          int       `json:"step"`
	StepStartedAt time.Time `json:"step_started_at"`
	// Traffic is what the gateway should serve for the two versions.
	Traffic RolloutTraffic `json:"traffic"`
	// Run numbers the analysis runs: it grows each time the traffic the
	// judge sees changes, and a verdict counts only for the run it judged.
	Run          int       `json:"run"`
	RunStartedAt time.Time `json:"run_started_at"`
	// InEffect is false from the moment a new state is stored until the
	// controller has carried out everything it implies (routes, aliases,
	// the promotion record); a restart finds the rollouts it must redo.
	InEffect bool `json:"in_effect"`
	// AliasesMoved is set once the environment's aliases point at the
	// candidate, so a later undo or abort knows to move them back.
	AliasesMoved bool `json:"aliases_moved,omitempty"`

	Approvals []RolloutApproval   `json:"approvals,omitempty"`
	Verdicts  []RolloutVerdict    `json:"verdicts,omitempty"`
	History   []RolloutTransition `json:"history,omitempty"`

	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// PromotedAt is when the candidate took all traffic; EndedAt when the
	// rollout reached a terminal phase.
	PromotedAt *time.Time `json:"promoted_at,omitempty"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	// Revision counts stored changes from 1, for compare-and-swap writes.
	Revision int64 `json:"revision"`
}

// RolloutPhase is where a rollout is.
type RolloutPhase string

// Rollout phases. The last five are terminal.
const (
	RolloutPending          RolloutPhase = "pending"
	RolloutProgressing      RolloutPhase = "progressing"
	RolloutPaused           RolloutPhase = "paused"
	RolloutAwaitingApproval RolloutPhase = "awaiting_approval"
	RolloutPromoting        RolloutPhase = "promoting"
	RolloutSucceeded        RolloutPhase = "succeeded"
	RolloutAborted          RolloutPhase = "aborted"
	RolloutRolledBack       RolloutPhase = "rolled_back"
	RolloutFailed           RolloutPhase = "failed"
	// RolloutSuperseded: another rollout of the same model and
	// environment was started with --supersede and ended this one.
	RolloutSuperseded RolloutPhase = "superseded"
)

// RolloutPhases lists every phase, active ones first.
var RolloutPhases = []RolloutPhase{
	RolloutPending, RolloutProgressing, RolloutPaused, RolloutAwaitingApproval, RolloutPromoting,
	RolloutSucceeded, RolloutAborted, RolloutRolledBack, RolloutFailed, RolloutSuperseded,
}

// Terminal reports whether the phase is an end: nothing moves a rollout
// out of it.
func (p RolloutPhase) Terminal() bool {
	switch p {
	case RolloutSucceeded, RolloutAborted, RolloutRolledBack, RolloutFailed, RolloutSuperseded:
		return true
	}
	return false
}

// ParseRolloutPhase checks a phase given from outside.
func ParseRolloutPhase(s string) (RolloutPhase, error) {
	for _, p := range RolloutPhases {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(RolloutPhases))
	for i, p := range RolloutPhases {
		names[i] = string(p)
	}
	return "", fmt.Errorf("rollout phase %q is not one of %s: %w", truncate(s, 40), strings.Join(names, ", "), ErrInvalid)
}

// RolloutTraffic is the desired routing of a rollout's two versions:
// the split of live traffic (percentages summing to 100), the percent of
// requests mirrored to the candidate (shadow), the sticky key of an A/B
// split, and whether the baseline is still served at all.
type RolloutTraffic struct {
	Baseline      int        `json:"baseline"`
	Candidate     int        `json:"candidate"`
	ShadowPercent float64    `json:"shadow_percent,omitempty"`
	Sticky        *StickyKey `json:"sticky,omitempty"`
	// BaselineRetired: the baseline is no longer served (after a
	// promotion, once keepPrevious has passed).
	BaselineRetired bool `json:"baseline_retired,omitempty"`
}

// Validate checks the split.
func (t RolloutTraffic) Validate() error {
	if t.Baseline < 0 || t.Candidate < 0 || t.Baseline+t.Candidate != 100 {
		return fmt.Errorf("rollout weights %d/%d must be from 0 and sum to 100: %w", t.Baseline, t.Candidate, ErrInvalid)
	}
	if math.IsNaN(t.ShadowPercent) || t.ShadowPercent < 0 || t.ShadowPercent > 100 {
		return fmt.Errorf("shadow percent %v must be from 0 to 100: %w", t.ShadowPercent, ErrInvalid)
	}
	if t.ShadowPercent > 0 && t.Candidate != 0 {
		return fmt.Errorf("the candidate is mirrored at %v %% and takes %d %% of live traffic; a shadow takes none: %w", t.ShadowPercent, t.Candidate, ErrInvalid)
	}
	if t.BaselineRetired && t.Baseline != 0 {
		return fmt.Errorf("the baseline is retired but weighted %d %%: %w", t.Baseline, ErrInvalid)
	}
	if t.Sticky != nil {
		if err := t.Sticky.validate(); err != nil {
			return err
		}
	}
	return nil
}

// AnalysisOutcome is a judge's verdict on a candidate, as stored. "No
// data yet" is inconclusive, never pass.
type AnalysisOutcome string

// Analysis outcomes.
const (
	AnalysisPass         AnalysisOutcome = "pass"
	AnalysisFail         AnalysisOutcome = "fail"
	AnalysisInconclusive AnalysisOutcome = "inconclusive"
	AnalysisError        AnalysisOutcome = "error"
)

// ParseAnalysisOutcome checks an outcome given from outside.
func ParseAnalysisOutcome(s string) (AnalysisOutcome, error) {
	switch o := AnalysisOutcome(s); o {
	case AnalysisPass, AnalysisFail, AnalysisInconclusive, AnalysisError:
		return o, nil
	}
	return "", fmt.Errorf("analysis outcome %q is not pass, fail, inconclusive or error: %w", truncate(s, 40), ErrInvalid)
}

// RolloutVerdict is a verdict that moved a rollout (or, for an A/B test,
// its report), with the numbers the judge saw.
type RolloutVerdict struct {
	Step    int             `json:"step"`
	Run     int             `json:"run"`
	Outcome AnalysisOutcome `json:"outcome"`
	Reason  string          `json:"reason,omitempty"`
	// CandidateRequests and BaselineRequests are the traffic the verdict
	// rests on.
	CandidateRequests uint64            `json:"candidate_requests,omitempty"`
	BaselineRequests  uint64            `json:"baseline_requests,omitempty"`
	Evidence          []RolloutEvidence `json:"evidence,omitempty"`
	At                time.Time         `json:"at"`
}

// RolloutEvidence is one check as the judge saw it: the value judged
// against its threshold, the two versions' own values, the samples
// behind them, and bounds on the value that hold however often it was
// looked at (for an A/B report, its confidence interval).
type RolloutEvidence struct {
	// Rule names the check: "error_rate max", "prometheus max", "smoke".
	Rule             string          `json:"rule"`
	Method           string          `json:"method,omitempty"`
	Outcome          AnalysisOutcome `json:"outcome"`
	Observed         *float64        `json:"observed,omitempty"`
	Threshold        *float64        `json:"threshold,omitempty"`
	Candidate        *float64        `json:"candidate,omitempty"`
	Baseline         *float64        `json:"baseline,omitempty"`
	CandidateSamples uint64          `json:"candidate_samples,omitempty"`
	BaselineSamples  uint64          `json:"baseline_samples,omitempty"`
	Lower            *float64        `json:"lower,omitempty"`
	Upper            *float64        `json:"upper,omitempty"`
	Detail           string          `json:"detail,omitempty"`
}

// RolloutApproval is a person's decision at an approval step.
type RolloutApproval struct {
	Step    int       `json:"step"`
	By      string    `json:"by"`
	Role    Role      `json:"role"`
	Approve bool      `json:"approve"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// RolloutTransition is one move of the state machine: the event, from
// where to where, at which step, who caused it (empty: slipway), and why.
type RolloutTransition struct {
	From   RolloutPhase `json:"from"`
	To     RolloutPhase `json:"to"`
	Event  string       `json:"event"`
	Step   int          `json:"step"`
	By     string       `json:"by,omitempty"`
	Reason string       `json:"reason,omitempty"`
	At     time.Time    `json:"at"`
}

// MaxRolloutHistory bounds the transitions a rollout keeps; older ones
// are dropped (the audit log keeps every one).
const MaxRolloutHistory = 500

// Validate checks a rollout as created or stored: names, two distinct
// versions, a known phase, a valid split, a step inside the plan's range.
func (r Rollout) Validate() error {
	if err := ValidateName("model", r.Model); err != nil {
		return err
	}
	if err := ValidateName("environment", r.Environment); err != nil {
		return err
	}
	if r.Baseline < 1 || r.Candidate < 1 {
		return fmt.Errorf("rollout of %q in %s: baseline %d and candidate %d must be version numbers: %w", r.Model, r.Environment, r.Baseline, r.Candidate, ErrInvalid)
	}
	if r.Baseline == r.Candidate {
		return fmt.Errorf("rollout of %q in %s: version %d already serves; the candidate must be another version: %w", r.Model, r.Environment, r.Candidate, ErrInvalid)
	}
	if _, err := ParseRolloutPhase(string(r.Phase)); err != nil {
		return err
	}
	if r.Step < 0 || r.Run < 0 {
		return fmt.Errorf("rollout step %d and run %d must be from 0: %w", r.Step, r.Run, ErrInvalid)
	}
	return r.Traffic.Validate()
}

// Active reports whether the rollout still holds its model and
// environment: at most one active rollout per pair.
func (r Rollout) Active() bool { return !r.Phase.Terminal() }
