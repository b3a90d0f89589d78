package domain

import (
	"fmt"
	"time"
)

// GatePolicy is what a version must pass to be promoted into one
// environment of one model: numeric rules over an evaluation on a named
// dataset, and the approvals people must give. Applying a policy again
// makes a new revision; promotions record the revision they were judged
// by.
type GatePolicy struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	// Dataset is the evaluation dataset, NAME or NAME@N (NAME alone: the
	// latest version when the promotion is judged).
	Dataset   string     `json:"dataset,omitempty"`
	Rules     []GateRule `json:"rules"`
	Approvals Approvals  `json:"approvals"`
	Revision  int        `json:"revision"`
	// Source is the YAML as applied, kept for people to read.
	Source    string    `json:"source,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// GateRule is one numeric rule: the metric's value must be at least Min,
// at most Max, and against the champion's value on the same dataset at
// least champion+MinVsChampion and at most champion+MaxVsChampion. Group
// names the column a fairness metric (tpr_gap, positive_rate_gap) is
// computed over.
type GateRule struct {
	Metric        string   `json:"metric"`
	Group         string   `json:"group,omitempty"`
	Min           *float64 `json:"min,omitempty"`
	Max           *float64 `json:"max,omitempty"`
	MinVsChampion *float64 `json:"min_vs_champion,omitempty"`
	MaxVsChampion *float64 `json:"max_vs_champion,omitempty"`
}

// NeedsChampion reports whether the rule compares with the champion.
func (r GateRule) NeedsChampion() bool { return r.MinVsChampion != nil || r.MaxVsChampion != nil }

// Approvals is how many distinct people holding Role must approve.
type Approvals struct {
	Required int  `json:"required"`
	Role     Role `json:"role,omitempty"`
}

// MaxApprovals bounds Approvals.Required.
const MaxApprovals = 10

// NeedsPolicy reports whether promoting into env needs a gate policy:
// every environment except dev does.
func NeedsPolicy(env string) bool { return env != "dev" }

// EnvironmentAliases are the aliases a completed promotion into env
// moves: the environment's own name, and champion for production.
func EnvironmentAliases(env string) []string {
	if env == "production" {
		return []string{"production", "champion"}
	}
	return []string{env}
}

// ProtectedAlias reports whether an alias is moved by promotions only
// (or directly by an admin): an environment's alias or champion.
func ProtectedAlias(name string, envs []string) bool {
	if name == "champion" {
		return true
	}
	for _, e := range envs {
		if name == e {
			return true
		}
	}
	return false
}

// EnvironmentState is the lifecycle state a version takes when promoted
// into env ("" for environments without one, such as dev).
func EnvironmentState(env string) State {
	switch env {
	case "staging":
		return StateStaging
	case "production":
		return StateProduction
	}
	return ""
}

// PromotionState is where a promotion is.
//
//	requested ─ gates fail ──────────────> rejected
//	          ─ gates pass, approvals ───> pending ─ N approvals ─> completed
//	          │                                    ─ a rejection ─> rejected
//	          │                                    ─ superseded ──> cancelled
//	          ─ gates pass, none needed ─────────────────────────> completed
type PromotionState string

// Promotion states.
const (
	PromotionPending   PromotionState = "pending"
	PromotionRejected  PromotionState = "rejected"
	PromotionCompleted PromotionState = "completed"
	PromotionCancelled PromotionState = "cancelled"
)

// ParsePromotionState checks a state given from outside.
func ParsePromotionState(s string) (PromotionState, error) {
	switch st := PromotionState(s); st {
	case PromotionPending, PromotionRejected, PromotionCompleted, PromotionCancelled:
		return st, nil
	}
	return "", fmt.Errorf("promotion state %q is not pending, rejected, completed or cancelled: %w", truncate(s, 40), ErrInvalid)
}

// Verdict is a rule's outcome.
type Verdict string

// Verdicts.
const (
	VerdictPass Verdict = "pass"
	VerdictFail Verdict = "fail"
	// VerdictSkipped: a champion comparison with no champion to compare
	// with (the first promotion into the environment).
	VerdictSkipped Verdict = "skipped"
)

// RuleResult is one rule judged: what was observed, against what.
type RuleResult struct {
	Metric    string   `json:"metric"`
	Group     string   `json:"group,omitempty"`
	Kind      string   `json:"kind"` // min, max, min_vs_champion, max_vs_champion
	Observed  *float64 `json:"observed,omitempty"`
	Champion  *float64 `json:"champion,omitempty"`
	Threshold float64  `json:"threshold"`
	Verdict   Verdict  `json:"verdict"`
	Reason    string   `json:"reason"`
}

// Decision is one person's approval or rejection.
type Decision struct {
	By      string    `json:"by"`
	Approve bool      `json:"approve"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// Promotion is a request to move a version into an environment, with the
// gate report it was judged by and the decisions people made.
type Promotion struct {
	ID          int64          `json:"id"`
	Model       string         `json:"model"`
	Version     int            `json:"version"`
	Environment string         `json:"environment"`
	State       PromotionState `json:"state"`
	RequestedBy string         `json:"requested_by"`
	// PolicyRevision is the gate policy judged (0: none, dev or break-glass).
	PolicyRevision int `json:"policy_revision,omitempty"`
	// Evaluation and ChampionEvaluation are the evaluations the rules read.
	Evaluation         int64        `json:"evaluation,omitempty"`
	ChampionEvaluation int64        `json:"champion_evaluation,omitempty"`
	Champion           int          `json:"champion,omitempty"`
	Results            []RuleResult `json:"results,omitempty"`
	Required           int          `json:"approvals_required"`
	Role               Role         `json:"approval_role,omitempty"`
	Decisions          []Decision   `json:"decisions,omitempty"`
	BreakGlass         bool         `json:"break_glass,omitempty"`
	// Reason says why it ended as it did (or the break-glass reason).
	Reason string `json:"reason,omitempty"`
	// Previous is the version the environment's alias pointed at when
	// the promotion completed (0: none).
	Previous    int        `json:"previous,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// Approvals counts the approving decisions.
func (p Promotion) Approvals() int {
	n := 0
	for _, d := range p.Decisions {
		if d.Approve {
			n++
		}
	}
	return n
}
