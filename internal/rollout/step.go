package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Step decides what a rollout does next, from the time, its stored state
// and what the controller observed. It is pure: the same arguments give
// the same Decision, and the input is not modified.
//
// In one call it applies the commands in order, fails the rollout on a
// controller error, rolls back (or, under rollback: manual, pauses) on a
// Fail of the current analysis run, and then moves through as many steps
// as it can: it stops at a step that waits (for time, a verdict, smoke
// results, a person) and after a step whose traffic the controller has
// not yet put into effect.
func Step(now time.Time, st State, obs Observations) Decision {
	m := &machine{now: now, plan: st.Plan, r: clone(st.Rollout), obs: obs, rev: st.Rollout.Revision}
	for _, c := range obs.Commands {
		m.results = append(m.results, CommandResult{Command: c, Err: m.command(c)})
	}
	if obs.Error != "" && !m.r.Phase.Terminal() {
		m.fire(EventError, "", "the controller cannot go on: "+obs.Error)
	}
	for range 2*len(m.plan.Steps) + 8 {
		if !m.progress() {
			break
		}
	}
	return m.decision()
}

// machine is one Step call's working state.
type machine struct {
	now     time.Time
	plan    Plan
	r       domain.Rollout
	obs     Observations
	rev     int64
	changed bool
	wake    time.Time
	notes   []Notification
	results []CommandResult
	// recorded is the verdict recorded since the last transition, which
	// the next notification carries.
	recorded *domain.RolloutVerdict
}

// fire moves the rollout by event e, recording who and why, and sets the
// traffic the new phase implies.
func (m *machine) fire(e Event, by, reason string) error {
	from := m.r.Phase
	to, err := Transition(from, e)
	if err != nil {
		return err
	}
	r := &m.r
	r.Phase, r.Reason = to, reason
	r.History = append(r.History, domain.RolloutTransition{From: from, To: to, Event: string(e), Step: r.Step, By: by, Reason: reason, At: m.now})
	if n := len(r.History) - domain.MaxRolloutHistory; n > 0 {
		r.History = slices.Delete(r.History, 0, n)
	}
	switch to {
	case promoting:
		m.setTraffic(promoted())
		r.AliasesMoved = true
		at := m.now
		r.PromotedAt = &at
		r.StepStartedAt = m.now
		// After the switch the candidate is judged on its own traffic
		// while the baseline is kept warm (keepPrevious).
		m.newRun()
	case succeeded:
		t := promoted()
		t.BaselineRetired = true
		m.setTraffic(t)
	case rolledBack, aborted, failed, superseded:
		m.setTraffic(restored())
	}
	if to.Terminal() {
		at := m.now
		r.EndedAt = &at
	}
	m.changed = true
	v := m.recorded
	m.recorded = nil
	m.notes = append(m.notes, Notification{
		ID: fmt.Sprintf("rollout/%d/%d/%d", r.ID, m.rev, len(m.notes)), Type: notificationType(e, to),
		Rollout: r.ID, Event: e, From: from, To: to, Step: r.Step, By: by, Reason: reason, Verdict: v, At: m.now,
	})
	return nil
}

// notificationType is the CloudEvents type of a transition.
func notificationType(e Event, to Phase) string {
	switch {
	case e == EventStart:
		return "rollout.started"
	case e == EventResume:
		return "rollout.resumed"
	case to == progressing:
		return "rollout.step"
	}
	return "rollout." + string(to)
}

// setTraffic changes what the gateway should serve; the controller must
// carry it out before the rollout moves on.
func (m *machine) setTraffic(t domain.RolloutTraffic) {
	m.r.Traffic = t
	m.r.InEffect = false
	m.changed = true
}

// newRun starts a new analysis run: verdicts of earlier runs no longer
// count.
func (m *machine) newRun() {
	m.r.Run++
	m.r.RunStartedAt = m.now
	m.changed = true
}

// advance ends the current step with event e (caused by by, empty for
// slipway) and starts the next one.
func (m *machine) advance(e Event, by, reason string) {
	if m.fire(e, by, reason) != nil {
		return
	}
	m.r.Step++
	m.r.StepStartedAt = m.now
	if m.r.Step < len(m.plan.Steps) && m.plan.Steps[m.r.Step].Kind == StepSmoke {
		m.newRun()
	}
}

func (m *machine) wakeAt(t time.Time) {
	if m.wake.IsZero() || t.Before(m.wake) {
		m.wake = t
	}
}

// verdict is the judge's verdict for the current run, if any and if
// this rollout is judged at all.
func (m *machine) verdict() *Verdict {
	v := m.obs.Analysis
	if v == nil || m.plan.Analysis == nil || v.Run != m.r.Run || !judged(m.r.Traffic) {
		return nil
	}
	return v
}

// record keeps a verdict that moves the rollout, with its evidence.
func (m *machine) record(v Verdict, outcome domain.AnalysisOutcome, reason string, extra ...domain.RolloutEvidence) {
	rec := domain.RolloutVerdict{
		Step: m.r.Step, Run: v.Run, Outcome: outcome, Reason: reason,
		CandidateRequests: v.Candidate.Requests, BaselineRequests: v.Baseline.Requests,
		Evidence: append(evidence(v.Verdict), extra...), At: m.now,
	}
	m.r.Verdicts = append(m.r.Verdicts, rec)
	m.recorded = &rec
	m.changed = true
}

// progress takes one step of automatic progress; false when there is
// nothing more to do in this call.
func (m *machine) progress() bool {
	r := &m.r
	switch r.Phase {
	case pending:
		r.Step, r.StepStartedAt = 0, m.now
		return m.fire(EventStart, "", "started") == nil
	case progressing, paused, awaiting:
		if m.failed() {
			return true
		}
	}
	switch r.Phase {
	case progressing:
		return m.progressing()
	case promoting:
		return m.promoting()
	}
	return false
}

// failed handles a Fail of the current run: roll back (automatic), or
// pause with the reason (manual, unless already paused).
func (m *machine) failed() bool {
	v := m.verdict()
	if v == nil || v.Outcome != analysis.Fail {
		return false
	}
	reason := "analysis failed: " + v.Reason
	if m.plan.Rollback == RollbackAutomatic {
		m.record(*v, domain.AnalysisFail, reason)
		return m.fire(EventAnalysisFail, "", reason) == nil
	}
	if m.r.Phase == paused {
		return false
	}
	m.record(*v, domain.AnalysisFail, reason)
	return m.fire(EventPause, "", reason+" (rollback: manual; abort puts the baseline back, promote goes on)") == nil
}

// deadline pauses the rollout with why once the current step has waited
// progressDeadline; before that it asks to be woken then.
func (m *machine) deadline(e Event, why string) bool {
	end := m.r.StepStartedAt.Add(m.plan.ProgressDeadline)
	if m.now.Before(end) {
		m.wakeAt(end)
		return false
	}
	return m.fire(e, "", fmt.Sprintf("%s for %s (progressDeadline)", why, m.plan.ProgressDeadline)) == nil
}

func (m *machine) progressing() bool {
	r := &m.r
	if r.Step < 0 || r.Step >= len(m.plan.Steps) {
		return m.fire(EventError, "", fmt.Sprintf("step %d is outside the plan's %d steps", r.Step, len(m.plan.Steps))) == nil
	}
	s := m.plan.Steps[r.Step]
	if !r.InEffect {
		return m.deadline(EventDeadlineExceeded, fmt.Sprintf("the controller has not put traffic %d/%d (baseline/candidate) into effect", r.Traffic.Baseline, r.Traffic.Candidate))
	}
	switch s.Kind {
	case StepTraffic:
		m.setTraffic(s.Traffic)
		m.newRun()
		m.advance(EventStepDone, "", s.String())
		return true
	case StepPause:
		end := r.StepStartedAt.Add(s.Duration)
		if m.now.Before(end) {
			m.wakeAt(end)
			return false
		}
		m.advance(EventStepDone, "", s.String())
		return true
	case StepAnalysis:
		v := m.verdict()
		if v != nil && v.Outcome == analysis.Pass && v.MinSamples >= uint64(s.MinSamples) {
			m.record(*v, domain.AnalysisPass, "analysis passed: "+v.Reason)
			m.advance(EventAnalysisPass, "", "analysis passed: "+v.Reason)
			return true
		}
		why := "no verdict from the judge"
		if v != nil {
			why = fmt.Sprintf("the judge's verdict is %s (%s)", v.Outcome, v.Reason)
			if v.Outcome == analysis.Pass {
				why = fmt.Sprintf("the judge passed with a floor of %d samples, the gate needs %d", v.MinSamples, s.MinSamples)
			}
		}
		if !m.now.Before(r.StepStartedAt.Add(m.plan.ProgressDeadline)) {
			rec := Verdict{Run: r.Run}
			if v != nil {
				rec = *v
			}
			m.record(rec, domain.AnalysisInconclusive, why)
		}
		return m.deadline(EventAnalysisInconclusive, "no Pass: "+why)
	case StepSmoke:
		sm := m.obs.Smoke
		if sm == nil || sm.Run != r.Run {
			return m.deadline(EventDeadlineExceeded, "no smoke results")
		}
		if len(sm.Failures) == 0 {
			m.record(Verdict{Run: r.Run}, domain.AnalysisPass, fmt.Sprintf("%s answered as expected", count(len(m.plan.Smoke), "smoke request")))
			m.advance(EventSmokePass, "", "smoke requests passed")
			return true
		}
		reason := fmt.Sprintf("%d of %s failed: %s", len(sm.Failures), count(len(m.plan.Smoke), "smoke request"), strings.Join(sm.Failures, "; "))
		var ev []domain.RolloutEvidence
		for _, f := range sm.Failures {
			ev = append(ev, domain.RolloutEvidence{Rule: "smoke", Outcome: domain.AnalysisFail, Detail: f})
		}
		m.record(Verdict{Run: r.Run}, domain.AnalysisFail, reason, ev...)
		if m.plan.Rollback == RollbackAutomatic {
			return m.fire(EventSmokeFail, "", reason) == nil
		}
		return m.fire(EventPause, "", reason+" (rollback: manual; abort puts the baseline back, resume runs them again)") == nil
	case StepApproval:
		return m.fire(EventAwaitApproval, "", "waiting for approval by "+string(s.Role)) == nil
	case StepReport:
		v := m.verdict()
		if v == nil {
			return m.deadline(EventDeadlineExceeded, "no A/B report from the judge")
		}
		m.record(*v, outcome(v.Outcome), "A/B report: "+v.Reason)
		m.advance(EventStepDone, "", "A/B report recorded")
		return true
	case StepPromote:
		return m.fire(EventStepsComplete, "", "all steps done") == nil
	}
	return m.fire(EventError, "", fmt.Sprintf("step %d has unknown kind %q", r.Step+1, s.Kind)) == nil
}

// promoting waits for the switch to be in effect, then for keepPrevious,
// then retires the baseline. While the baseline is kept warm the
// candidate is still judged: under rollback: automatic a Fail undoes the
// switch at once (Argo's post-promotion analysis).
func (m *machine) promoting() bool {
	r := &m.r
	if !r.InEffect {
		return m.deadline(EventDeadlineExceeded, "the controller has not put the promotion into effect")
	}
	if v := m.verdict(); v != nil && v.Outcome == analysis.Fail && m.plan.Rollback == RollbackAutomatic {
		reason := "analysis failed after the switch: " + v.Reason
		m.record(*v, domain.AnalysisFail, reason)
		return m.fire(EventUndo, "", reason) == nil
	}
	start := r.StepStartedAt
	if r.PromotedAt != nil {
		start = *r.PromotedAt
	}
	end := start.Add(m.plan.KeepPrevious)
	if m.now.Before(end) {
		m.wakeAt(end)
		return false
	}
	return m.fire(EventPromotionComplete, "", "promoted; the baseline is retired") == nil
}

// command applies a person's command, or says why not.
func (m *machine) command(c Command) error {
	r := &m.r
	who := c.By
	if who == "" {
		who = "someone"
	}
	why := func(did string) string {
		if c.Reason != "" {
			return did + " by " + who + ": " + c.Reason
		}
		return did + " by " + who
	}
	switch c.Kind {
	case CommandPause:
		return m.fire(EventPause, c.By, why("paused"))
	case CommandResume:
		if err := m.fire(EventResume, c.By, why("resumed")); err != nil {
			return err
		}
		r.StepStartedAt = m.now
		m.newRun()
		return nil
	case CommandPromote:
		if _, err := Transition(r.Phase, EventPromote); err != nil {
			return err
		}
		skipped := m.plan.remainingApprovals(r.Step)
		for _, need := range skipped {
			if !c.Role.Allows(need) {
				return fmt.Errorf("the plan still has an approval by %s ahead; promoting skips it, so it needs a token that may approve as %s (%s holds %s): %w", need, need, who, roleName(c.Role), ErrNotPermitted)
			}
		}
		if len(skipped) > 0 && c.By != "" && c.By == r.CreatedBy {
			return fmt.Errorf("%s started this rollout and may not skip its approval by %s by promoting; separation of duties needs someone else: %w", c.By, skipped[0], ErrNotPermitted)
		}
		did := "promoted"
		if len(skipped) > 0 {
			roles := make([]string, len(skipped))
			for i, s := range skipped {
				roles[i] = string(s)
			}
			did = "promoted, skipping the approval by " + strings.Join(roles, " and the approval by ")
		}
		return m.fire(EventPromote, c.By, why(did))
	case CommandAbort:
		return m.fire(EventAbort, c.By, why("aborted"))
	case CommandUndo:
		return m.fire(EventUndo, c.By, why("undone"))
	case CommandSupersede:
		return m.fire(EventSupersede, c.By, why("superseded"))
	case CommandApprove, CommandReject:
		e := EventApprovalGranted
		if c.Kind == CommandReject {
			e = EventApprovalRejected
		}
		if _, err := Transition(r.Phase, e); err != nil {
			return err
		}
		if r.Step < 0 || r.Step >= len(m.plan.Steps) || m.plan.Steps[r.Step].Kind != StepApproval {
			return fmt.Errorf("step %d is not an approval: %w", r.Step+1, domain.ErrPrecondition)
		}
		s := m.plan.Steps[r.Step]
		if !c.Role.Allows(s.Role) {
			return fmt.Errorf("step %d needs an approval by %s; %s holds %s: %w", r.Step+1, s.Role, who, roleName(c.Role), ErrNotPermitted)
		}
		if e == EventApprovalGranted && c.By != "" && c.By == r.CreatedBy {
			return fmt.Errorf("%s started this rollout and may not approve its steps; separation of duties needs someone else: %w", c.By, ErrNotPermitted)
		}
		r.Approvals = append(r.Approvals, domain.RolloutApproval{Step: r.Step, By: c.By, Role: c.Role, Approve: e == EventApprovalGranted, Comment: c.Reason, At: m.now})
		if e == EventApprovalRejected {
			return m.fire(e, c.By, why("rejected"))
		}
		m.advance(e, c.By, why("approved"))
		return nil
	}
	return fmt.Errorf("rollout command %q is not one of pause, resume, promote, abort, undo, approve, reject, supersede: %w", truncate(string(c.Kind), 40), domain.ErrInvalid)
}

// count is "1 smoke request", "3 smoke requests".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func roleName(r domain.Role) string {
	if r == "" {
		return "no role"
	}
	return "role " + string(r)
}

// judged reports whether the traffic gives the judge anything to see.
func judged(t domain.RolloutTraffic) bool { return t.Candidate > 0 || t.ShadowPercent > 0 }

// decision assembles what the controller needs.
func (m *machine) decision() Decision {
	r := m.r
	if m.changed {
		r.UpdatedAt = m.now
	}
	d := Decision{Rollout: r, Changed: m.changed, WakeAt: m.wake, Notifications: m.notes, Commands: m.results}
	if !r.InEffect {
		a := Desired(r)
		d.Apply = &a
	}
	active := r.Phase == progressing || r.Phase == paused || r.Phase == awaiting ||
		r.Phase == promoting && m.plan.KeepPrevious > 0
	if active && m.plan.Analysis != nil && judged(r.Traffic) {
		j := &JudgeRequest{Run: r.Run, RunStartedAt: r.RunStartedAt, Mode: JudgeLive, Baseline: r.Baseline, Candidate: r.Candidate,
			MinSamples: m.plan.Analysis.MinSamples, Analysis: m.plan.Analysis}
		switch {
		case r.Traffic.ShadowPercent > 0:
			j.Mode = JudgeShadow
		case r.Traffic.Sticky != nil:
			j.Mode = JudgeABTest
		}
		if r.Step < len(m.plan.Steps) && m.plan.Steps[r.Step].Kind == StepAnalysis {
			j.MinSamples = m.plan.Steps[r.Step].MinSamples
		}
		d.Judge = j
	}
	if r.Phase == progressing && r.InEffect && r.Step < len(m.plan.Steps) && m.plan.Steps[r.Step].Kind == StepSmoke {
		d.Smoke = &SmokeRequest{Run: r.Run, Candidate: r.Candidate, Cases: m.plan.Smoke}
	}
	return d
}

// clone copies a rollout so Step never writes into its caller's slices.
func clone(r domain.Rollout) domain.Rollout {
	r.Approvals = slices.Clone(r.Approvals)
	r.Verdicts = slices.Clone(r.Verdicts)
	r.History = slices.Clone(r.History)
	if r.Traffic.Sticky != nil {
		k := *r.Traffic.Sticky
		r.Traffic.Sticky = &k
	}
	return r
}

// outcome is the judge's outcome as stored.
func outcome(o analysis.Outcome) domain.AnalysisOutcome {
	switch o {
	case analysis.Pass:
		return domain.AnalysisPass
	case analysis.Fail:
		return domain.AnalysisFail
	case analysis.Inconclusive:
		return domain.AnalysisInconclusive
	}
	return domain.AnalysisError
}

// evidence is the judge's checks as stored.
func evidence(v analysis.Verdict) []domain.RolloutEvidence {
	var out []domain.RolloutEvidence
	for _, c := range v.Checks {
		out = append(out, domain.RolloutEvidence{
			Rule: strings.TrimSpace(c.Metric + " " + c.Kind), Method: string(c.Method), Outcome: outcome(c.Outcome),
			Observed: val(c.Observed), Threshold: val(c.Threshold), Candidate: dup(c.Candidate), Baseline: dup(c.Baseline),
			CandidateSamples: c.CandidateSamples, BaselineSamples: c.BaselineSamples,
			Lower: dup(c.Lower), Upper: dup(c.Upper), Detail: c.Reason,
		})
	}
	return out
}

// val is a pointer to a copy of x.
func val(x float64) *float64 { return &x }

// dup copies what p points at, so a stored verdict shares nothing with
// the judge's.
func dup(p *float64) *float64 {
	if p == nil {
		return nil
	}
	return val(*p)
}
