package e2e

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// healthyCanary is the canary without the approval step, with
// pauses short enough for a test: 5 → 25 → 50 → 100, each weight below
// 100 gated by a Pass of the judge.
const healthyCanary = `kind: Rollout
model: cancer
environment: production
candidate: %d
strategy:
  canary:
    steps:
      - weight: 5
        pause: 200ms
      - weight: 25
        pause: 200ms
      - weight: 50
        pause: 200ms
      - weight: 100
analysis:
  minSamples: %d
  rules:
    - metric: error_rate
      max: 0.02
      maxVsBaseline: 0.01
    - metric: latency_p99_ms
      maxRatioVsBaseline: 2
progressDeadline: 2m
`

// minLoadRequests is how many requests the healthy canary's clients
// must have sent, at the least, before the test looks at their answers.
const minLoadRequests = 20000

// TestRolloutHealthyCanary rolls v3 out over v1 under load through the
// real gateway: 5 → 25 → 50 → 100 with an error-rate rule and a latency
// ratio rule. It must succeed with no client-visible error over at least
// 20,000 requests, leave only v3 in the deployment, move production and
// champion to v3, record a Pass per weight, and keep the audit log
// verifiable.
func TestRolloutHealthyCanary(t *testing.T) {
	t.Parallel()
	srv := rolloutServer(t, t.TempDir())
	c := srv.admin()
	load := startLoad(t, srv, "cancer", 6)
	load.waitRequests(500)

	r := srv.startRollout(t, fmt.Sprintf(healthyCanary, 3, 400))
	if r.Baseline != 1 || r.Candidate != 3 || r.Phase.Terminal() {
		t.Fatalf("started as %s", describeRollout(r))
	}
	r = srv.awaitRollout(t, r.ID, 150*time.Second, "the healthy canary to end", ended)
	during := load.total.Load()
	if missing := minLoadRequests - during; missing > 0 {
		load.waitRequests(missing)
	}
	load.halt()
	recs := load.records()
	if r.Phase != domain.RolloutSucceeded {
		t.Fatalf("the healthy canary ended %s", describeRollout(r))
	}
	if bad := badOnes(recs, 10); len(bad) > 0 {
		t.Fatalf("%d of %d requests saw an error (first %d):\n%s", load.errors.Load(), len(recs), len(bad), strings.Join(bad, "\n"))
	}
	served := byVersion(recs)
	t.Logf("%d requests (%d while the rollout ran), 0 client-visible errors; answered by version: %v", len(recs), during, served)
	if served["3"] == 0 || served["1"] == 0 {
		t.Errorf("answers by version %v: both versions should have answered", served)
	}

	d := srv.deployment(t, "cancer", "production")
	if w := weights(d.Deployment); !maps.Equal(w, map[int]int{3: 100}) {
		t.Errorf("weights after success %v, want only version 3 at 100", w)
	}
	if d.StableVersion() != 3 {
		t.Errorf("stable version after success is %d, want 3", d.StableVersion())
	}
	for _, a := range []string{"production", "champion"} {
		var al domain.Alias
		c.json(&al, "alias", "get", "cancer", a)
		if al.Version != 3 {
			t.Errorf("alias %s → %d, want 3", a, al.Version)
		}
	}
	passes := 0
	for _, v := range r.Verdicts {
		switch v.Outcome {
		case domain.AnalysisPass:
			passes++
			if v.CandidateRequests < 400 || v.BaselineRequests < 400 || len(v.Evidence) == 0 {
				t.Errorf("a pass on %d/%d requests with evidence %+v", v.CandidateRequests, v.BaselineRequests, v.Evidence)
			}
		case domain.AnalysisFail:
			t.Errorf("a Fail verdict recorded on a rollout that succeeded: %+v", v)
		}
	}
	if passes != 3 {
		t.Errorf("%d passing verdicts recorded, want one per weight below 100 (3): %+v", passes, r.Verdicts)
	}
	var hist []string
	for _, h := range r.History {
		hist = append(hist, h.Event)
	}
	t.Logf("history: %s", strings.Join(hist, " → "))
	if out := c.ok("audit", "verify"); !strings.Contains(out, "ok") && !strings.Contains(out, "intact") && !strings.Contains(out, "verified") {
		t.Errorf("audit verify:\n%s", out)
	}
	audit := c.ok("audit", "list", "--subject", fmt.Sprintf("model/cancer/rollout/%d", r.ID))
	for _, want := range []string{"rollout.create", "rollout.succeeded"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit of the rollout lacks %s:\n%s", want, audit)
		}
	}
}
