package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/gate"
)

func withGates(c *api.Config) {
	c.Gates = gate.New(gate.Config{Store: c.Store, Versions: c.Registry, Datasets: c.Registry})
}

// Bad input to the gate endpoints gets a clear problem and changes
// nothing; the statuses map the service's refusals.
func TestGateEndpointsBadInput(t *testing.T) {
	h := newHarness(t, withGates)
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	h.pushVersion("m", []byte(`{}`), nil)
	approver := h.token("bob", domain.RoleApprover)
	viewer := h.token("vic", domain.RoleViewer)
	policy := "kind: GatePolicy\nmodel: m\nenvironment: staging\napprovals: {required: 1}\n"
	before := h.fingerprint()
	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		detail                    string
	}{
		{"yaml error", "POST", "/api/v1/apply?file=p.yaml", h.admin, "kind: GatePolicy\nmodel: [\n", 400, "p.yaml:2: not valid YAML"},
		{"unknown kind", "POST", "/api/v1/apply", h.admin, "kind: Widget\n", 400, `kind "Widget" is not one slipway applies`},
		{"no kind", "POST", "/api/v1/apply", h.admin, "model: m\n", 400, "has no kind"},
		{"not yaml", "POST", "/api/v1/apply", h.admin, ":\t:", 400, "not valid YAML"},
		{"unknown field", "POST", "/api/v1/apply?file=p.yaml", h.admin, policy + "owner: me\n", 400, `p.yaml:5: unknown field "owner"`},
		{"viewer applies", "POST", "/api/v1/apply", viewer, policy, 403, "needs the admin role"},
		{"unknown model", "POST", "/api/v1/apply", h.admin, strings.Replace(policy, "model: m", "model: ghost", 1), 404, ""},
		{"too large", "POST", "/api/v1/apply", h.admin, "kind: GatePolicy\n#" + strings.Repeat("x", gate.MaxPolicyBytes), 413, ""},
		{"promote without body", "POST", "/api/v1/models/m/promotions", h.admin, api.PromoteRequest{}, 400, `needs "version"`},
		{"promote unknown field", "POST", "/api/v1/models/m/promotions", h.admin, `{"version":"1","to":"dev","x":1}`, 400, "unknown field"},
		{"promote to nowhere", "POST", "/api/v1/models/m/promotions", h.admin, api.PromoteRequest{Version: "1", To: "qa"}, 400, "not one of dev, staging, production"},
		{"promote without policy", "POST", "/api/v1/models/m/promotions", h.admin, api.PromoteRequest{Version: "1", To: "staging"}, 409, "no gate policy"},
		{"viewer promotes", "POST", "/api/v1/models/m/promotions", viewer, api.PromoteRequest{Version: "1", To: "dev"}, 403, ""},
		{"approver promotes", "POST", "/api/v1/models/m/promotions", approver, api.PromoteRequest{Version: "1", To: "dev"}, 403, ""},
		{"promote missing version", "POST", "/api/v1/models/m/promotions", h.admin, api.PromoteRequest{Version: "7", To: "dev"}, 404, ""},
		{"bad promotion id", "GET", "/api/v1/promotions/x", viewer, nil, 400, "must be a number"},
		{"missing promotion", "POST", "/api/v1/promotions/9/approve", approver, api.DecisionRequest{}, 404, ""},
		{"bad state filter", "GET", "/api/v1/promotions?state=won", viewer, nil, 400, "not pending, rejected"},
		{"move champion by hand", "PUT", "/api/v1/models/m/aliases/champion", h.token("dan", domain.RoleDeployer), api.AliasRequest{Version: "1"}, 403, "moved by promotions"},
		{"missing policy", "GET", "/api/v1/models/m/policies/production", viewer, nil, 404, ""},
	}
	for _, c := range cases {
		r := h.call(c.method, c.path, c.token, c.body)
		if r.status != c.status || !strings.Contains(r.problem.Detail, c.detail) {
			t.Errorf("%s: %d %q, want %d containing %q", c.name, r.status, r.problem.Detail, c.status, c.detail)
		}
	}
	// Minting tokens above appended to the audit log; compare from here.
	before = h.fingerprint()
	h.call("POST", "/api/v1/apply", viewer, policy)
	h.call("POST", "/api/v1/models/m/promotions", approver, api.PromoteRequest{Version: "1", To: "dev"})
	if !h.fingerprint().equal(before) {
		t.Fatal("refused gate calls changed stored state")
	}

	// The working path: apply, promote (pending), approve.
	r := h.mustCall("POST", "/api/v1/apply?file=p.yaml", h.admin, policy, http.StatusCreated)
	if res := decode[api.ApplyResponse](t, r); res.Kind != "GatePolicy" || res.GatePolicy.Policy.Revision != 1 {
		t.Fatalf("apply: %s", r.body)
	}
	h.mustCall("POST", "/api/v1/apply?file=p.yaml", h.admin, policy, http.StatusOK)
	h.mustCall("GET", "/api/v1/models/m/policies/staging", viewer, nil, http.StatusOK)
	dan := h.token("dan2", domain.RoleDeployer)
	p := decode[domain.Promotion](t, h.mustCall("POST", "/api/v1/models/m/promotions", dan, api.PromoteRequest{Version: "1", To: "staging"}, http.StatusCreated))
	if p.State != domain.PromotionPending {
		t.Fatalf("promotion = %+v", p)
	}
	id := "/api/v1/promotions/" + strconv.FormatInt(p.ID, 10)
	h.mustCall("POST", id+"/reject", approver, api.DecisionRequest{}, http.StatusBadRequest)
	h.mustCall("POST", id+"/approve", viewer, api.DecisionRequest{}, http.StatusForbidden)
	p = decode[domain.Promotion](t, h.mustCall("POST", id+"/approve", approver, api.DecisionRequest{Comment: "ok"}, http.StatusOK))
	if p.State != domain.PromotionCompleted {
		t.Fatalf("approved = %+v", p)
	}
	h.mustCall("POST", id+"/approve", h.token("cy", domain.RoleApprover), api.DecisionRequest{}, http.StatusConflict)
	l := decode[api.List[domain.Promotion]](t, h.mustCall("GET", "/api/v1/models/m/promotions?environment=staging", viewer, nil, http.StatusOK))
	if len(l.Items) != 1 {
		t.Fatalf("promotions = %+v", l)
	}
	a, _ := h.store.GetAlias(t.Context(), "m", "staging")
	if a.Version != 1 {
		t.Fatalf("staging alias = %+v", a)
	}
}
