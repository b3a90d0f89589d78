package rollout

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/yamldoc"
)

// FuzzParseSpec: the parser never panics; a refusal is a yamldoc.Error
// and an ErrInvalid; an accepted spec expands to a plan whose weights
// only go up, ends in promote, and drives Step without breaking the
// invariants.
func FuzzParseSpec(f *testing.F) {
	files, _ := filepath.Glob("testdata/specs/*.yaml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("kind: Rollout\nmodel: m\nenvironment: e\ncandidate: 2\nstrategy: {canary: {steps: [{weight: 5}, {weight: 5}]}}\n"))
	f.Add([]byte("kind: Rollout\n&a model: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec("f.yaml", data)
		if err != nil {
			var ye *yamldoc.Error
			if !errors.As(err, &ye) || !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("refusal %T %v is not a yamldoc.Error and ErrInvalid", err, err)
			}
			return
		}
		p := NewPlan(s)
		if len(p.Steps) == 0 || p.Steps[len(p.Steps)-1].Kind != StepPromote || p.Steps[0].Kind != StepTraffic {
			t.Fatalf("plan %s does not start the candidate and end in promote", p)
		}
		last := -1
		for _, st := range p.Steps {
			if st.Kind == StepAnalysis && s.Analysis == nil {
				t.Fatalf("plan %s: an analysis gate without an analysis block", p)
			}
			if st.Kind != StepTraffic && st.Kind != StepPromote {
				continue
			}
			if err := st.Traffic.Validate(); err != nil {
				t.Fatalf("plan %s: %v", p, err)
			}
			if st.Kind == StepTraffic && st.Traffic.Sticky == nil {
				if st.Traffic.Candidate < last {
					t.Fatalf("plan %s: weights go down", p)
				}
				last = st.Traffic.Candidate
			}
		}
		candidate := 2
		if s.Candidate.Version != 0 {
			candidate = s.Candidate.Version
		}
		baseline := 1
		if candidate == 1 {
			baseline = 2
		}
		r, err := NewRollout(s, baseline, candidate, "f", t0)
		if err != nil {
			t.Fatalf("NewRollout of an accepted spec: %v", err)
		}
		st, err := Load(r)
		if err != nil {
			t.Fatalf("Load of an accepted spec: %v", err)
		}
		now := t0
		for range 2 * len(st.Plan.Steps) {
			d := Step(now, st, Observations{})
			checkInvariants(t, "fuzz", st, Observations{}, now, d)
			st.Rollout = d.Rollout
			st.Rollout.InEffect = true
			if !d.WakeAt.IsZero() {
				now = d.WakeAt
			}
		}
	})
}
