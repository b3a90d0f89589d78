package e2e

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// crashCanary moves fast, so that kills land in every part of a rollout:
// starting, each weight, its pause and analysis, promoting, the end.
const crashCanary = `kind: Rollout
model: cancer
environment: production
candidate: %d
strategy:
  canary:
    steps:
      - weight: 10
        pause: 300ms
      - weight: 30
        pause: 300ms
      - weight: 60
        pause: 300ms
      - weight: 100
analysis:
  minSamples: 50
  rules:
    - metric: error_rate
      max: 0.05
progressDeadline: 1m
`

// crashRounds is how many kills TestRolloutCrashSafety makes: 20, or
// SLIPWAY_E2E_CRASH_ROUNDS for a longer run.
func crashRounds(t *testing.T) int {
	t.Helper()
	s := os.Getenv("SLIPWAY_E2E_CRASH_ROUNDS")
	if s == "" {
		return 20
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("SLIPWAY_E2E_CRASH_ROUNDS=%q must be a whole number from 1", s)
	}
	return n
}

// TestRolloutCrashSafety kills the server with SIGKILL at random moments
// of rollouts under load and restarts it on the same data dir each time.
// After every restart the rollout must have resumed or ended in a legal
// phase; once its stored state is in effect, the deployment's stored
// weights and stable version must be the ones the rollout's state
// implies, and the gateway must answer only from versions with a
// non-zero stored weight; and the audit log must verify. When a rollout
// ends, the next one starts (another candidate each time), so the kills
// cover every strategy step many times over.
func TestRolloutCrashSafety(t *testing.T) {
	t.Parallel()
	rounds := crashRounds(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLIPWAY_E2E_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SLIPWAY_E2E_CRASH_SEED=%q: %v", s, err)
		}
	}
	t.Logf("%d rounds, seed %d (SLIPWAY_E2E_CRASH_SEED repeats the kill moments)", rounds, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	dataDir := t.TempDir()
	srv := rolloutServer(t, dataDir)
	load := startLoad(t, srv, "cancer", 4)
	load.waitRequests(200)

	var (
		id       int64
		started  int
		ends     = map[domain.RolloutPhase]int{}
		killedAt = map[string]int{}
	)
	for round := range rounds {
		if id == 0 {
			stable := srv.deployment(t, "cancer", "production").StableVersion()
			cands := slices.DeleteFunc([]int{1, 3, 4}, func(v int) bool { return v == stable })
			r := srv.startRollout(t, fmt.Sprintf(crashCanary, cands[rng.IntN(len(cands))]))
			id, started = r.ID, started+1
		}
		time.Sleep(time.Duration(rng.IntN(900)) * time.Millisecond)
		before := srv.rolloutStatus(t, id).Rollout
		killedAt[fmt.Sprintf("%s step %d in_effect %v", before.Phase, before.Step, before.InEffect)]++
		srv.kill()
		srv = startServer(t, dataDir, rolloutFlags...)
		load.retarget(srv.gateway)

		r := checkAfterRestart(t, srv, id, round)
		if r.Phase.Terminal() {
			ends[r.Phase]++
			id = 0
		}
	}
	// The last rollout is left to end under load.
	if id != 0 {
		r := srv.awaitRollout(t, id, 90*time.Second, "the last rollout to end", ended)
		ends[r.Phase]++
		checkAfterRestart(t, srv, id, rounds)
	}
	load.halt()
	srv.admin().ok("audit", "verify")
	var where []string
	for k, n := range killedAt {
		where = append(where, fmt.Sprintf("%s ×%d", k, n))
	}
	slices.Sort(where)
	t.Logf("%d kills over %d rollouts, ended %v; %d requests, %d of them failed (the server was down for some)",
		rounds, started, ends, load.total.Load(), load.errors.Load())
	t.Logf("kills landed at: %s", strings.Join(where, "; "))
}

// checkAfterRestart waits for rollout id's stored state to be in effect
// after a restart and checks it against the deployment and the gateway.
// A rollout that moves on during a check is read again: only a reading
// between two equal revisions counts.
func checkAfterRestart(t *testing.T, srv *server, id int64, round int) domain.Rollout {
	t.Helper()
	g := srv.gatewayClient(t)
	body := inferBody(t, loadParity(t, "v1.json").Rows[:1])
	var last domain.Rollout
	poll(t, 60*time.Second, fmt.Sprintf("round %d: rollout %d in effect, its weights served", round, id), func() (bool, string) {
		r := srv.rolloutStatus(t, id).Rollout
		if _, err := domain.ParseRolloutPhase(string(r.Phase)); err != nil {
			t.Fatalf("round %d: rollout %d in an illegal phase: %v", round, id, err)
		}
		if err := r.Traffic.Validate(); err != nil {
			t.Fatalf("round %d: rollout %d stores invalid traffic: %v", round, id, err)
		}
		last = r
		if !r.InEffect {
			return false, describeRollout(r)
		}
		d := srv.deployment(t, "cancer", "production")
		served := map[string]int{}
		for range 20 {
			resp, err := g.send(t.Context(), http.MethodPost, "/v2/models/cancer/infer", body, nil)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if resp.status != http.StatusOK {
				t.Fatalf("round %d: the gateway answered %s after the rollout was in effect (%s)", round, resp, describeRollout(r))
			}
			served[resp.header.Get("X-Slipway-Version")]++
		}
		again := srv.rolloutStatus(t, id).Rollout
		if again.Revision != r.Revision {
			return false, "moved on during the check: " + describeRollout(again)
		}
		want, stable := storedWeights(r), r.Baseline
		if r.Phase == domain.RolloutPromoting || r.Phase == domain.RolloutSucceeded || (r.AliasesMoved && !r.Phase.Terminal()) {
			stable = r.Candidate
		}
		if got := weights(d.Deployment); !maps.Equal(got, want) || d.StableVersion() != stable {
			t.Fatalf("round %d: %s in effect, but the deployment (revision %d) serves %v with stable %d; want %v with stable %d",
				round, describeRollout(r), d.Revision, got, d.StableVersion(), want, stable)
		}
		for v := range served {
			n, err := strconv.Atoi(v)
			if err != nil || want[n] == 0 {
				t.Fatalf("round %d: version %q answered, but the stored weights are %v (%s); answers %v", round, v, want, describeRollout(r), served)
			}
		}
		return true, ""
	})
	srv.admin().ok("audit", "verify")
	return last
}
