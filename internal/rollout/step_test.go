package rollout

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/domain"
)

func loadSpec(t *testing.T, name string) Spec {
	t.Helper()
	data, err := os.ReadFile("testdata/specs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSpec(name, data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drive calls Step until the rollout waits, marking every decision in
// effect as the controller would.
func drive(t *testing.T, st State, now time.Time, obs Observations) (State, Decision) {
	t.Helper()
	var d Decision
	for range 20 {
		d = Step(now, st, obs)
		checkInvariants(t, "drive", st, obs, now, d)
		st.Rollout = d.Rollout
		if d.Rollout.InEffect {
			return st, d
		}
		st.Rollout.InEffect = true
	}
	t.Fatal("the rollout never settled")
	return st, d
}

// TestFailRecordsEvidence: the Fail that rolls back is stored with the
// judge's numbers, the notification carries it, and nothing is shared
// with the judge's verdict.
func TestFailRecordsEvidence(t *testing.T) {
	s := loadSpec(t, "canary.yaml")
	r, err := NewRollout(s, 1, 2, "carol", t0)
	if err != nil {
		t.Fatal(err)
	}
	r.ID = 11
	st := State{Rollout: r, Plan: NewPlan(s)}
	st, _ = drive(t, st, t0, Observations{})
	if st.Rollout.Traffic.Candidate != 5 {
		t.Fatalf("not at 5 %%: %+v", st.Rollout.Traffic)
	}
	lo, hi, cand, base := 0.18, 0.41, 0.3, 0.01
	v := &Verdict{Run: st.Rollout.Run, Verdict: analysis.Verdict{
		Outcome: analysis.Fail, Reason: "error_rate 30 % above 2 %", MinSamples: 200,
		Candidate: analysis.VersionTotal{Requests: 23, Errors: 7}, Baseline: analysis.VersionTotal{Requests: 440, Errors: 4},
		Checks: []analysis.Check{{Rule: 0, Metric: "error_rate", Kind: "max", Method: analysis.RateSequence, Outcome: analysis.Fail,
			Observed: 0.3, Threshold: 0.02, Candidate: &cand, Baseline: &base, CandidateSamples: 23, BaselineSamples: 440, Lower: &lo, Upper: &hi, Reason: "above"}},
	}}
	now := t0.Add(3 * time.Second)
	d := Step(now, st, Observations{Analysis: v})
	if d.Rollout.Phase != domain.RolloutRolledBack || d.Apply == nil || d.Apply.Traffic.Candidate != 0 || d.Apply.Traffic.Baseline != 100 {
		t.Fatalf("not rolled back at once: %s %+v", d.Rollout.Phase, d.Apply)
	}
	if len(d.Rollout.Verdicts) != 1 {
		t.Fatalf("verdicts %+v", d.Rollout.Verdicts)
	}
	got := d.Rollout.Verdicts[0]
	if got.Outcome != domain.AnalysisFail || got.CandidateRequests != 23 || got.BaselineRequests != 440 || got.Run != v.Run || !got.At.Equal(now) {
		t.Errorf("verdict %+v", got)
	}
	if len(got.Evidence) != 1 {
		t.Fatalf("evidence %+v", got.Evidence)
	}
	e := got.Evidence[0]
	if e.Rule != "error_rate max" || e.Method != string(analysis.RateSequence) || *e.Observed != 0.3 || *e.Threshold != 0.02 ||
		*e.Candidate != 0.3 || *e.Baseline != 0.01 || *e.Lower != 0.18 || *e.Upper != 0.41 || e.CandidateSamples != 23 || e.Detail != "above" {
		t.Errorf("evidence %+v", e)
	}
	if e.Lower == &lo || e.Candidate == &cand {
		t.Error("the stored evidence shares pointers with the judge's verdict")
	}
	if len(d.Notifications) != 1 || d.Notifications[0].Type != "rollout.rolled_back" || d.Notifications[0].Verdict == nil || d.Notifications[0].Verdict.Reason != got.Reason {
		t.Errorf("notification %+v", d.Notifications)
	}
	if !strings.Contains(d.Rollout.Reason, "error_rate 30 % above 2 %") {
		t.Errorf("reason %q", d.Rollout.Reason)
	}
}

// TestGateFloor: an explicit analysis step's minSamples reaches the
// judge, and a Pass judged with a lower floor does not open the gate.
func TestGateFloor(t *testing.T) {
	s := loadSpec(t, "canary-explicit.yaml")
	r, _ := NewRollout(s, 1, 12, "carol", t0)
	st := State{Rollout: r, Plan: NewPlan(s)}
	now := t0
	st, d := drive(t, st, now, Observations{})
	pass := func(floor uint64) Observations {
		return Observations{Analysis: &Verdict{Run: st.Rollout.Run, Verdict: analysis.Verdict{Outcome: analysis.Pass, MinSamples: floor}}}
	}
	if d.Judge == nil || d.Judge.MinSamples != 100 || d.Judge.Analysis == nil || d.Judge.Analysis.Rules[0].Metric != analysis.ErrorRate {
		t.Fatalf("judge at the first gate: %+v", d.Judge)
	}
	st, _ = drive(t, st, now, pass(100)) // weight 1 passes, weight 10 set, pause 2m
	now = now.Add(2 * time.Minute)
	st, d = drive(t, st, now, Observations{})
	if st.Plan.Steps[st.Rollout.Step].Kind != StepAnalysis || d.Judge == nil || d.Judge.MinSamples != 1000 {
		t.Fatalf("at step %d the judge floor is %+v, want 1000", st.Rollout.Step, d.Judge)
	}
	if d = Step(now, st, pass(999)); d.Changed {
		t.Error("a Pass at 999 samples opened a gate that needs 1000")
	}
	if d = Step(now, st, pass(1000)); d.Rollout.Phase != domain.RolloutAwaitingApproval {
		t.Errorf("a Pass at 1000 samples: %s", d.Rollout.Phase)
	}
}

func TestNewRolloutAndLoad(t *testing.T) {
	s := loadSpec(t, "canary-explicit.yaml") // candidate: "12"
	if _, err := NewRollout(s, 1, 13, "carol", t0); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("a candidate other than the spec's version: %v", err)
	}
	if _, err := NewRollout(s, 12, 12, "carol", t0); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("baseline = candidate: %v", err)
	}
	r, err := NewRollout(s, 3, 12, "carol", t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != domain.RolloutPending || !r.InEffect || r.Traffic.Baseline != 100 || r.CandidateRef != "12" || r.Strategy != "canary" || r.Spec != s.Source {
		t.Errorf("new rollout %+v", r)
	}
	r.Spec = "kind: Rollout\n"
	if _, err := Load(r); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("Load of a broken spec: %v", err)
	}
}

// TestStepOutsidePlan: a stored step the plan does not have (a damaged
// row) fails the rollout and puts the baseline back; no panic.
func TestStepOutsidePlan(t *testing.T) {
	s := loadSpec(t, "canary.yaml")
	r, _ := NewRollout(s, 1, 2, "carol", t0)
	r.Phase, r.Step = domain.RolloutProgressing, 99
	d := Step(t0, State{Rollout: r, Plan: NewPlan(s)}, Observations{})
	if d.Rollout.Phase != domain.RolloutFailed || d.Rollout.Traffic.Baseline != 100 || !strings.Contains(d.Rollout.Reason, "outside the plan") {
		t.Errorf("%s %q", d.Rollout.Phase, d.Rollout.Reason)
	}
	r.Phase = domain.RolloutAwaitingApproval
	d = Step(t0, State{Rollout: r, Plan: NewPlan(s)}, Observations{Commands: []Command{{Kind: CommandApprove, By: "b", Role: domain.RoleApprover}}})
	if d.Commands[0].Err == nil || !errors.Is(d.Commands[0].Err, domain.ErrPrecondition) {
		t.Errorf("approve outside the plan: %v", d.Commands[0].Err)
	}
}

// TestHistoryBounded: pausing and resuming forever keeps the last
// MaxRolloutHistory transitions.
func TestHistoryBounded(t *testing.T) {
	s := loadSpec(t, "canary.yaml")
	r, _ := NewRollout(s, 1, 2, "carol", t0)
	st, _ := drive(t, State{Rollout: r, Plan: NewPlan(s)}, t0, Observations{})
	now := t0
	for i := range domain.MaxRolloutHistory {
		now = now.Add(time.Second)
		kind := CommandPause
		if i%2 == 1 {
			kind = CommandResume
		}
		d := Step(now, st, Observations{Commands: []Command{{Kind: kind, By: "b"}}})
		if d.Commands[0].Err != nil {
			t.Fatal(d.Commands[0].Err)
		}
		st.Rollout = d.Rollout
	}
	h := st.Rollout.History
	if len(h) != domain.MaxRolloutHistory || h[len(h)-1].At != now || h[0].Event == string(EventStart) {
		t.Errorf("%d entries, last at %v, first %s", len(h), h[len(h)-1].At, h[0].Event)
	}
}

// TestApprovalRecordsWho: the approval and its transition name the
// person and their comment.
func TestApprovalRecordsWho(t *testing.T) {
	s := loadSpec(t, "approval-first.yaml")
	r, _ := NewRollout(s, 1, 2, "carol", t0)
	st, d := drive(t, State{Rollout: r, Plan: NewPlan(s)}, t0, Observations{})
	if d.Rollout.Phase != domain.RolloutAwaitingApproval {
		t.Fatalf("phase %s", d.Rollout.Phase)
	}
	at := t0.Add(time.Minute)
	d = Step(at, st, Observations{Commands: []Command{{Kind: CommandApprove, By: "dan", Role: domain.RoleAdmin, Reason: "looks good"}}})
	if d.Commands[0].Err != nil {
		t.Fatal(d.Commands[0].Err)
	}
	a := d.Rollout.Approvals
	if len(a) != 1 || a[0] != (domain.RolloutApproval{Step: 1, By: "dan", Role: domain.RoleAdmin, Approve: true, Comment: "looks good", At: at}) {
		t.Errorf("approvals %+v", a)
	}
	var granted *domain.RolloutTransition
	for i, h := range d.Rollout.History {
		if h.Event == string(EventApprovalGranted) {
			granted = &d.Rollout.History[i]
		}
	}
	if granted == nil || granted.By != "dan" || granted.Reason != "approved by dan: looks good" || granted.Step != 1 {
		t.Errorf("transition %+v", granted)
	}
}
