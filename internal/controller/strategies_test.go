package controller_test

import (
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/rollout"
)

const row = "[19.17,24.8,132.4,1123.0,0.0974,0.2458,0.2065,0.1118,0.2397,0.078,0.9555,3.568,11.07,116.2,0.003139,0.08297,0.0889,0.0409,0.04484,0.01284,20.96,29.94,151.7,1332.0,0.1037,0.3903,0.3639,0.1767,0.3176,0.1023]"

func blueGreen(expectModel string) string {
	return `kind: Rollout
model: bc
environment: production
candidate: "2"
strategy:
  blueGreen:
    smoke:
      - name: malignant row
        request: {inputs: [{name: input-0, shape: [1, 30], datatype: FP64, data: ` + row + `}]}
        expect: {model_name: ` + expectModel + `}
    keepPrevious: 1h
    preSwitch: {duration: 1s, percent: 100}
analysis:
  minSamples: 100
  rules:
    - metric: error_rate
      max: 0.02
`
}

// Blue-green: the smoke request is answered by the candidate's real
// runtime, the pre-switch mirror is judged, all traffic switches at once,
// the baseline stays warm, and undo puts it back instantly.
func TestBlueGreenSwitchAndUndo(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(blueGreen("bc"), e.admin)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, _ := e.ctl.Get(t.Context(), r.ID)
		if cur.Phase == domain.RolloutPromoting && cur.InEffect {
			r = cur
			break
		}
		if time.Now().After(deadline) || cur.Phase.Terminal() {
			t.Fatalf("never switched: %s %s", cur.Phase, cur.Reason)
		}
		e.feed(1, 2, 0)
	}
	if w := e.weights(); w[2] != 100 || w[1] != 0 {
		t.Fatalf("weights after the switch %v, want 2 at 100 and 1 warm at 0", w)
	}
	var smoke, mirror bool
	for _, v := range r.Verdicts {
		smoke = smoke || v.Outcome == domain.AnalysisPass && strings.Contains(v.Reason, "smoke")
		mirror = mirror || v.Outcome == domain.AnalysisPass && v.CandidateRequests >= 100
	}
	if !smoke || !mirror {
		t.Errorf("verdicts lack the smoke pass or the mirror's pass: %+v", r.Verdicts)
	}
	if e.alias("champion") != 2 {
		t.Errorf("champion %d after the switch", e.alias("champion"))
	}
	undone, err := e.ctl.Command(t.Context(), e.admin, r.ID, rollout.CommandUndo, "a customer complained")
	if err != nil || undone.Phase != domain.RolloutRolledBack {
		t.Fatalf("undo: %s %v", undone.Phase, err)
	}
	e.waitInEffect(r.ID)
	if w := e.weights(); w[1] != 100 || e.alias("champion") != 1 || e.alias("production") != 1 {
		t.Errorf("after undo: weights %v, champion %d, production %d", w, e.alias("champion"), e.alias("production"))
	}
}

func TestBlueGreenSmokeFailureRollsBack(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(blueGreen("someone-else"), e.admin)
	_, _, end := e.traffic(r.ID, 2, 0, 30*time.Second)
	if end.Phase != domain.RolloutRolledBack || !strings.Contains(end.Reason, `smoke "malignant row"`) || !strings.Contains(end.Reason, "model_name") {
		t.Fatalf("ended %s: %s", end.Phase, end.Reason)
	}
	if w := e.weights(); w[1] != 100 {
		t.Errorf("weights %v", w)
	}
}

const shadowFirst = `kind: Rollout
model: bc
environment: production
candidate: "2"
strategy:
  shadow:
    duration: 1s
    percent: 100
    steps:
      - weight: 50
analysis:
  minSamples: 100
  rules:
    - metric: error_rate
      max: 0.02
    - metric: disagreement_rate
      max: 0.05
`

// Shadow first: the candidate answers mirrored requests only, is judged
// on them, then takes live traffic; a candidate whose mirrored answers
// fail is rolled back before a client ever reached it.
func TestShadowFirst(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(shadowFirst, e.admin)
	_, failed, end := e.traffic(r.ID, 2, 0, 60*time.Second)
	if end.Phase != domain.RolloutSucceeded || len(failed) != 0 {
		t.Fatalf("ended %s (%s), failed %v", end.Phase, end.Reason, failed)
	}

	e2 := newEnv(t)
	r = e2.rollout(strings.Replace(shadowFirst, `"2"`, `"3"`, 1), e2.admin)
	served, _, end := e2.traffic(r.ID, 3, 3, 30*time.Second)
	if end.Phase != domain.RolloutRolledBack {
		t.Fatalf("a failing shadow ended %s: %s", end.Phase, end.Reason)
	}
	if served[3] != 0 {
		t.Errorf("the failing shadow served %d live requests", served[3])
	}

	// A mirror that answers without errors but disagrees with the
	// primary is rolled back on the disagreement rule.
	e3 := newEnv(t)
	e3.disagree = 4
	r = e3.rollout(shadowFirst, e3.admin)
	served, _, end = e3.traffic(r.ID, 2, 0, 30*time.Second)
	if end.Phase != domain.RolloutRolledBack || !strings.Contains(end.Reason, "disagreement") || served[2] != 0 {
		t.Fatalf("a disagreeing shadow ended %s (%s), served %d live", end.Phase, end.Reason, served[2])
	}
}

// An A/B test splits by a sticky key for its duration, records a report
// of both arms, and (winner: analysis) goes on when the rules pass.
func TestABTest(t *testing.T) {
	e := newEnv(t)
	spec := `kind: Rollout
model: bc
environment: production
candidate: "2"
strategy:
  abTest:
    key: header:X-User-ID
    duration: 1s
    split: 30
    winner: analysis
analysis:
  minSamples: 100
  rules:
    - metric: error_rate
      maxVsBaseline: 0.01
`
	r := e.rollout(spec, e.admin)
	d, err := e.st.GetDeployment(t.Context(), "bc", "production")
	if err != nil || d.Routing.Sticky == nil || d.Routing.Sticky.Header != "X-User-ID" {
		t.Fatalf("the A/B split is not sticky by X-User-ID: %+v %v", d.Routing, err)
	}
	if w := e.weights(); w[2] != 30 {
		t.Errorf("A/B weights %v, want the candidate at 30", w)
	}
	_, _, end := e.traffic(r.ID, 2, 0, 60*time.Second)
	if end.Phase != domain.RolloutSucceeded {
		t.Fatalf("ended %s: %s", end.Phase, end.Reason)
	}
	report := false
	for _, v := range end.Verdicts {
		report = report || strings.HasPrefix(v.Reason, "A/B report") && len(v.Evidence) > 0
	}
	if !report {
		t.Errorf("no A/B report recorded: %+v", end.Verdicts)
	}
}
