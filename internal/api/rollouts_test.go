package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/api/apitest"
	"github.com/slipway-ml/slipway/internal/domain"
)

// rolloutSpec is a canary of candidate in production with the given
// steps (YAML list items, indented for the steps block).
func rolloutSpec(candidate string, steps ...string) string {
	return "kind: Rollout\nmodel: m\nenvironment: production\ncandidate: " + candidate +
		"\nstrategy:\n  canary:\n    steps:\n" + strings.Join(steps, "")
}

const (
	holdStep    = "      - weight: 10\n        pause: 1h\n"
	approveStep = "      - approval: {role: approver}\n"
	fullStep    = "      - weight: 100\n"
)

// rolloutHarness is a server with model m, versions 1–3, and version 1
// deployed in production.
func rolloutHarness(t *testing.T) *harness {
	h := newHarness(t, apitest.WithRollouts(t))
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	for i := range 3 {
		h.pushVersion("m", []byte{byte('a' + i)}, nil)
	}
	h.mustCall(http.MethodPut, "/api/v1/models/m/deployments/production", h.admin, api.DeployRequest{Version: "1"}, http.StatusOK)
	return h
}

func rolloutPath(id int64, verb string) string {
	p := "/api/v1/rollouts/" + strconv.FormatInt(id, 10)
	if verb != "" {
		p += "/" + verb
	}
	return p
}

// storedRollout reads a rollout straight from the store.
func (h *harness) storedRollout(id int64) domain.Rollout {
	h.t.Helper()
	r, err := h.store.GetRollout(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// waitPhase waits until the stored rollout reaches phase with its state
// in effect (the controller's loop runs beside the test).
func (h *harness) waitPhase(id int64, phase domain.RolloutPhase) domain.Rollout {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := h.storedRollout(id)
		if r.Phase == phase && r.InEffect {
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("rollout %d is %s (in effect %v: %s), want %s", id, r.Phase, r.InEffect, r.Reason, phase)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRolloutLifecycle starts a rollout, reads its status, pauses,
// resumes and aborts it, checking the stored state and the deployment
// after each command.
func TestRolloutLifecycle(t *testing.T) {
	h := rolloutHarness(t)
	dan := h.token("dan", domain.RoleDeployer)
	viewer := h.token("vic", domain.RoleViewer)

	r := h.mustCall(http.MethodPost, "/api/v1/rollouts?file=canary.yaml", dan, rolloutSpec("2", holdStep, fullStep), http.StatusCreated)
	ro := decode[domain.Rollout](t, r)
	if ro.ID == 0 || ro.Baseline != 1 || ro.Candidate != 2 || ro.CreatedBy != "dan" || ro.Phase != domain.RolloutProgressing {
		t.Fatalf("started %+v", ro)
	}
	if loc := r.header.Get("Location"); loc != rolloutPath(ro.ID, "") {
		t.Errorf("Location %q", loc)
	}
	ro = h.waitPhase(ro.ID, domain.RolloutProgressing)

	st := decode[api.RolloutStatus](t, h.mustCall(http.MethodGet, rolloutPath(ro.ID, ""), viewer, nil, http.StatusOK))
	if st.Rollout.ID != ro.ID || len(st.Steps) < 3 || st.Steps[0].Description != "start candidate at 0 %" {
		t.Fatalf("status %+v", st)
	}
	if st.Rollout.Step >= len(st.Steps) || st.Steps[st.Rollout.Step].Kind != "pause" {
		t.Fatalf("status step %d of %+v, want the pause", st.Rollout.Step, st.Steps)
	}
	if st.Rollout.Traffic.Candidate != 10 {
		t.Fatalf("traffic %+v, want the candidate at 10", st.Rollout.Traffic)
	}

	paused := decode[domain.Rollout](t, h.mustCall(http.MethodPost, rolloutPath(ro.ID, "pause"), dan, api.RolloutCommandRequest{Reason: "looking at logs"}, http.StatusOK))
	if paused.Phase != domain.RolloutPaused || !strings.Contains(paused.Reason, "looking at logs") {
		t.Fatalf("paused %+v", paused)
	}
	last := paused.History[len(paused.History)-1]
	if last.By != "dan" || last.To != domain.RolloutPaused {
		t.Fatalf("last transition %+v", last)
	}
	// No body at all is a command without a reason.
	resumed := decode[domain.Rollout](t, h.mustCall(http.MethodPost, rolloutPath(ro.ID, "resume"), dan, nil, http.StatusOK))
	if resumed.Phase != domain.RolloutProgressing {
		t.Fatalf("resumed %+v", resumed)
	}
	aborted := decode[domain.Rollout](t, h.mustCall(http.MethodPost, rolloutPath(ro.ID, "abort"), dan, `{"comment": "wrong model"}`, http.StatusOK))
	if aborted.Phase != domain.RolloutAborted || !strings.Contains(aborted.Reason, "wrong model") {
		t.Fatalf("aborted %+v", aborted)
	}
	ro = h.waitPhase(ro.ID, domain.RolloutAborted)
	if ro.Traffic.Candidate != 0 || ro.Traffic.Baseline != 100 {
		t.Fatalf("aborted traffic %+v", ro.Traffic)
	}
	dep, err := h.store.GetDeployment(context.Background(), "m", "production")
	if err != nil {
		t.Fatal(err)
	}
	if dep.StableVersion() != 1 {
		t.Fatalf("after abort the deployment's stable version is %d", dep.StableVersion())
	}
	for _, v := range dep.Versions {
		if v.Version == 2 && v.Weight != 0 {
			t.Fatalf("after abort version 2 still takes %d %%", v.Weight)
		}
	}

	// Listings filter on phase and activity.
	l := decode[api.List[domain.Rollout]](t, h.mustCall(http.MethodGet, "/api/v1/rollouts?model=m&env=production&phase=aborted", viewer, nil, http.StatusOK))
	if len(l.Items) != 1 || l.Items[0].ID != ro.ID {
		t.Fatalf("aborted listing %+v", l)
	}
	l = decode[api.List[domain.Rollout]](t, h.mustCall(http.MethodGet, "/api/v1/rollouts?active=true", viewer, nil, http.StatusOK))
	if len(l.Items) != 0 {
		t.Fatalf("active listing %+v", l)
	}

	// A command the phase does not take is a 409 that changes nothing.
	before, rev := h.fingerprint(), h.storedRollout(ro.ID).Revision
	for _, verb := range []string{"pause", "resume", "promote", "abort", "undo"} {
		r := h.call(http.MethodPost, rolloutPath(ro.ID, verb), dan, nil)
		if r.status != http.StatusConflict || !strings.Contains(r.problem.Detail, "aborted") {
			t.Errorf("%s an aborted rollout: %d %s", verb, r.status, r.body)
		}
	}
	if !h.fingerprint().equal(before) || h.storedRollout(ro.ID).Revision != rev {
		t.Fatal("refused commands changed stored state")
	}
}

// TestRolloutApproval: an approval step refuses the rollout's starter
// (separation of duties), a viewer and a role the step does not name,
// then lets an approver through, and the rollout succeeds.
func TestRolloutApproval(t *testing.T) {
	h := rolloutHarness(t)
	bob := h.token("bob", domain.RoleApprover)
	viewer := h.token("vic", domain.RoleViewer)
	author := h.token("ann", domain.RoleAuthor)
	dan := h.token("dan", domain.RoleDeployer)

	// An admin starts it: its role allows approving, so only separation
	// of duties stops it approving its own rollout.
	ro := decode[domain.Rollout](t, h.mustCall(http.MethodPost, "/api/v1/rollouts", h.admin,
		rolloutSpec("3", "      - weight: 20\n", approveStep, fullStep), http.StatusCreated))
	ro = h.waitPhase(ro.ID, domain.RolloutAwaitingApproval)
	before := h.fingerprint()
	cases := []struct {
		name, verb, token string
		want              int
		detail            string
	}{
		{"starter approves", "approve", h.admin, http.StatusForbidden, "separation of duties"},
		{"viewer approves", "approve", viewer, http.StatusForbidden, "viewer"},
		{"viewer rejects", "reject", viewer, http.StatusForbidden, "viewer"},
		{"author approves", "approve", author, http.StatusForbidden, "needs an approval by approver"},
		{"deployer approves", "approve", dan, http.StatusForbidden, "needs an approval by approver"},
		{"deployer promotes past the approval", "promote", dan, http.StatusForbidden, "approval by approver ahead"},
		{"approver pauses", "pause", bob, http.StatusForbidden, "needs deployer"},
		{"resume while awaiting", "resume", dan, http.StatusConflict, "awaiting_approval"},
		{"undo before promoting", "undo", dan, http.StatusConflict, "awaiting_approval"},
	}
	for _, c := range cases {
		r := h.call(http.MethodPost, rolloutPath(ro.ID, c.verb), c.token, api.RolloutCommandRequest{Reason: "x"})
		if r.status != c.want || !strings.Contains(r.problem.Detail, c.detail) {
			t.Errorf("%s: %d %q, want %d naming %q", c.name, r.status, r.problem.Detail, c.want, c.detail)
		}
	}
	if !h.fingerprint().equal(before) || h.storedRollout(ro.ID).Revision != ro.Revision {
		t.Fatal("refused approvals changed stored state")
	}

	got := decode[domain.Rollout](t, h.mustCall(http.MethodPost, rolloutPath(ro.ID, "approve"), bob, api.RolloutCommandRequest{Comment: "dashboards look fine"}, http.StatusOK))
	if len(got.Approvals) != 1 || got.Approvals[0].By != "bob" || !got.Approvals[0].Approve || got.Approvals[0].Comment != "dashboards look fine" {
		t.Fatalf("approvals %+v", got.Approvals)
	}
	done := h.waitPhase(ro.ID, domain.RolloutSucceeded)
	if done.Traffic.Candidate != 100 {
		t.Fatalf("succeeded with traffic %+v", done.Traffic)
	}
	dep, err := h.store.GetDeployment(context.Background(), "m", "production")
	if err != nil {
		t.Fatal(err)
	}
	if dep.StableVersion() != 3 {
		t.Fatalf("after success the stable version is %d", dep.StableVersion())
	}
}

// TestRolloutApplyAndSupersede starts a rollout through apply, refuses
// a second one for the same model and environment, and supersedes it on
// request.
func TestRolloutApplyAndSupersede(t *testing.T) {
	h := rolloutHarness(t)
	dan := h.token("dan", domain.RoleDeployer)
	viewer := h.token("vic", domain.RoleViewer)
	spec := rolloutSpec("2", holdStep, fullStep)

	before := h.fingerprint()
	if r := h.call(http.MethodPost, "/api/v1/apply?file=r.yaml", viewer, spec); r.status != http.StatusForbidden {
		t.Fatalf("viewer applies a rollout: %d %s", r.status, r.body)
	}
	if !h.fingerprint().equal(before) {
		t.Fatal("a refused apply changed stored state")
	}
	r := h.mustCall(http.MethodPost, "/api/v1/apply?file=r.yaml", dan, spec, http.StatusCreated)
	res := decode[api.ApplyResponse](t, r)
	if res.Kind != "Rollout" || res.Rollout == nil || res.Rollout.Candidate != 2 || res.GatePolicy != nil {
		t.Fatalf("apply answered %s", r.body)
	}
	first := h.waitPhase(res.Rollout.ID, domain.RolloutProgressing)

	before = h.fingerprint()
	again := h.call(http.MethodPost, "/api/v1/rollouts", dan, rolloutSpec("3", holdStep, fullStep))
	if again.status != http.StatusConflict || !strings.Contains(again.problem.Detail, "supersede") {
		t.Fatalf("a second rollout: %d %s", again.status, again.body)
	}
	if !h.fingerprint().equal(before) || h.storedRollout(first.ID).Revision != first.Revision {
		t.Fatal("a refused second rollout changed stored state")
	}
	second := decode[domain.Rollout](t, h.mustCall(http.MethodPost, "/api/v1/rollouts?supersede=true", dan, rolloutSpec("3", holdStep, fullStep), http.StatusCreated))
	if second.Candidate != 3 || second.Baseline != 1 {
		t.Fatalf("second rollout %+v", second)
	}
	if old := h.storedRollout(first.ID); old.Phase != domain.RolloutSuperseded {
		t.Fatalf("the first rollout is %s", old.Phase)
	}
	l := decode[api.List[domain.Rollout]](t, h.mustCall(http.MethodGet, "/api/v1/rollouts?limit=1", viewer, nil, http.StatusOK))
	if len(l.Items) != 1 || l.Items[0].ID != second.ID || l.NextCursor == "" {
		t.Fatalf("first page %+v", l)
	}
	l = decode[api.List[domain.Rollout]](t, h.mustCall(http.MethodGet, "/api/v1/rollouts?limit=1&cursor="+l.NextCursor, viewer, nil, http.StatusOK))
	if len(l.Items) != 1 || l.Items[0].ID != first.ID {
		t.Fatalf("second page %+v", l)
	}
}

// TestRolloutBadInput: every malformed or refused request gets its
// status and a detail naming the problem, and stores nothing.
func TestRolloutBadInput(t *testing.T) {
	h := rolloutHarness(t)
	dan := h.token("dan", domain.RoleDeployer)
	viewer := h.token("vic", domain.RoleViewer)
	approver := h.token("bob", domain.RoleApprover)
	ro := decode[domain.Rollout](t, h.mustCall(http.MethodPost, "/api/v1/rollouts", dan, rolloutSpec("2", holdStep, fullStep), http.StatusCreated))
	h.waitPhase(ro.ID, domain.RolloutProgressing)
	id := rolloutPath(ro.ID, "")
	good := rolloutSpec("3", holdStep, fullStep)

	cases := []struct {
		name, method, path, token string
		body                      any
		want                      int
		detail                    string
	}{
		{"yaml error", "POST", "/api/v1/rollouts?file=r.yaml", dan, "kind: Rollout\nmodel: [\n", 400, "r.yaml:2"},
		{"unknown field", "POST", "/api/v1/rollouts?file=r.yaml", dan, good + "owner: me\n", 400, `r.yaml:11: rollout: unknown field "owner"`},
		{"bad weight", "POST", "/api/v1/rollouts?file=r.yaml", dan, rolloutSpec("3", "      - weight: 150\n"), 400, "r.yaml:8: canary step 1: weight 150"},
		{"not a rollout", "POST", "/api/v1/rollouts?file=r.yaml", dan, "kind: GatePolicy\nmodel: m\nenvironment: production\n", 400, "r.yaml"},
		{"too large", "POST", "/api/v1/rollouts", dan, good + "#" + strings.Repeat("x", 64<<10), 413, "larger than"},
		{"long file name", "POST", "/api/v1/rollouts?file=" + strings.Repeat("f", 300), dan, good, 400, "file name"},
		{"bad supersede", "POST", "/api/v1/rollouts?supersede=perhaps", dan, good, 400, "supersede"},
		{"viewer starts", "POST", "/api/v1/rollouts", viewer, good, 403, "needs deployer"},
		{"approver starts", "POST", "/api/v1/rollouts", approver, good, 403, "needs deployer"},
		{"unknown candidate", "POST", "/api/v1/rollouts", dan, rolloutSpec("9", holdStep), 404, "9"},
		{"nothing deployed", "POST", "/api/v1/rollouts", dan, strings.Replace(good, "production", "staging", 1), 409, "not deployed"},
		{"unknown environment", "POST", "/api/v1/rollouts", dan, strings.Replace(good, "production", "qa", 1), 400, "qa"},
		{"already active", "POST", "/api/v1/rollouts", dan, good, 409, "supersede"},
		{"apply no kind", "POST", "/api/v1/apply", dan, "model: m\n", 400, "kind: Rollout"},
		{"non-numeric id", "GET", "/api/v1/rollouts/seven", viewer, nil, 400, "must be a number"},
		{"zero id", "GET", "/api/v1/rollouts/0", viewer, nil, 400, "must be a number"},
		{"missing rollout", "GET", "/api/v1/rollouts/999", viewer, nil, 404, ""},
		{"command on missing rollout", "POST", "/api/v1/rollouts/999/pause", dan, nil, 404, ""},
		{"command with bad id", "POST", "/api/v1/rollouts/x/abort", dan, nil, 400, "must be a number"},
		{"unknown verb", "POST", id + "/frobnicate", dan, nil, 404, "no endpoint"},
		{"viewer pauses", "POST", id + "/pause", viewer, nil, 403, "needs deployer"},
		{"approver aborts", "POST", id + "/abort", approver, nil, 403, "needs deployer"},
		{"no token", "POST", id + "/abort", "", nil, 401, "bearer"},
		{"unknown body field", "POST", id + "/pause", dan, `{"why": "x"}`, 400, "why"},
		{"body not JSON", "POST", id + "/pause", dan, `{"reason":`, 400, "not valid JSON"},
		{"trailing data", "POST", id + "/pause", dan, `{"reason": "a"} {}`, 400, "after the JSON"},
		{"wrong content type", "POST", id + "/pause", dan, []byte(`{"reason": "a"}`), 400, "application/json"},
		{"reason and comment disagree", "POST", id + "/pause", dan, `{"reason": "a", "comment": "b"}`, 400, "different"},
		{"reason too long", "POST", id + "/pause", dan, api.RolloutCommandRequest{Reason: strings.Repeat("r", 2000)}, 400, "1024"},
		{"body too large", "POST", id + "/pause", dan, `{"reason": "` + strings.Repeat("r", 70<<10) + `"}`, 413, "larger than"},
		{"resume while progressing", "POST", id + "/resume", dan, nil, 409, "progressing"},
		{"undo while progressing", "POST", id + "/undo", dan, nil, 409, "progressing"},
		{"approve without an approval step", "POST", id + "/approve", approver, nil, 409, ""},
		{"unknown phase", "GET", "/api/v1/rollouts?phase=won", viewer, nil, 400, "not one of pending"},
		{"bad active", "GET", "/api/v1/rollouts?active=maybe", viewer, nil, 400, "active"},
		{"unknown env filter", "GET", "/api/v1/rollouts?env=qa", viewer, nil, 400, "qa"},
		{"env and environment disagree", "GET", "/api/v1/rollouts?env=dev&environment=staging", viewer, nil, 400, "disagree"},
		{"unknown model filter", "GET", "/api/v1/rollouts?model=ghost", viewer, nil, 404, "ghost"},
		{"bad model filter", "GET", "/api/v1/rollouts?model=Bad!", viewer, nil, 400, "must match"},
		{"bad limit", "GET", "/api/v1/rollouts?limit=5000", viewer, nil, 400, "limit"},
		{"bad cursor", "GET", "/api/v1/rollouts?cursor=nope!", viewer, nil, 400, "cursor"},
	}
	for _, c := range cases {
		before, rev := h.fingerprint(), h.storedRollout(ro.ID).Revision
		r := h.call(c.method, c.path, c.token, c.body)
		if r.status != c.want || !strings.Contains(r.problem.Detail, c.detail) {
			t.Errorf("%s: %d %q, want %d naming %q", c.name, r.status, r.problem.Detail, c.want, c.detail)
		}
		if !h.fingerprint().equal(before) || h.storedRollout(ro.ID).Revision != rev {
			t.Errorf("%s: stored state changed", c.name)
		}
	}

	// Wrong methods are 405 with Allow.
	for _, c := range []struct{ method, path, allow string }{
		{"GET", id + "/pause", "POST"},
		{"DELETE", id, "GET, HEAD"},
		{"PUT", "/api/v1/rollouts", "GET, HEAD, POST"},
	} {
		r := h.call(c.method, c.path, dan, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", c.method, c.path, r.status, r.header.Get("Allow"), c.allow)
		}
	}
}

// TestRolloutsOff: a server without a controller answers 503 on every
// rollout endpoint and still applies gate policies.
func TestRolloutsOff(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/rollouts"}, {"GET", "/api/v1/rollouts"}, {"GET", "/api/v1/rollouts/1"}, {"POST", "/api/v1/rollouts/1/pause"},
		{"POST", "/api/v1/apply"},
	} {
		r := h.call(c.method, c.path, h.admin, rolloutSpec("2", holdStep))
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.problem.Detail, "rollout controller") {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
}
