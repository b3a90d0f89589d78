package rollout

import (
	"fmt"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Phase is where a rollout is; the phases are stored, so they live in
// domain.
type Phase = domain.RolloutPhase

// Event is what moves a rollout from one phase to another: something
// slipway saw (a verdict, a deadline, the end of a step) or a command a
// person gave.
type Event string

// Events. The comment says who fires each.
const (
	EventStart        Event = "start"         // slipway: the controller picked up a pending rollout
	EventStepDone     Event = "step-done"     // slipway: a traffic step or pause finished
	EventAnalysisPass Event = "analysis-pass" // the judge: an analysis gate passed
	EventAnalysisFail Event = "analysis-fail" // the judge: the candidate failed (rollback: automatic)
	// EventAnalysisInconclusive: an analysis gate had no Pass within
	// progressDeadline.
	EventAnalysisInconclusive Event = "analysis-inconclusive-past-deadline"
	EventSmokePass            Event = "smoke-pass"         // the controller: every smoke request answered as expected
	EventSmokeFail            Event = "smoke-fail"         // the controller: a smoke request did not (rollback: automatic)
	EventAwaitApproval        Event = "await-approval"     // slipway: the plan reached an approval step
	EventApprovalGranted      Event = "approval-granted"   // a person with the step's role approved
	EventApprovalRejected     Event = "approval-rejected"  // a person with the step's role rejected
	EventPause                Event = "pause"              // a person, or a Fail under rollback: manual
	EventResume               Event = "resume"             // a person
	EventPromote              Event = "promote"            // a person: skip the remaining steps to 100 %
	EventStepsComplete        Event = "steps-complete"     // slipway: the plan reached its promote step
	EventPromotionComplete    Event = "promotion-complete" // slipway: in effect, and keepPrevious passed
	EventAbort                Event = "abort"              // a person: put the baseline back
	EventUndo                 Event = "undo"               // a person: put the baseline back after the switch
	EventSupersede            Event = "supersede"          // a newer rollout of the same model and environment
	EventDeadlineExceeded     Event = "deadline-exceeded"  // slipway: a smoke result or the controller did not come in time
	EventError                Event = "error"              // the controller cannot carry the rollout on
)

// Events lists every event, in the order errors list them.
var Events = []Event{
	EventStart, EventStepDone, EventAnalysisPass, EventAnalysisFail, EventAnalysisInconclusive,
	EventSmokePass, EventSmokeFail, EventAwaitApproval, EventApprovalGranted, EventApprovalRejected,
	EventPause, EventResume, EventPromote, EventStepsComplete, EventPromotionComplete,
	EventAbort, EventUndo, EventSupersede, EventDeadlineExceeded, EventError,
}

const (
	pending     = domain.RolloutPending
	progressing = domain.RolloutProgressing
	paused      = domain.RolloutPaused
	awaiting    = domain.RolloutAwaitingApproval
	promoting   = domain.RolloutPromoting
	succeeded   = domain.RolloutSucceeded
	aborted     = domain.RolloutAborted
	rolledBack  = domain.RolloutRolledBack
	failed      = domain.RolloutFailed
	superseded  = domain.RolloutSuperseded
)

// transitions is the whole state machine: from each phase, the events it
// accepts and where each leads. A cell that is not here is refused.
// Terminal phases accept nothing. Undo is accepted only while Promoting:
// that phase lasts until keepPrevious has passed, with the baseline kept
// warm, so undo never needs an exception for a terminal phase; before
// the switch, abort is how a person puts the baseline back.
var transitions = map[Phase]map[Event]Phase{
	pending: {
		EventStart:     progressing,
		EventAbort:     aborted,
		EventSupersede: superseded,
		EventError:     failed,
	},
	progressing: {
		EventStepDone:             progressing,
		EventAnalysisPass:         progressing,
		EventAnalysisFail:         rolledBack,
		EventAnalysisInconclusive: paused,
		EventSmokePass:            progressing,
		EventSmokeFail:            rolledBack,
		EventAwaitApproval:        awaiting,
		EventPause:                paused,
		EventPromote:              promoting,
		EventStepsComplete:        promoting,
		EventAbort:                aborted,
		EventSupersede:            superseded,
		EventDeadlineExceeded:     paused,
		EventError:                failed,
	},
	paused: {
		EventAnalysisFail: rolledBack,
		EventResume:       progressing,
		EventPromote:      promoting,
		EventAbort:        aborted,
		EventSupersede:    superseded,
		EventError:        failed,
	},
	awaiting: {
		EventApprovalGranted:  progressing,
		EventApprovalRejected: aborted,
		EventAnalysisFail:     rolledBack,
		EventPause:            paused,
		EventPromote:          promoting,
		EventAbort:            aborted,
		EventSupersede:        superseded,
		EventError:            failed,
	},
	promoting: {
		EventPromotionComplete: succeeded,
		EventUndo:              rolledBack,
		EventDeadlineExceeded:  paused,
		EventError:             failed,
	},
	succeeded:  {},
	aborted:    {},
	rolledBack: {},
	failed:     {},
	superseded: {},
}

// ErrInvalidTransition is an event the current phase does not accept. It
// is an ErrPrecondition: the command is well formed, the state forbids it.
var ErrInvalidTransition = fmt.Errorf("invalid rollout transition: %w", domain.ErrPrecondition)

// TransitionError names the phase, the event refused and the events the
// phase accepts. It is an ErrInvalidTransition.
type TransitionError struct {
	Phase Phase
	Event Event
	Legal []Event
}

func (e *TransitionError) Error() string {
	if len(e.Legal) == 0 {
		return fmt.Sprintf("rollout is %s, which is final: %s is not possible", e.Phase, e.Event)
	}
	legal := make([]string, len(e.Legal))
	for i, l := range e.Legal {
		legal[i] = string(l)
	}
	return fmt.Sprintf("rollout is %s: %s is not possible there; possible: %s", e.Phase, e.Event, strings.Join(legal, ", "))
}

// Unwrap makes a TransitionError an ErrInvalidTransition.
func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }

// Transition is where event e leads from phase p, or a *TransitionError.
func Transition(p Phase, e Event) (Phase, error) {
	row, ok := transitions[p]
	if !ok {
		return "", fmt.Errorf("rollout phase %q is unknown: %w", p, domain.ErrInvalid)
	}
	if next, ok := row[e]; ok {
		return next, nil
	}
	return "", &TransitionError{Phase: p, Event: e, Legal: Legal(p)}
}

// Legal lists the events phase p accepts, in the order of Events.
func Legal(p Phase) []Event {
	var out []Event
	for _, e := range Events {
		if _, ok := transitions[p][e]; ok {
			out = append(out, e)
		}
	}
	return out
}
