package e2e

import (
	"fmt"
	"maps"
	"strconv"
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

// TestRolloutFaultyCanaryRolledBack rolls out, one after the other under
// the same load, two candidates with injected faults: v3 with 30 % of its
// requests aborted with 500 and every one held 50 ms, then v2 with the
// aborts alone. Each time the judge must fail the candidate and the
// controller put v1 back by itself — weights 100/0, the Fail verdict
// recorded with its evidence — and no client may see an error in a
// request sent after the rollback was in effect. It logs how many
// candidate answers and milliseconds passed from the first faulty answer
// to the rollback being in effect.
func TestRolloutFaultyCanaryRolledBack(t *testing.T) {
	t.Parallel()
	srv := rolloutServer(t, t.TempDir())
	load := startLoad(t, srv, "cancer", 6)
	load.waitRequests(300)
	t.Run("aborts and delay", func(t *testing.T) {
		faultyCanary(t, srv, load, 3, "--abort-percent", "30", "--abort-status", "500", "--delay", "50ms", "--delay-percent", "100")
	})
	t.Run("aborts", func(t *testing.T) {
		faultyCanary(t, srv, load, 2, "--abort-percent", "30", "--abort-status", "500")
	})
	load.halt()
	recs := load.records()
	fallbacks := 0
	for _, rec := range recs {
		if rec.fallback != "" {
			fallbacks++
		}
	}
	t.Logf("%d requests in all, %d client-visible errors, %d answered by v1 in another version's place (fallback); by version %v",
		len(recs), load.errors.Load(), fallbacks, byVersion(recs))
	srv.admin().ok("audit", "verify")
}

// faultyCanary injects fault into version cand, rolls it out over v1
// under load and checks it is rolled back.
func faultyCanary(t *testing.T, srv *server, load *loadGen, cand int, fault ...string) {
	c := srv.admin().in(t)
	v := strconv.Itoa(cand)
	c.ok("traffic", "set", "cancer", "1=100", v+"=0", "--stable", "1", "--env", "production")
	c.ok(append([]string{"deployment", "set-fault", "cancer", "--env", "production", "--version", v}, fault...)...)
	from := time.Now()
	r := srv.startRollout(t, fmt.Sprintf(healthyCanary, cand, 400))
	r = srv.awaitRollout(t, r.ID, 60*time.Second, "the faulty canary to end", ended)
	seen := time.Now()
	load.waitRequests(1000)
	var recs []loadRecord
	for _, rec := range load.records() {
		if !rec.start.Before(from) {
			recs = append(recs, rec)
		}
	}
	if r.Phase != domain.RolloutRolledBack {
		t.Fatalf("the faulty canary ended %s", describeRollout(r))
	}
	d := srv.deployment(t, "cancer", "production")
	if w := weights(d.Deployment); !maps.Equal(w, map[int]int{1: 100, cand: 0}) || d.StableVersion() != 1 {
		t.Errorf("after the rollback: weights %v stable %d, want 1 at 100, %d at 0, stable 1", w, d.StableVersion(), cand)
	}
	if len(r.Verdicts) == 0 {
		t.Fatalf("rolled back without a verdict: %s", describeRollout(r))
	}
	fail := r.Verdicts[len(r.Verdicts)-1]
	failing := 0
	for _, e := range fail.Evidence {
		if e.Outcome == domain.AnalysisFail {
			failing++
			t.Logf("failing check %s (%s): observed %v threshold %v on %d/%d samples; %s",
				e.Rule, e.Method, deref(e.Observed), deref(e.Threshold), e.CandidateSamples, e.BaselineSamples, e.Detail)
		}
	}
	if fail.Outcome != domain.AnalysisFail || failing == 0 || fail.CandidateRequests == 0 || !strings.Contains(r.Reason, fail.Reason) {
		t.Errorf("rolled back (%q) with last verdict %+v", r.Reason, fail)
	}
	for _, a := range []string{"production", "champion"} {
		if res := c.run("alias", "get", "cancer", a, "-o", "json"); res.code == 0 && strings.Contains(res.stdout, `"version": `+v+",") {
			t.Errorf("alias %s points at the rolled-back candidate:\n%s", a, res.stdout)
		}
	}

	// The transition to rolled_back is when the rollback was decided and
	// stored; UpdatedAt of the stored, in-effect state is when the routes
	// had been swapped.
	var decided time.Time
	for _, h := range r.History {
		if h.To == domain.RolloutRolledBack {
			decided = h.At
		}
	}
	inEffect := r.UpdatedAt
	var firstAnswer, firstFailed time.Time
	for _, rec := range recs {
		if rec.version != v || rec.status == 0 {
			continue
		}
		if firstAnswer.IsZero() || rec.end.Before(firstAnswer) {
			firstAnswer = rec.end
		}
		if rec.status != 200 && (firstFailed.IsZero() || rec.end.Before(firstFailed)) {
			firstFailed = rec.end
		}
	}
	between := func(from time.Time) (n, failed int) {
		for _, rec := range recs {
			if rec.version == v && !from.IsZero() && !rec.end.Before(from) && rec.end.Before(inEffect) {
				n++
				if rec.status != 200 {
					failed++
				}
			}
		}
		return n, failed
	}
	var before, after []string
	for _, rec := range recs {
		if rec.bad == "" {
			continue
		}
		if rec.start.After(inEffect) {
			after = append(after, badOnes([]loadRecord{rec}, 1)...)
		} else {
			before = append(before, rec.bad)
		}
	}
	t.Logf("%d requests from the rollout's start; %d client-visible errors, all in requests sent before the rollback was in effect; by version %v",
		len(recs), len(before), byVersion(recs))
	t.Logf("the Fail verdict rests on %d candidate and %d baseline requests; rollback decided %s after its start, in effect %d ms after the decision (seen by polling %d ms later)",
		fail.CandidateRequests, fail.BaselineRequests, decided.Sub(r.CreatedAt).Round(time.Millisecond), inEffect.Sub(decided).Milliseconds(), seen.Sub(inEffect).Milliseconds())
	if n, failed := between(firstAnswer); !firstAnswer.IsZero() {
		t.Logf("first answer of the faulty v%d → rollback in effect: %d ms, %d candidate answers (%d failed)", cand, inEffect.Sub(firstAnswer).Milliseconds(), n, failed)
	}
	if n, failed := between(firstFailed); firstFailed.IsZero() {
		t.Logf("no client saw a failed answer of v%d before the rollback", cand)
	} else {
		t.Logf("first failed answer of v%d → rollback in effect: %d ms, %d candidate answers (%d failed)", cand, inEffect.Sub(firstFailed).Milliseconds(), n, failed)
	}
	if len(after) > 0 {
		t.Errorf("%d client-visible errors in requests sent after the rollback was in effect (%s):\n%s",
			len(after), inEffect.Format("15:04:05.000"), strings.Join(after[:min(10, len(after))], "\n"))
	}
	if fail.CandidateRequests > 200 {
		t.Errorf("the Fail came after %d candidate requests; a 30 %% failure rate against a 2 %% rule should show within a few dozen", fail.CandidateRequests)
	}
}

func deref(f *float64) any {
	if f == nil {
		return "-"
	}
	return *f
}
