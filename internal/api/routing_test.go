package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

// routingHarness serves m at versions 1 (90), 2 (10) and 3 (0) in
// production, at revision 2.
func routingHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := newHarness(t, func(c *api.Config) {
		c.Deployments = deployment.New(deployment.Config{Store: c.Store, Versions: c.Registry, Runtimes: idleRuntimes{}})
	})
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	for i := range 3 {
		h.pushVersion("m", []byte{byte(i)}, nil)
	}
	base := "/api/v1/models/m/deployments/production"
	h.mustCall(http.MethodPut, base, h.admin, api.DeployRequest{Version: "1"}, http.StatusOK)
	h.mustCall(http.MethodPut, base+"/traffic", h.admin, `{"weights": {"1": 90, "2": 10, "3": 0}}`, http.StatusOK)
	return h, base
}

func TestSetRouting(t *testing.T) {
	h, base := routingHarness(t)
	body := `{"sticky": {"header": "X-User-ID"},
		"rules": ["header:X-Tester=yes -> 2", "header:X-Region ^= eu- -> v3", "header:X-Beta -> 2"],
		"shadow": {"version": 3, "percent": 12.5},
		"limits": {"requests_per_second": 50, "max_concurrency": 8},
		"expected_revision": 2}`
	d := decode[domain.Deployment](t, h.mustCall(http.MethodPut, base+"/routing", h.admin, body, http.StatusOK))
	if d.Revision != 3 || d.Routing.Sticky == nil || d.Routing.Sticky.Header != "X-User-ID" || len(d.Routing.Rules) != 3 ||
		d.Routing.Rules[1].Op != domain.MatchPrefix || d.Routing.Rules[1].Version != 3 ||
		d.Routing.Shadow == nil || d.Routing.Shadow.Percent != 12.5 || d.Routing.Limits == nil || d.Routing.Limits.MaxConcurrency != 8 {
		t.Fatalf("answer: %+v", d)
	}
	if len(d.Versions) != 3 || d.Stable != 1 {
		t.Errorf("the split changed: %+v stable %d", d.Versions, d.Stable)
	}

	// GET shows the policy, rules in their text form.
	r := h.mustCall(http.MethodGet, base, h.admin, nil, http.StatusOK)
	var raw struct {
		Revision int64 `json:"revision"`
		Routing  struct {
			Sticky map[string]string `json:"sticky"`
			Rules  []string          `json:"rules"`
			Shadow map[string]any    `json:"shadow"`
			Limits map[string]any    `json:"limits"`
		} `json:"routing"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	want := []string{"header:X-Tester=yes -> 2", "header:X-Region^=eu- -> 3", "header:X-Beta -> 2"}
	if raw.Revision != 3 || !reflect.DeepEqual(raw.Routing.Rules, want) || raw.Routing.Sticky["header"] != "X-User-ID" ||
		raw.Routing.Shadow["percent"] != 12.5 || raw.Routing.Limits["requests_per_second"] != 50.0 {
		t.Errorf("GET deployment: %s", r.body)
	}

	// The change is audited with the policy before and after.
	entries := decode[api.List[struct {
		Action string `json:"action"`
		Before struct {
			Routing domain.Routing `json:"routing"`
		} `json:"before"`
		After struct {
			Revision int64          `json:"revision"`
			Routing  domain.Routing `json:"routing"`
		} `json:"after"`
	}]](t, h.mustCall(http.MethodGet, "/api/v1/audit?subject=model/m/deployment/production", h.admin, nil, http.StatusOK)).Items
	if last := entries[len(entries)-1]; last.Action != "deployment.set" || last.After.Revision != 3 || !last.Before.Routing.IsZero() ||
		!reflect.DeepEqual(last.After.Routing, d.Routing) {
		t.Errorf("latest audit entry of the deployment: %+v", last)
	}

	// Setting traffic keeps the policy.
	d = decode[domain.Deployment](t, h.mustCall(http.MethodPut, base+"/traffic", h.admin, `{"weights": {"1": 80, "2": 20, "3": 0}}`, http.StatusOK))
	if len(d.Routing.Rules) != 3 || d.Routing.Sticky == nil {
		t.Errorf("traffic set dropped the policy: %+v", d.Routing)
	}

	// An empty policy clears it.
	d = decode[domain.Deployment](t, h.mustCall(http.MethodPut, base+"/routing", h.admin, `{}`, http.StatusOK))
	if !d.Routing.IsZero() || d.Revision != 5 {
		t.Errorf("after clearing: %+v", d)
	}
	if r := h.mustCall(http.MethodGet, base, h.admin, nil, http.StatusOK); !strings.Contains(string(r.body), `"routing":{}`) {
		t.Errorf("GET after clearing: %s", r.body)
	}
}

// Setting routing takes the role setting traffic takes.
func TestSetRoutingRole(t *testing.T) {
	h, base := routingHarness(t)
	viewer, deployer := h.token("v", domain.RoleViewer), h.token("d", domain.RoleDeployer)
	before := h.fingerprint()
	h.mustCall(http.MethodPut, base+"/routing", viewer, `{"sticky":{"field":"user"}}`, http.StatusForbidden)
	h.mustCall(http.MethodPut, base+"/routing", "", `{"sticky":{"field":"user"}}`, http.StatusUnauthorized)
	if after := h.fingerprint(); !before.equal(after) {
		t.Fatalf("a refused caller changed state")
	}
	h.mustCall(http.MethodPut, base+"/routing", deployer, `{"sticky":{"field":"user"}}`, http.StatusOK)
}

// Bad policies get a 400 naming the field at fault, and nothing is
// stored: no audit entry, the same revision and policy.
func TestSetRoutingBadInput(t *testing.T) {
	h, base := routingHarness(t)
	h.mustCall(http.MethodPut, base+"/routing", h.admin, `{"rules":["header:X-Tester=yes -> 2"]}`, http.StatusOK)
	many := `{"rules":[` + strings.TrimSuffix(strings.Repeat(`"header:X-A -> 2",`, domain.MaxMatchRules+1), ",") + `]}`
	cases := []struct {
		name, path, body string
		want             int
		detail           string
	}{
		{"rule without a version", base + "/routing", `{"rules":["header:X-A -> 2", "header:X-B=1"]}`, 400, "rules[1]"},
		{"rule version zero", base + "/routing", `{"rules":["header:X-B=1 -> 0"]}`, 400, "rules[0]"},
		{"rule not on a header", base + "/routing", `{"rules":["query:x=1 -> 2"]}`, 400, "header:"},
		{"rule not a string", base + "/routing", `{"rules":[3]}`, 400, "rules"},
		{"rule to an unserved version", base + "/routing", `{"rules":["header:X-A -> 9"]}`, 400, "version 9"},
		{"too many rules", base + "/routing", many, 400, "rules"},
		{"sticky naming both", base + "/routing", `{"sticky":{"header":"X-U","field":"user"}}`, 400, "sticky key"},
		{"sticky naming nothing", base + "/routing", `{"sticky":{}}`, 400, "sticky key"},
		{"sticky header with a space", base + "/routing", `{"sticky":{"header":"X User"}}`, 400, "header name"},
		{"sticky field too deep", base + "/routing", `{"sticky":{"field":"a.b.c.d.e"}}`, 400, "JSON field"},
		{"shadow percent zero", base + "/routing", `{"shadow":{"version":3,"percent":0}}`, 400, "shadow percent"},
		{"shadow on a live version", base + "/routing", `{"shadow":{"version":2,"percent":5}}`, 400, "shadow version 2"},
		{"shadow percent a string", base + "/routing", `{"shadow":{"version":3,"percent":"5"}}`, 400, "shadow.percent"},
		{"negative rate", base + "/routing", `{"limits":{"requests_per_second":-1}}`, 400, "requests_per_second"},
		{"burst without rate", base + "/routing", `{"limits":{"burst":5}}`, 400, "burst"},
		{"unknown field", base + "/routing", `{"stickey":{"header":"X-U"}}`, 400, "stickey"},
		{"empty body", base + "/routing", ``, 400, "empty"},
		{"stale revision", base + "/routing", `{"expected_revision":1}`, 409, "revision 3"},
		{"unknown environment", "/api/v1/models/m/deployments/qa/routing", `{}`, 400, "environment"},
		{"nothing deployed", "/api/v1/models/m/deployments/staging/routing", `{}`, 404, ""},
		{"unknown model", "/api/v1/models/ghost/deployments/production/routing", `{}`, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.fingerprint()
			r := h.call(http.MethodPut, c.path, h.admin, c.body)
			if r.status != c.want || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d %q, want %d problem+json: %s", r.status, r.header.Get("Content-Type"), c.want, r.body)
			}
			if !strings.Contains(r.problem.Detail, c.detail) {
				t.Fatalf("detail %q does not mention %q", r.problem.Detail, c.detail)
			}
			if after := h.fingerprint(); !before.equal(after) {
				t.Fatalf("state changed: %+v -> %+v", before, after)
			}
		})
	}
	d := decode[domain.Deployment](t, h.mustCall(http.MethodGet, base, h.admin, nil, http.StatusOK))
	if d.Revision != 3 || len(d.Routing.Rules) != 1 || d.Routing.Sticky != nil || d.Routing.Shadow != nil || d.Routing.Limits != nil {
		t.Errorf("after the refusals: revision %d routing %+v", d.Revision, d.Routing)
	}
}
