package rollout

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/domain"
)

// checkInvariants holds for every Decision: Step is deterministic, and
// its actions agree with the state it returns.
func checkInvariants(t *testing.T, where string, st State, obs Observations, now time.Time, d Decision) {
	t.Helper()
	if again := Step(now, st, obs); !reflect.DeepEqual(d, again) {
		t.Errorf("%s: Step is not deterministic:\n%+v\n%+v", where, d, again)
	}
	r := d.Rollout
	if err := r.Validate(); err != nil {
		t.Errorf("%s: the new state is invalid: %v", where, err)
	}
	if r.Revision != st.Rollout.Revision {
		t.Errorf("%s: revision %d changed from %d; the store bumps it", where, r.Revision, st.Rollout.Revision)
	}
	if !d.Changed && !reflect.DeepEqual(r, st.Rollout) {
		t.Errorf("%s: unchanged decision with a different rollout", where)
	}
	if (d.Apply == nil) != r.InEffect {
		t.Errorf("%s: apply %v with InEffect %v", where, d.Apply != nil, r.InEffect)
	}
	if d.Apply != nil && !reflect.DeepEqual(*d.Apply, Desired(r)) {
		t.Errorf("%s: actions %+v are not the state's desired %+v", where, *d.Apply, Desired(r))
	}
	a := Desired(r)
	if a.Traffic != r.Traffic || a.Baseline != r.Baseline || a.Candidate != r.Candidate {
		t.Errorf("%s: desired traffic %+v differs from the state's %+v", where, a.Traffic, r.Traffic)
	}
	switch p := r.Phase; {
	case p == domain.RolloutSucceeded:
		if !r.Traffic.BaselineRetired || r.Traffic.Candidate != 100 || a.Stable != r.Candidate || a.Aliases == nil || a.Aliases.To != r.Candidate {
			t.Errorf("%s: succeeded with %+v, %+v", where, r.Traffic, a)
		}
	case p.Terminal():
		restores := r.AliasesMoved || p != domain.RolloutSuperseded
		if r.Traffic != restored() || a.Stable != r.Baseline || (a.Aliases != nil) != restores || a.Aliases != nil && (a.Aliases.To != r.Baseline || a.Aliases.From != r.Candidate) {
			t.Errorf("%s: %s with %+v, %+v", where, p, r.Traffic, a)
		}
	case p == domain.RolloutPromoting:
		if r.Traffic != promoted() || a.Stable != r.Candidate || a.Aliases == nil || r.PromotedAt == nil {
			t.Errorf("%s: promoting with %+v, %+v", where, r.Traffic, a)
		}
	default:
		if !r.AliasesMoved && (a.Stable != r.Baseline || a.Aliases != nil) {
			t.Errorf("%s: %s before the switch with %+v", where, p, a)
		}
	}
	if a.RetireCandidate != (r.Phase.Terminal() && r.Phase != domain.RolloutSucceeded) {
		t.Errorf("%s: %s retires the candidate: %v", where, r.Phase, a.RetireCandidate)
	}
	if r.Phase.Terminal() != (r.EndedAt != nil) {
		t.Errorf("%s: %s with EndedAt %v", where, r.Phase, r.EndedAt)
	}
	if r.Phase.Terminal() && (d.Judge != nil || d.Smoke != nil || !d.WakeAt.IsZero()) {
		t.Errorf("%s: %s still judges, smokes or wakes", where, r.Phase)
	}
	if j := d.Judge; j != nil && (j.Run != r.Run || !judged(r.Traffic) || st.Plan.Analysis == nil) {
		t.Errorf("%s: judge %+v for run %d, traffic %+v", where, j, r.Run, r.Traffic)
	}
	if sm := d.Smoke; sm != nil && (sm.Run != r.Run || r.Phase != domain.RolloutProgressing || st.Plan.Steps[r.Step].Kind != StepSmoke) {
		t.Errorf("%s: smoke %+v at step %d in %s", where, sm, r.Step, r.Phase)
	}
	if !d.WakeAt.IsZero() && !d.WakeAt.After(now) {
		t.Errorf("%s: wake at %v, not after now %v", where, d.WakeAt, now)
	}
	for _, h := range r.History {
		if to, err := Transition(h.From, Event(h.Event)); err != nil || to != h.To {
			t.Errorf("%s: history has an illegal move %+v", where, h)
		}
	}
	added := len(r.History) - len(st.Rollout.History)
	if len(st.Rollout.History)+len(d.Notifications) <= domain.MaxRolloutHistory && added != len(d.Notifications) {
		t.Errorf("%s: %d transitions recorded, %d notifications", where, added, len(d.Notifications))
	}
	ids := map[string]bool{}
	for _, n := range d.Notifications {
		if ids[n.ID] {
			t.Errorf("%s: notification id %s twice", where, n.ID)
		}
		ids[n.ID] = true
	}
}

// TestStepProperties drives every spec with random observations and
// commands and checks the invariants on every decision.
func TestStepProperties(t *testing.T) {
	files, err := filepath.Glob("testdata/specs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal("no specs")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	outcomes := []analysis.Outcome{analysis.Pass, analysis.Fail, analysis.Inconclusive, analysis.Error}
	kinds := []CommandKind{CommandPause, CommandResume, CommandPromote, CommandAbort, CommandUndo, CommandApprove, CommandReject, CommandSupersede, "bogus"}
	ended := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := ParseSpec(f, data)
		if err != nil {
			t.Fatal(err)
		}
		for walk := range 60 {
			candidate := 4
			if spec.Candidate.Version != 0 {
				candidate = spec.Candidate.Version
			}
			r, err := NewRollout(spec, 3, candidate, "carol", t0)
			if err != nil {
				t.Fatal(err)
			}
			r.ID, r.PromotionID = int64(walk), 9
			st := State{Rollout: r, Plan: NewPlan(spec)}
			now := t0
			for i := range 80 {
				now = now.Add(time.Duration(rng.IntN(int(20 * time.Minute))))
				var obs Observations
				if rng.IntN(2) == 0 {
					obs.Analysis = &Verdict{Run: st.Rollout.Run - rng.IntN(2), Verdict: analysis.Verdict{Outcome: outcomes[rng.IntN(len(outcomes))], MinSamples: uint64(rng.IntN(6000))}}
				}
				if rng.IntN(3) == 0 {
					sm := &SmokeResult{Run: st.Rollout.Run}
					if rng.IntN(3) == 0 {
						sm.Failures = []string{"bad"}
					}
					obs.Smoke = sm
				}
				if rng.IntN(6) == 0 {
					roles := []domain.Role{domain.RoleApprover, domain.RoleDeployer, domain.RoleViewer, ""}
					obs.Commands = append(obs.Commands, Command{Kind: kinds[rng.IntN(len(kinds))], By: "dan", Role: roles[rng.IntN(len(roles))]})
				}
				if rng.IntN(200) == 0 {
					obs.Error = "runtime gone"
				}
				d := Step(now, st, obs)
				checkInvariants(t, f+" walk", st, obs, now, d)
				if t.Failed() {
					t.Fatalf("%s walk %d step %d: stopping at the first failure", f, walk, i)
				}
				st.Rollout = d.Rollout
				if d.Changed {
					st.Rollout.Revision++
				}
				if rng.IntN(5) != 0 {
					st.Rollout.InEffect = true
				}
				if st.Rollout.Phase.Terminal() {
					ended++
					break
				}
			}
		}
	}
	if ended == 0 {
		t.Error("no random walk reached a terminal phase; the walks test too little")
	}
}
