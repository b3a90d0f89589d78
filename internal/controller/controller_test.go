package controller_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/controller"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/notify"
	"github.com/slipway-ml/slipway/internal/rollout"
	"github.com/slipway-ml/slipway/internal/store"
)

const canary = `kind: Rollout
model: bc
environment: production
candidate: "2"
strategy:
  canary:
    steps:
      - weight: 20
      - weight: 50
analysis:
  minSamples: 100
  rules:
    - metric: error_rate
      max: 0.02
`

func TestHealthyCanaryIsPromoted(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(canary, e.admin)
	if r.Phase != domain.RolloutProgressing || r.Baseline != 1 || r.Candidate != 2 {
		t.Fatalf("started as %s %d→%d, want progressing 1→2", r.Phase, r.Baseline, r.Candidate)
	}
	served, failed, r := e.traffic(r.ID, 2, 0, 60*time.Second)
	if r.Phase != domain.RolloutSucceeded {
		t.Fatalf("ended %s: %s", r.Phase, r.Reason)
	}
	if len(failed) != 0 || served[2] == 0 {
		t.Errorf("served %v, failed %v", served, failed)
	}
	if w := e.weights(); len(w) != 1 || w[2] != 100 {
		t.Errorf("weights after success %v, want only version 2 at 100", w)
	}
	if e.alias("production") != 2 || e.alias("champion") != 2 {
		t.Errorf("aliases production=%d champion=%d, want 2", e.alias("production"), e.alias("champion"))
	}
	passes := 0
	for _, v := range r.Verdicts {
		if v.Outcome == domain.AnalysisPass {
			passes++
			if v.CandidateRequests < 100 || len(v.Evidence) == 0 {
				t.Errorf("a pass on %d candidate requests with evidence %+v", v.CandidateRequests, v.Evidence)
			}
		}
	}
	if passes != 2 {
		t.Errorf("%d passing verdicts recorded, want one per weight (2): %+v", passes, r.Verdicts)
	}
	acts := e.audit(r.ID)
	for _, want := range []string{"rollout.create", "rollout.started", "rollout.step", "rollout.promoting", "rollout.succeeded"} {
		if !slices.Contains(acts, want) {
			t.Errorf("audit of the rollout lacks %s: %v", want, acts)
		}
	}
}

func TestFailingCanaryIsRolledBack(t *testing.T) {
	e := newEnv(t)
	hooks := notify.NewService(notify.ServiceConfig{Store: e.st})
	if _, err := hooks.Add(t.Context(), "alice", notify.NewWebhook{URL: "http://127.0.0.1:9/hook", Events: []string{"rollout.*"}}); err != nil {
		t.Fatal(err)
	}
	r := e.rollout(canary, e.admin)
	// Every third candidate request fails: 33 % against a 2 % rule.
	_, failed, r := e.traffic(r.ID, 2, 3, 30*time.Second)
	if r.Phase != domain.RolloutRolledBack {
		t.Fatalf("ended %s: %s", r.Phase, r.Reason)
	}
	if w := e.weights(); w[1] != 100 || w[2] != 0 {
		t.Errorf("weights after rollback %v, want 1 at 100 and 2 at 0", w)
	}
	// How fast is bench/rollback's to measure; here, only that the
	// verdict rests on the failures the candidate really had.
	if failed[2] == 0 {
		t.Error("rolled back without a failed candidate request")
	}
	last := r.Verdicts[len(r.Verdicts)-1]
	if last.Outcome != domain.AnalysisFail || len(last.Evidence) == 0 || last.Evidence[0].Rule != "error_rate max" {
		t.Errorf("rolled back with reason %q and verdict %+v", r.Reason, last)
	}
	if e.alias("champion") == 2 {
		t.Error("champion points at the rolled-back candidate")
	}
	if acts := e.audit(r.ID); !slices.Contains(acts, notify.TypeRolloutRolledBack) {
		t.Errorf("audit lacks the rollback: %v", acts)
	}
	// The webhook outbox holds the rollback with the evidence that caused
	// it, written in the rollback's own transaction.
	ds, _, err := hooks.Deliveries(t.Context(), store.DeliveryFilter{}, pageAll())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var back *controller.Event
	for _, d := range ds {
		types = append(types, d.EventType)
		if d.EventType == notify.TypeRolloutRolledBack {
			back = new(controller.Event)
			if err := json.Unmarshal(d.Data, back); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !slices.Contains(types, notify.TypeRolloutStarted) || back == nil || back.Verdict == nil || len(back.Verdict.Evidence) == 0 || back.Traffic.Candidate != 0 {
		t.Errorf("webhook events %v; the rollback's %+v", types, back)
	}
}

func TestCommandsAndApproval(t *testing.T) {
	e := newEnv(t)
	spec := strings.Replace(canary, "      - weight: 50\n", "      - approval: {role: approver}\n      - weight: 50\n", 1)
	r := e.rollout(spec, controller.Actor{Name: "dana", Role: domain.RoleDeployer})
	paused, err := e.ctl.Command(t.Context(), e.admin, r.ID, rollout.CommandPause, "looking at dashboards")
	if err != nil || paused.Phase != domain.RolloutPaused {
		t.Fatalf("pause: %s, %v", paused.Phase, err)
	}
	// A paused rollout cannot be paused again: the refusal names what is
	// possible and stores nothing.
	before, _ := e.ctl.Get(t.Context(), r.ID)
	if _, err := e.ctl.Command(t.Context(), e.admin, r.ID, rollout.CommandPause, ""); !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "resume") {
		t.Errorf("second pause: %v", err)
	}
	if after, _ := e.ctl.Get(t.Context(), r.ID); after.Revision != before.Revision {
		t.Errorf("a refused command stored revision %d over %d", after.Revision, before.Revision)
	}
	if _, err := e.ctl.Command(t.Context(), e.admin, r.ID, rollout.CommandResume, ""); err != nil {
		t.Fatal(err)
	}
	// Manual traffic changes are refused while the rollout holds the
	// deployment.
	if _, err := e.deps.SetTraffic(t.Context(), "alice", "bc", "production", map[int]int{1: 50, 2: 50}, 0, nil); !errors.Is(err, domain.ErrPrecondition) {
		t.Errorf("manual traffic change during a rollout: %v", err)
	}
	// Traffic until the approval step.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, _ := e.ctl.Get(t.Context(), r.ID)
		if cur.Phase == domain.RolloutAwaitingApproval {
			break
		}
		if time.Now().After(deadline) || cur.Phase.Terminal() {
			t.Fatalf("never awaited approval: %s %s", cur.Phase, cur.Reason)
		}
		e.feed(1, 2, 0)
	}
	// The starter may not approve; a viewer may not either.
	if _, err := e.ctl.Command(t.Context(), controller.Actor{Name: "dana", Role: domain.RoleAdmin}, r.ID, rollout.CommandApprove, ""); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("the starter approved: %v", err)
	}
	if _, err := e.ctl.Command(t.Context(), controller.Actor{Name: "vic", Role: domain.RoleViewer}, r.ID, rollout.CommandApprove, ""); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("a viewer approved: %v", err)
	}
	got, err := e.ctl.Command(t.Context(), controller.Actor{Name: "bob", Role: domain.RoleApprover}, r.ID, rollout.CommandApprove, "numbers hold")
	if err != nil || got.Phase != domain.RolloutProgressing || len(got.Approvals) != 1 {
		t.Fatalf("approve: %s %+v %v", got.Phase, got.Approvals, err)
	}
	aborted, err := e.ctl.Command(t.Context(), e.admin, r.ID, rollout.CommandAbort, "enough")
	if err != nil || aborted.Phase != domain.RolloutAborted {
		t.Fatalf("abort: %s %v", aborted.Phase, err)
	}
	e.waitInEffect(r.ID)
	if w := e.weights(); w[1] != 100 {
		t.Errorf("weights after abort %v", w)
	}
}

// feed records rounds of 50 requests split by the route table, the
// candidate failing every failEvery-th (0: never).
func (e *env) feed(rounds, candidate, failEvery int) {
	for r := range rounds {
		rt := e.deps.Routes().Lookup("bc", "production")
		for i := range 50 {
			e.request(rt, i, r*50+i+1, candidate, failEvery)
		}
		time.Sleep(2 * time.Millisecond) // pacing of the synthetic traffic
	}
}

func (e *env) waitInEffect(id int64) domain.Rollout {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := e.ctl.Get(e.t.Context(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if r.InEffect {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("rollout %d never in effect: %s", id, r.Phase)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func TestStartRefusals(t *testing.T) {
	e := newEnv(t)
	cases := map[string]struct {
		spec string
		want error
	}{
		"candidate serves": {strings.Replace(canary, `candidate: "2"`, `candidate: "1"`, 1), domain.ErrPrecondition},
		"no such version":  {strings.Replace(canary, `candidate: "2"`, `candidate: "9"`, 1), domain.ErrNotFound},
		"no such alias":    {strings.Replace(canary, `candidate: "2"`, `candidate: "@nope"`, 1), domain.ErrNotFound},
		"not deployed":     {strings.Replace(canary, "environment: production", "environment: staging", 1), domain.ErrPrecondition},
		"unknown env":      {strings.Replace(canary, "environment: production", "environment: moon", 1), domain.ErrInvalid},
		"yaml":             {canary + "  bogus: 1\n", nil},
		"unknown rule":     {strings.Replace(canary, "error_rate", "happiness", 1), nil},
		"no prometheus":    {canary + "    - prometheus: {query: 'sum(up)', max: 3}\n", domain.ErrPrecondition},
	}
	for name, c := range cases {
		_, err := e.ctl.Start(t.Context(), e.admin, "r.yaml", []byte(c.spec), controller.StartOptions{})
		if err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if rs, _, _ := e.ctl.List(t.Context(), storeAll(), pageAll()); len(rs) != 0 {
		t.Errorf("refused starts stored %d rollouts", len(rs))
	}
	// One active rollout per model and environment; --supersede ends it.
	first := e.rollout(canary, e.admin)
	if _, err := e.ctl.Start(t.Context(), e.admin, "r.yaml", []byte(strings.Replace(canary, `"2"`, `"3"`, 1)), controller.StartOptions{}); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("a second active rollout: %v", err)
	}
	// A superseding start that is refused ends nothing.
	if _, err := e.ctl.Start(t.Context(), e.admin, "r.yaml", []byte(strings.Replace(canary, `"2"`, `"1"`, 1)), controller.StartOptions{Supersede: true}); !errors.Is(err, domain.ErrPrecondition) {
		t.Errorf("superseding with the serving version as candidate: %v", err)
	}
	if cur, _ := e.ctl.Get(t.Context(), first.ID); !cur.Active() {
		t.Errorf("a refused superseding start ended rollout %d: %s", first.ID, cur.Phase)
	}
	second, err := e.ctl.Start(t.Context(), e.admin, "r.yaml", []byte(strings.Replace(canary, `"2"`, `"3"`, 1)), controller.StartOptions{Supersede: true})
	if err != nil || second.Candidate != 3 || second.Baseline != 1 {
		t.Fatalf("supersede: %+v %v", second, err)
	}
	if old, _ := e.ctl.Get(t.Context(), first.ID); old.Phase != domain.RolloutSuperseded {
		t.Errorf("the first rollout is %s after being superseded", old.Phase)
	}
}

// Every event type the rollout state machine raises is one webhooks can
// subscribe to.
func TestEventTypesKnown(t *testing.T) {
	for _, p := range domain.RolloutPhases {
		for _, ev := range rollout.Legal(p) {
			to, _ := rollout.Transition(p, ev)
			typ := "rollout." + string(to)
			switch {
			case ev == rollout.EventStart:
				typ = notify.TypeRolloutStarted
			case ev == rollout.EventResume:
				typ = notify.TypeRolloutResumed
			case to == domain.RolloutProgressing:
				typ = notify.TypeRolloutStep
			}
			if !slices.Contains(notify.EventTypes, typ) {
				t.Errorf("%s --%s--> %s raises %s, which notify does not know", p, ev, to, typ)
			}
		}
	}
}

// A controller stopped mid-rollout and started again (a new process: new
// live counters) resumes from the store: the gateway serves the stored
// weights meanwhile, and the rollout ends as it would have.
func TestResumeAfterRestart(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(canary, e.admin)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, _ := e.ctl.Get(t.Context(), r.ID)
		if cur.Traffic.Candidate == 50 && cur.InEffect {
			break
		}
		if time.Now().After(deadline) || cur.Phase.Terminal() {
			t.Fatalf("never reached 50 %%: %s %s", cur.Phase, cur.Reason)
		}
		e.feed(1, 2, 0)
	}
	e.stop()
	stored, _ := e.ctl.Get(t.Context(), r.ID)
	if w := e.weights(); w[2] != stored.Traffic.Candidate || w[1] != stored.Traffic.Baseline {
		t.Fatalf("stopped with weights %v, stored traffic %+v", w, stored.Traffic)
	}
	e.live = newRecorder()
	e.start()
	_, failed, end := e.traffic(r.ID, 2, 0, 60*time.Second)
	if end.Phase != domain.RolloutSucceeded || len(failed) != 0 {
		t.Fatalf("after restart: %s (%s), failed %v", end.Phase, end.Reason, failed)
	}
}

// A candidate that cannot be served fails its rollout at the start, with
// the reason, and the baseline serves as before.
func TestUnservableCandidateFailsAtOnce(t *testing.T) {
	e := newEnv(t)
	bad := e.pushBytes([]byte(`{"learner": "not an XGBoost model"}`))
	r, err := e.ctl.Start(t.Context(), e.admin, "r.yaml", []byte(strings.Replace(canary, `"2"`, `"`+strconv.Itoa(bad.Number)+`"`, 1)), controller.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != domain.RolloutFailed || !r.InEffect || !strings.Contains(r.Reason, "cannot go on") {
		t.Fatalf("started as %s (in effect %v): %s", r.Phase, r.InEffect, r.Reason)
	}
	if w := e.weights(); len(w) != 1 || w[1] != 100 {
		t.Errorf("weights %v, want only the baseline", w)
	}
}

// A candidate that refuses with 400 what the baseline answers (a changed
// input schema) looks healthy to error_rate, which leaves 4xx to the
// caller, and is rolled back on client_error_rate.
func TestClientErrorsRollBack(t *testing.T) {
	e := newEnv(t)
	e.failStatus = 400
	spec := strings.Replace(canary, "    - metric: error_rate\n      max: 0.02\n",
		"    - metric: error_rate\n      max: 0.02\n    - metric: client_error_rate\n      maxVsBaseline: 0.01\n", 1)
	r := e.rollout(spec, e.admin)
	_, _, end := e.traffic(r.ID, 2, 1, 30*time.Second)
	if end.Phase != domain.RolloutRolledBack || !strings.Contains(end.Reason, "client error rate") {
		t.Fatalf("ended %s: %s", end.Phase, end.Reason)
	}
}
