package rollout

import (
	"fmt"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/domain"
)

// State is what Step reads: the stored rollout and the plan its spec
// expands to.
type State struct {
	Rollout domain.Rollout
	Plan    Plan
}

// Load expands a stored rollout's spec into its plan.
func Load(r domain.Rollout) (State, error) {
	spec, err := ParseSpec(fmt.Sprintf("rollout %d", r.ID), []byte(r.Spec))
	if err != nil {
		return State{}, err
	}
	return State{Rollout: r, Plan: NewPlan(spec)}, nil
}

// NewRollout is a Pending rollout of spec from baseline (the version
// serving now) to candidate (the spec's ref, resolved), created by by at
// now. The store assigns its ID and revision.
func NewRollout(spec Spec, baseline, candidate int, by string, now time.Time) (domain.Rollout, error) {
	r := domain.Rollout{
		Model: spec.Model, Environment: spec.Environment, Strategy: string(spec.Strategy),
		Baseline: baseline, Candidate: candidate, CandidateRef: spec.Candidate.String(),
		Spec: spec.Source, Phase: domain.RolloutPending, Traffic: restored(),
		InEffect: true, CreatedBy: by, CreatedAt: now, UpdatedAt: now, StepStartedAt: now,
	}
	if spec.Candidate.Version != 0 && spec.Candidate.Version != candidate {
		return r, fmt.Errorf("the spec names version %d as candidate, not %d: %w", spec.Candidate.Version, candidate, domain.ErrInvalid)
	}
	return r, r.Validate()
}

// Observations are what the controller saw since the last Step: the
// judge's latest verdict, smoke results, commands people gave, and an
// error that stops it from carrying on. The zero value is "nothing new".
type Observations struct {
	Analysis *Verdict
	Smoke    *SmokeResult
	Commands []Command
	// Error is set when the controller cannot carry the rollout on (the
	// candidate cannot be served, its version is gone); the rollout fails
	// and the baseline is put back.
	Error string
}

// Verdict is the judge's latest verdict (analysis.Judge over the
// samples of one run) and the run it judged. A verdict for another run
// than the rollout's current one is stale and ignored; a Pass whose
// MinSamples is below what the current gate asks for counts as
// inconclusive.
type Verdict struct {
	Run int
	analysis.Verdict
}

// SmokeResult is how the smoke requests of one run went: one line per
// request that did not answer as expected; none means all passed.
type SmokeResult struct {
	Run      int
	Failures []string
}

// CommandKind is what a person asks of a rollout.
type CommandKind string

// Commands (slipway rollout pause|resume|promote|abort|undo|approve|reject;
// supersede comes from starting another rollout with --supersede).
const (
	CommandPause     CommandKind = "pause"
	CommandResume    CommandKind = "resume"
	CommandPromote   CommandKind = "promote"
	CommandAbort     CommandKind = "abort"
	CommandUndo      CommandKind = "undo"
	CommandApprove   CommandKind = "approve"
	CommandReject    CommandKind = "reject"
	CommandSupersede CommandKind = "supersede"
)

// Command is a person's request, as the API authenticated it: who, with
// which role, and why.
type Command struct {
	Kind   CommandKind
	By     string
	Role   domain.Role
	Reason string
}

// CommandResult is a command's outcome: Err is nil when it was applied,
// a *TransitionError (an ErrPrecondition) when the phase does not accept
// it, or another ErrPrecondition / ErrInvalid error.
type CommandResult struct {
	Command Command
	Err     error
}

// Decision is what Step decided. The controller stores Rollout first
// (when Changed, with compare-and-swap on its Revision, and Notifications
// in the same transaction), then carries out Apply, then stores the
// rollout again with InEffect set. Every action states an end state, so
// carrying it out twice does no harm.
type Decision struct {
	// Rollout is the state to store; Revision is still the one read, for
	// the store to compare and bump.
	Rollout domain.Rollout
	Changed bool
	// Apply is what to make true once Rollout is stored; nil when the
	// stored state is already in effect. It is Desired(Rollout).
	Apply *Actions
	// Judge is what the judge should watch now; nil: nothing.
	Judge *JudgeRequest
	// Smoke is the smoke requests to send now; nil: none.
	Smoke *SmokeRequest
	// WakeAt is when to call Step again even if nothing new is seen (a
	// pause ends, a deadline passes); zero: only when something is.
	WakeAt        time.Time
	Notifications []Notification
	Commands      []CommandResult
}

// Actions are the end state a rollout's phase implies, outside the
// rollout itself.
type Actions struct {
	// The deployment of Model in Environment serves Baseline and
	// Candidate as Traffic says (the baseline not at all once retired),
	// and falls back to Stable.
	Model       string
	Environment string
	Baseline    int
	Candidate   int
	Traffic     domain.RolloutTraffic
	Stable      int
	// Aliases, when set, should point at Aliases.To.
	Aliases *AliasMove
	// RetireCandidate: the rollout ended without the candidate (rolled
	// back, aborted, failed, superseded), so the deployment stops serving
	// it altogether rather than keeping it warm at 0 %.
	RetireCandidate bool
}

// AliasMove points the environment's aliases at To. From, when not 0,
// limits the move to aliases still pointing at From, so putting them
// back does not undo a later, unrelated change.
type AliasMove struct {
	Aliases []string
	From    int
	To      int
}

// JudgeMode is what the judge compares.
type JudgeMode string

// Judge modes.
const (
	// JudgeLive compares the candidate's live traffic with the baseline's.
	JudgeLive JudgeMode = "live"
	// JudgeShadow judges the candidate's mirrored answers: errors,
	// latency, disagreement with the baseline's answers to the same
	// requests.
	JudgeShadow JudgeMode = "shadow"
	// JudgeABTest compares the two arms of a sticky split and reports each
	// metric per arm with a confidence interval; the rules still fail a
	// broken candidate.
	JudgeABTest JudgeMode = "abTest"
)

// JudgeRequest tells the controller what to judge: analysis.Judge with
// Analysis, its MinSamples replaced by this MinSamples (the current
// gate's floor), over the two versions' samples of this Run only (the
// counters since RunStartedAt, analysis.Version.Since).
type JudgeRequest struct {
	Run          int
	RunStartedAt time.Time
	Mode         JudgeMode
	Baseline     int
	Candidate    int
	MinSamples   int
	Analysis     *analysis.Spec
}

// SmokeRequest asks the controller to send the smoke requests to the
// candidate, once per Run, and report a SmokeResult with that Run.
type SmokeRequest struct {
	Run       int
	Candidate int
	Cases     []SmokeCase
}

// Notification is an event for webhooks and the audit trail, such as
// rollout.started or rollout.rolled_back. ID is unique and stable for a
// stored revision, so an outbox can drop a duplicate.
type Notification struct {
	ID      string
	Type    string
	Rollout int64
	Event   Event
	From    Phase
	To      Phase
	Step    int
	By      string
	Reason  string
	Verdict *domain.RolloutVerdict
	At      time.Time
}

// Desired is the end state a stored rollout implies: what the controller
// makes true after storing it, and again after a restart for every
// rollout not InEffect.
func Desired(r domain.Rollout) Actions {
	a := Actions{
		Model: r.Model, Environment: r.Environment, Baseline: r.Baseline, Candidate: r.Candidate,
		Traffic: r.Traffic, Stable: r.Baseline,
	}
	aliases := domain.EnvironmentAliases(r.Environment)
	a.RetireCandidate = r.Phase.Terminal() && r.Phase != domain.RolloutSucceeded
	switch {
	case r.Phase == domain.RolloutPromoting || r.Phase == domain.RolloutSucceeded:
		a.Stable = r.Candidate
		a.Aliases = &AliasMove{Aliases: aliases, To: r.Candidate}
	case r.Phase.Terminal() && (r.AliasesMoved || r.Phase != domain.RolloutSuperseded):
		// A rollout that ended without the candidate puts the aliases
		// still pointing at it back on the baseline: the promotion that
		// let the candidate in moved them when it was approved, and a
		// rollback must leave the aliases naming what serves.
		a.Aliases = &AliasMove{Aliases: aliases, From: r.Candidate, To: r.Baseline}
	case r.AliasesMoved:
		// Paused after the switch (the controller missed its deadline):
		// the candidate serves and the aliases stay with it.
		a.Stable = r.Candidate
		a.Aliases = &AliasMove{Aliases: aliases, To: r.Candidate}
	}
	return a
}

// ErrNotPermitted is a command refused because of who gave it: a role
// that may not decide the step, or the rollout's own creator approving
// (separation of duties). It is an ErrPrecondition; the controller tells
// callers it is forbidden.
var ErrNotPermitted = fmt.Errorf("not permitted: %w", domain.ErrPrecondition)

// commandEvents is the event each command fires.
var commandEvents = []struct {
	Kind  CommandKind
	Event Event
}{
	{CommandPause, EventPause}, {CommandResume, EventResume}, {CommandPromote, EventPromote},
	{CommandAbort, EventAbort}, {CommandUndo, EventUndo},
	{CommandApprove, EventApprovalGranted}, {CommandReject, EventApprovalRejected},
}

// Commands lists the commands a person may give a rollout in phase p,
// for messages: the transition table's cells that commands fire.
func Commands(p Phase) []CommandKind {
	var out []CommandKind
	for _, c := range commandEvents {
		if _, err := Transition(p, c.Event); err == nil {
			out = append(out, c.Kind)
		}
	}
	return out
}
