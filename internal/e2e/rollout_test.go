package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
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

	r := srv.startRollout(t, fmt.Sprintf(healthyCanary, 3, 600))
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
			if v.CandidateRequests < 600 || v.BaselineRequests < 600 || len(v.Evidence) == 0 {
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
// controller put v1 back by itself — v1 alone at 100, the Fail verdict
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
	if w := weights(d.Deployment); !maps.Equal(w, map[int]int{1: 100}) || d.StableVersion() != 1 {
		t.Errorf("after the rollback: weights %v stable %d, want 1 alone at 100 (v%d no longer served)", w, d.StableVersion(), cand)
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

// killedCanary has a floor high enough that the canary is still at its
// first weight when its upstream is killed.
const killedCanary = `kind: Rollout
model: cancer
environment: production
candidate: 5
strategy:
  canary:
    steps:
      - weight: 25
      - weight: 100
analysis:
  minSamples: 5000
  rules:
    - metric: error_rate
      max: 0.02
progressDeadline: 2m
`

// TestRolloutKilledUpstreamFallsBack rolls out an external candidate, a
// small Open Inference Protocol server, and kills that server mid-canary
// under load. With fallback on (the default) clients must see no error at
// all — v1 answers in the dead candidate's place — and the rollout must
// count the candidate's failures and roll back.
func TestRolloutKilledUpstreamFallsBack(t *testing.T) {
	t.Parallel()
	up := newKillableUpstream(t)
	srv := rolloutServer(t, t.TempDir())
	c := srv.admin()
	c.ok("version", "push", "cancer", "--format", "external", "--set", "url="+up.url, "--set", "protocol=oip-v2")
	load := startLoad(t, srv, "cancer", 6)
	load.waitRequests(300)

	r := srv.startRollout(t, killedCanary)
	poll(t, 60*time.Second, "the candidate to answer 200 requests", func() (bool, string) {
		n := byVersion(load.records())["5"]
		return n >= 200, fmt.Sprintf("%d answers of v5; %s", n, describeRollout(srv.rolloutStatus(t, r.ID).Rollout))
	})
	if cur := srv.rolloutStatus(t, r.ID).Rollout; cur.Phase.Terminal() || cur.Traffic.Candidate != 25 {
		t.Fatalf("before the kill: %s", describeRollout(cur))
	}
	killed := time.Now()
	up.kill()
	// With the fix, the candidate's failures fail it within a few dozen
	// of them; 20 s is a safety net.
	var st api.RolloutStatus
	deadline := time.Now().Add(20 * time.Second)
	for {
		st = srv.rolloutStatus(t, r.ID)
		if ended(st.Rollout) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r = st.Rollout
	load.waitRequests(1000)
	load.halt()
	recs := load.records()
	fallbacks := 0
	for _, rec := range recs {
		if rec.fallback == "5" {
			fallbacks++
		}
	}
	t.Logf("%d requests, %d client-visible errors; %d answered by v1 in v5's place; by version %v",
		len(recs), load.errors.Load(), fallbacks, byVersion(recs))
	if bad := badOnes(recs, 10); len(bad) > 0 {
		t.Errorf("clients saw %d errors with fallback on (first %d):\n%s", load.errors.Load(), len(bad), strings.Join(bad, "\n"))
	}
	if fallbacks == 0 {
		t.Errorf("no request fell back from the dead candidate to v1")
	}
	if !ended(r) {
		live := "no live verdict"
		if st.Live != nil {
			v := st.Live.Verdict
			live = fmt.Sprintf("live verdict %s on %d candidate requests (%d errors): %s", v.Outcome, v.Candidate.Requests, v.Candidate.Errors, v.Reason)
		}
		if t.Failed() {
			t.Fatalf("after the kill: %s; %s", describeRollout(r), live)
		}
		t.Fatalf("%d s after its upstream died the candidate is still %s; %d requests routed to it were answered by v1: %s",
			int(time.Since(killed).Seconds()), describeRollout(r), fallbacks, live)
	}
	t.Logf("rolled back %d ms after the kill", r.UpdatedAt.Sub(killed).Milliseconds())
	if r.Phase != domain.RolloutRolledBack {
		t.Fatalf("the rollout of the dead candidate ended %s", describeRollout(r))
	}
	fail := r.Verdicts[len(r.Verdicts)-1]
	t.Logf("rolled back: %s (on %d candidate requests)", r.Reason, fail.CandidateRequests)
	if fail.Outcome != domain.AnalysisFail {
		t.Errorf("last verdict %+v", fail)
	}
	d := srv.deployment(t, "cancer", "production")
	if w := weights(d.Deployment); !maps.Equal(w, map[int]int{1: 100}) {
		t.Errorf("after the rollback: weights %v, want 1 alone at 100", w)
	}
	c.ok("audit", "verify")
}

// aaCanary is a quick canary for the A/A runs: the healthy canary's
// rules with a smaller floor.
const aaCanary = `kind: Rollout
model: cancer
environment: production
candidate: %d
strategy:
  canary:
    steps:
      - weight: 10
      - weight: 50
      - weight: 100
analysis:
  minSamples: 200
  rules:
    - metric: error_rate
      max: 0.02
      maxVsBaseline: 0.01
    - metric: latency_p99_ms
      maxRatioVsBaseline: 2
progressDeadline: 2m
`

// TestRolloutAA rolls v1 and v4 — the same model file pushed twice —
// over each other a few times under healthy load: no run may be rolled
// back. (The false-rollback rate itself is measured over many more runs
// of the judge by the analysis package and bench/rollback.)
func TestRolloutAA(t *testing.T) {
	t.Parallel()
	runs := 4
	if s := os.Getenv("SLIPWAY_E2E_AA_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("SLIPWAY_E2E_AA_RUNS=%q must be a whole number from 1", s)
		}
		runs = n
	}
	srv := rolloutServer(t, t.TempDir())
	load := startLoad(t, srv, "cancer", 4)
	load.waitRequests(300)
	outcomes := map[domain.RolloutPhase]int{}
	var failed []string
	for i := range runs {
		cand := []int{4, 1}[i%2]
		r := srv.startRollout(t, fmt.Sprintf(aaCanary, cand))
		r = srv.awaitRollout(t, r.ID, 90*time.Second, fmt.Sprintf("A/A run %d to end", i+1), ended)
		outcomes[r.Phase]++
		if r.Phase != domain.RolloutSucceeded {
			failed = append(failed, describeRollout(r))
		}
	}
	load.halt()
	t.Logf("%d A/A rollouts: %v; %d requests, %d client-visible errors", runs, outcomes, load.total.Load(), load.errors.Load())
	if len(failed) > 0 {
		t.Errorf("A/A rollouts that did not succeed:\n%s", strings.Join(failed, "\n"))
	}
	if bad := badOnes(load.records(), 10); len(bad) > 0 {
		t.Errorf("client-visible errors:\n%s", strings.Join(bad, "\n"))
	}
}

// blueGreen switches to candidate %d after one smoke case: request %s,
// expecting %s.
const blueGreen = `kind: Rollout
model: cancer
environment: production
candidate: %d
strategy:
  blueGreen:
    smoke:
      - name: holdout row 7
        request: %s
        expect: %s
`

// TestRolloutBlueGreenSmoke switches production from v1 to v4 (the same
// model) after a smoke request whose expected answer is what v1 really
// answers for a holdout row, with no client error under load; then a
// blue-green back to v1 whose expectation is wrong is rolled back with
// the smoke failure as its reason, and v4 keeps all traffic.
func TestRolloutBlueGreenSmoke(t *testing.T) {
	t.Parallel()
	srv := rolloutServer(t, t.TempDir())
	body := inferBody(t, loadParity(t, "v1.json").Rows[7:8])
	ans := srv.gatewayClient(t).do(http.MethodPost, "/v2/models/cancer/versions/1/infer", body, nil)
	var v1 struct {
		Outputs json.RawMessage `json:"outputs"`
	}
	if err := json.Unmarshal(ans.body, &v1); ans.status != http.StatusOK || err != nil || len(v1.Outputs) == 0 {
		t.Fatalf("v1's answer: %s (%v)", ans, err)
	}
	expect := `{"outputs": ` + string(v1.Outputs) + `}`
	load := startLoad(t, srv, "cancer", 2)
	load.waitRequests(200)

	r := srv.startRollout(t, fmt.Sprintf(blueGreen, 4, body, expect))
	r = srv.awaitRollout(t, r.ID, 60*time.Second, "the blue-green to end", ended)
	if r.Phase != domain.RolloutSucceeded {
		t.Fatalf("the blue-green with v1's own answer ended %s", describeRollout(r))
	}
	if w := weights(srv.deployment(t, "cancer", "production").Deployment); !maps.Equal(w, map[int]int{4: 100}) {
		t.Errorf("after the switch: weights %v, want 4 alone at 100", w)
	}

	var out struct {
		Outputs []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(ans.body, &out); err != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 1 {
		t.Fatalf("v1's answer: %s (%v)", ans, err)
	}
	wrong := fmt.Sprintf(`{"outputs": [{"data": [%v]}]}`, out.Outputs[0].Data[0]+0.25)
	r = srv.startRollout(t, fmt.Sprintf(blueGreen, 1, body, wrong))
	r = srv.awaitRollout(t, r.ID, 60*time.Second, "the blue-green with a wrong expectation to end", ended)
	load.halt()
	if r.Phase != domain.RolloutRolledBack || !strings.Contains(r.Reason, "1 of 1 smoke request failed") || !strings.Contains(r.Reason, "expected") {
		t.Errorf("the blue-green with a wrong expectation ended %s", describeRollout(r))
	}
	t.Logf("smoke failure: %s", r.Reason)
	if w := weights(srv.deployment(t, "cancer", "production").Deployment); !maps.Equal(w, map[int]int{4: 100}) {
		t.Errorf("after the failed smoke: weights %v, want 4 alone at 100", w)
	}
	recs := load.records()
	t.Logf("%d requests during the two blue-greens, %d client-visible errors; by version %v", len(recs), load.errors.Load(), byVersion(recs))
	if bad := badOnes(recs, 10); len(bad) > 0 {
		t.Errorf("client-visible errors:\n%s", strings.Join(bad, "\n"))
	}
	srv.admin().ok("audit", "verify")
}

// TestRolloutSmokeFailureNamesTheCase runs a blue-green with two smoke
// cases, the second of them wrong: the rollback's reason must say which
// case failed, or a person reading it cannot tell among up to 32.
func TestRolloutSmokeFailureNamesTheCase(t *testing.T) {
	t.Parallel()
	srv := rolloutServer(t, t.TempDir())
	row := inferBody(t, loadParity(t, "v1.json").Rows[3:4])
	spec := fmt.Sprintf(`kind: Rollout
model: cancer
environment: production
candidate: 4
strategy:
  blueGreen:
    smoke:
      - name: answers at all
        request: %s
        expect: {model_name: cancer}
      - name: the impossible answer
        request: %s
        expect: {outputs: [{data: [2]}]}
`, row, row)
	r := srv.startRollout(t, spec)
	r = srv.awaitRollout(t, r.ID, 60*time.Second, "the blue-green to end", ended)
	if r.Phase != domain.RolloutRolledBack || !strings.Contains(r.Reason, "1 of 2 smoke requests failed") {
		t.Fatalf("ended %s", describeRollout(r))
	}
	if !strings.Contains(r.Reason, "the impossible answer") {
		t.Errorf("the rollback's reason does not name the smoke case that failed: %q", r.Reason)
	}
}

const shadowFirst = `kind: Rollout
model: cancer
environment: production
candidate: 3
strategy:
  shadow:
    duration: 1s
    steps:
      - weight: 50
      - weight: 100
analysis:
  minSamples: 200
  rules:
    - metric: error_rate
      max: 0.02
progressDeadline: 2m
`

// TestRolloutShadowFirst mirrors all live traffic to v3 for a second —
// clients get only v1's answers while the deployment carries the shadow
// — judges the mirrored answers, then goes on to the canary steps and
// succeeds.
func TestRolloutShadowFirst(t *testing.T) {
	t.Parallel()
	srv := rolloutServer(t, t.TempDir())
	load := startLoad(t, srv, "cancer", 4)
	load.waitRequests(200)
	r := srv.startRollout(t, shadowFirst)

	// While the mirror is in effect (between two readings of one
	// revision), the deployment carries it and only v1 answers.
	mirrored := false
	poll(t, 60*time.Second, "the mirror to be in effect", func() (bool, string) {
		r1 := srv.rolloutStatus(t, r.ID).Rollout
		if !r1.InEffect || r1.Traffic.ShadowPercent == 0 {
			return r1.Phase.Terminal() || r1.Traffic.Candidate > 0, describeRollout(r1)
		}
		from := time.Now()
		d := srv.deployment(t, "cancer", "production")
		load.waitRequests(50)
		to := time.Now()
		if r2 := srv.rolloutStatus(t, r.ID).Rollout; r2.Revision != r1.Revision {
			return false, "moved on during the check"
		}
		if sh := d.Routing.Shadow; sh == nil || sh.Version != 3 || sh.Percent != 100 || !maps.Equal(weights(d.Deployment), map[int]int{1: 100, 3: 0}) {
			t.Fatalf("the mirror is in effect (%s) but the deployment serves %v with shadow %+v", describeRollout(r1), weights(d.Deployment), sh)
		}
		for _, rec := range load.records() {
			if rec.start.After(from) && rec.end.Before(to) && rec.version != "1" {
				t.Fatalf("a client got an answer of version %q while v3 was only mirrored", rec.version)
			}
		}
		mirrored = true
		return true, ""
	})
	if !mirrored {
		t.Fatal("the rollout went past the mirror before the test saw it in effect")
	}
	r = srv.awaitRollout(t, r.ID, 90*time.Second, "the shadow-first rollout to end", ended)
	load.halt()
	if r.Phase != domain.RolloutSucceeded {
		t.Fatalf("the shadow-first rollout ended %s", describeRollout(r))
	}
	if len(r.Verdicts) == 0 || r.Verdicts[0].Outcome != domain.AnalysisPass || r.Verdicts[0].CandidateRequests < 200 || r.Verdicts[0].Step != 3 {
		t.Errorf("the first verdict should be a Pass on the mirrored answers at step 3: %+v", r.Verdicts)
	}
	if d := srv.deployment(t, "cancer", "production"); !maps.Equal(weights(d.Deployment), map[int]int{3: 100}) || d.Routing.Shadow != nil {
		t.Errorf("after success: weights %v shadow %+v", weights(d.Deployment), d.Routing.Shadow)
	}
	recs := load.records()
	t.Logf("%d requests, %d client-visible errors; by version %v; verdicts: %d", len(recs), load.errors.Load(), byVersion(recs), len(r.Verdicts))
	if bad := badOnes(recs, 10); len(bad) > 0 {
		t.Errorf("client-visible errors:\n%s", strings.Join(bad, "\n"))
	}
}
