package gateway

import (
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// flakyModel is fakeModel failing a share of its requests with a 500, by
// a seeded generator so a run is repeatable.
type flakyModel struct {
	base         string
	share        float64
	mu           sync.Mutex
	rng          *mrand.Rand
	hits, failed atomic.Uint64
}

func newFlakyModel(t *testing.T, share float64, seed uint64) *flakyModel {
	t.Helper()
	f := &flakyModel{share: share, rng: mrand.New(mrand.NewPCG(seed, seed^0x5eed))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		f.mu.Lock()
		fail := f.rng.Float64() < f.share
		f.mu.Unlock()
		if fail {
			f.failed.Add(1)
			oip.WriteError(w, http.StatusInternalServerError, "injected failure")
			return
		}
		(&fakeModel{}).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.base = srv.URL
	return f
}

// analysisRun reads the gateway's totals of a baseline and a candidate
// since a start reading, as the rollout controller does, and judges them.
type analysisRun struct {
	t                   *testing.T
	rec                 *metrics.Recorder
	baseline, candidate metrics.Key
	startB, startC      metrics.Totals
}

func startRun(t *testing.T, rec *metrics.Recorder, baseline, candidate metrics.Key) *analysisRun {
	a := &analysisRun{t: t, rec: rec, baseline: baseline, candidate: candidate}
	a.startB, _ = rec.Totals(baseline) // the zero reading when it served nothing yet
	a.startC, _ = rec.Totals(candidate)
	return a
}

func (a *analysisRun) observations() analysis.Observations {
	a.t.Helper()
	since := func(k metrics.Key, start metrics.Totals) analysis.Version {
		now, _ := a.rec.Totals(k)
		v, err := now.Since(start)
		if err != nil {
			a.t.Fatal(err)
		}
		return v
	}
	return analysis.Observations{Baseline: since(a.baseline, a.startB), Candidate: since(a.candidate, a.startC)}
}

// The rules both tests judge by. The latency rule's ceiling is far above
// any loopback answer: these tests check that the gateway's histograms
// reach the judge and are accepted by it, not how fast the machine is
// (the latency tests on simulated data are in internal/analysis).
func canarySpec(minSamples int) analysis.Spec {
	f := func(x float64) *float64 { return &x }
	return analysis.Spec{
		MinSamples: minSamples,
		Rules: []analysis.Rule{
			{Metric: analysis.ErrorRate, Max: f(0.02), MaxVsBaseline: f(0.005)},
			{Metric: analysis.LatencyP99Ms, Max: f(30_000)},
		},
	}
}

// totalsHarness serves one model with the given versions, breakers off
// so that every request reaches the version it was routed to.
func totalsHarness(t *testing.T, versions ...deployment.RouteVersion) *harness {
	return newHarness(t, func(c *Config) { c.Breaker.Disabled = true }, route("fraud", "production", versions...))
}

// A canary failing 30 % of its requests, at 20 % of the traffic beside a
// healthy baseline, judged after every request from the totals the
// gateway recorded, fails within the requests the judge's simulations
// predict (docs/analysis.md: median 12, at most 65 of 4,000 rollouts with
// this rule at 5 % traffic) and never passes first.
func TestTotalsFailAFailingCanary(t *testing.T) {
	base := newFlakyModel(t, 0, 1)
	canary := newFlakyModel(t, 0.30, 2)
	h := totalsHarness(t,
		remote(t, 1, 80, base.base, runtime.ProtocolOIP),
		remote(t, 2, 20, canary.base, runtime.ProtocolOIP))
	kb := metrics.Key{Model: "fraud", Environment: "production", Version: 1}
	kc := metrics.Key{Model: "fraud", Environment: "production", Version: 2}
	run := startRun(t, h.rec, kb, kc)
	spec := canarySpec(200)

	const maxCanaryRequests = 100
	var v analysis.Verdict
	for {
		resp, _ := h.do("POST", "/v2/models/fraud/infer", inferBody)
		if resp.StatusCode != 200 && resp.StatusCode != 500 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		h.settle()
		v = analysis.Judge(spec, run.observations())
		if v.Outcome == analysis.Fail || v.Outcome == analysis.Error || v.Outcome == analysis.Pass {
			break
		}
		if v.Candidate.Requests > maxCanaryRequests {
			break
		}
	}
	if v.Outcome != analysis.Fail {
		t.Fatalf("verdict %s after %d canary requests (%d errors): %s", v.Outcome, v.Candidate.Requests, v.Candidate.Errors, v.Reason)
	}
	var failed []string
	for _, c := range v.Checks {
		if c.Outcome == analysis.Fail {
			failed = append(failed, c.Metric+"/"+c.Kind)
		}
	}
	if len(failed) == 0 || !strings.HasPrefix(failed[0], string(analysis.ErrorRate)) {
		t.Errorf("failing checks %v; want the error rate's", failed)
	}
	t.Logf("failed after %d canary requests (%d errors) and %d baseline requests: %s",
		v.Candidate.Requests, v.Candidate.Errors, v.Baseline.Requests, v.Reason)

	// The totals are exactly what the upstreams saw and answered.
	obs := run.observations()
	for _, c := range []struct {
		name string
		got  analysis.Version
		up   *flakyModel
	}{{"baseline", obs.Baseline, base}, {"canary", obs.Candidate, canary}} {
		if c.got.Requests != c.up.hits.Load() || c.got.Errors != c.up.failed.Load() || c.got.Latency.Total() != c.got.Requests {
			t.Errorf("%s totals: %d requests, %d errors, %d latencies; the upstream got %d and failed %d",
				c.name, c.got.Requests, c.got.Errors, c.got.Latency.Total(), c.up.hits.Load(), c.up.failed.Load())
		}
	}
	if sent := uint64(h.sent); obs.Baseline.Requests+obs.Candidate.Requests != sent {
		t.Errorf("%d + %d requests in the totals, %d sent", obs.Baseline.Requests, obs.Candidate.Requests, sent)
	}
}

// An A/A pair — two healthy versions on one model server — whose
// analysis starts after some traffic already flowed: the judge sees only
// the traffic since the start reading, is Inconclusive until both
// versions served minSamples requests since then, and passes at the
// first look after, and on every look after that.
func TestTotalsPassAnAAPairAfterMinSamples(t *testing.T) {
	up := newFlakyModel(t, 0, 3)
	h := totalsHarness(t,
		remote(t, 1, 50, up.base, runtime.ProtocolOIP),
		remote(t, 2, 50, up.base, runtime.ProtocolOIP))
	kb := metrics.Key{Model: "fraud", Environment: "production", Version: 1}
	kc := metrics.Key{Model: "fraud", Environment: "production", Version: 2}
	send := func() {
		t.Helper()
		if resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody); resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, b)
		}
		h.settle()
	}
	const warmUp, minSamples = 150, 200
	for range warmUp {
		send()
	}
	run := startRun(t, h.rec, kb, kc)
	if run.startB.Series == 0 || run.startC.Series == 0 {
		t.Fatal("the start readings have no series after the warm-up")
	}
	spec := canarySpec(minSamples)

	passes := 0
	for passes < 100 {
		send()
		obs := run.observations()
		v := analysis.Judge(spec, obs)
		enough := obs.Baseline.Requests >= minSamples && obs.Candidate.Requests >= minSamples
		want := analysis.Inconclusive
		if enough {
			want = analysis.Pass
			passes++
		}
		if v.Outcome != want {
			t.Fatalf("after %d+%d requests since the start: %s, want %s: %s",
				obs.Baseline.Requests, obs.Candidate.Requests, v.Outcome, want, v.Reason)
		}
	}
	obs := run.observations()
	if got, want := obs.Baseline.Requests+obs.Candidate.Requests, uint64(h.sent-warmUp); got != want {
		t.Errorf("%d requests since the start reading, %d sent", got, want)
	}
	if got := up.hits.Load(); got != uint64(h.sent) {
		t.Errorf("the model server got %d requests, %d sent", got, h.sent)
	}
}
