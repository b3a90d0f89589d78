package domain

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRolloutPhase(t *testing.T) {
	for _, p := range RolloutPhases {
		if got, err := ParseRolloutPhase(string(p)); err != nil || got != p {
			t.Errorf("ParseRolloutPhase(%q) = %q, %v", p, got, err)
		}
	}
	for _, s := range []string{"", "Pending", "done", "rolled-back"} {
		if _, err := ParseRolloutPhase(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRolloutPhase(%q) = %v, want ErrInvalid", s, err)
		}
	}
	terminal := 0
	for _, p := range RolloutPhases {
		if p.Terminal() {
			terminal++
		}
	}
	if terminal != 5 || RolloutPending.Terminal() || !RolloutSuperseded.Terminal() {
		t.Errorf("%d terminal phases, want succeeded, aborted, rolled_back, failed, superseded", terminal)
	}
}

func TestParseAnalysisOutcome(t *testing.T) {
	for _, o := range []AnalysisOutcome{AnalysisPass, AnalysisFail, AnalysisInconclusive, AnalysisError} {
		if got, err := ParseAnalysisOutcome(string(o)); err != nil || got != o {
			t.Errorf("ParseAnalysisOutcome(%q) = %q, %v", o, got, err)
		}
	}
	if _, err := ParseAnalysisOutcome("Pass"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Pass: %v", err)
	}
}

func TestRolloutTrafficValidate(t *testing.T) {
	key := StickyKey{Header: "X-User"}
	for _, c := range []struct {
		t    RolloutTraffic
		want string
	}{
		{RolloutTraffic{Baseline: 100}, ""},
		{RolloutTraffic{Baseline: 95, Candidate: 5}, ""},
		{RolloutTraffic{Baseline: 100, ShadowPercent: 12.5}, ""},
		{RolloutTraffic{Baseline: 50, Candidate: 50, Sticky: &key}, ""},
		{RolloutTraffic{Candidate: 100, BaselineRetired: true}, ""},
		{RolloutTraffic{Baseline: 90, Candidate: 5}, "sum to 100"},
		{RolloutTraffic{Baseline: 101, Candidate: -1}, "sum to 100"},
		{RolloutTraffic{Baseline: 100, ShadowPercent: 101}, "from 0 to 100"},
		{RolloutTraffic{Baseline: 95, Candidate: 5, ShadowPercent: 10}, "a shadow takes none"},
		{RolloutTraffic{Baseline: 100, BaselineRetired: true}, "retired but weighted"},
		{RolloutTraffic{Baseline: 50, Candidate: 50, Sticky: &StickyKey{}}, "neither a header"},
	} {
		err := c.t.Validate()
		if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.t, err, c.want)
		}
	}
}

func TestRolloutValidate(t *testing.T) {
	ok := Rollout{Model: "m", Environment: "production", Baseline: 1, Candidate: 2, Phase: RolloutPending, Traffic: RolloutTraffic{Baseline: 100}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if !ok.Active() {
		t.Error("a pending rollout is not active")
	}
	for name, mut := range map[string]func(*Rollout){
		"model":    func(r *Rollout) { r.Model = "M" },
		"env":      func(r *Rollout) { r.Environment = "" },
		"baseline": func(r *Rollout) { r.Baseline = 0 },
		"same":     func(r *Rollout) { r.Candidate = 1 },
		"phase":    func(r *Rollout) { r.Phase = "done" },
		"step":     func(r *Rollout) { r.Step = -1 },
		"traffic":  func(r *Rollout) { r.Traffic.Candidate = 5 },
	} {
		r := ok
		mut(&r)
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	done := ok
	done.Phase = RolloutRolledBack
	if done.Active() {
		t.Error("a rolled back rollout is active")
	}
}

// TestRolloutJSON: a stored rollout reads back as it was written.
func TestRolloutJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v := 0.031
	r := Rollout{
		ID: 3, Model: "m", Environment: "production", Strategy: "canary", Baseline: 1, Candidate: 2, CandidateRef: "@challenger",
		Phase: RolloutPaused, Reason: "analysis failed", Step: 4, StepStartedAt: at, Run: 2, RunStartedAt: at,
		Traffic:   RolloutTraffic{Baseline: 95, Candidate: 5, Sticky: &StickyKey{Field: "user.id"}},
		Verdicts:  []RolloutVerdict{{Step: 4, Run: 2, Outcome: AnalysisFail, CandidateRequests: 40, Evidence: []RolloutEvidence{{Rule: "error_rate max", Outcome: AnalysisFail, Observed: &v}}, At: at}},
		History:   []RolloutTransition{{From: RolloutProgressing, To: RolloutPaused, Event: "pause", Step: 4, Reason: "analysis failed", At: at}},
		CreatedBy: "carol", CreatedAt: at, UpdatedAt: at, Revision: 9,
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Rollout
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) || *back.Verdicts[0].Evidence[0].Observed != v || back.Traffic.Sticky.Field != "user.id" {
		t.Errorf("round trip:\n%s\n%s", b, b2)
	}
	if !strings.Contains(string(b), `"phase":"paused"`) || !strings.Contains(string(b), `"in_effect":false`) {
		t.Errorf("JSON names: %s", b)
	}
}
