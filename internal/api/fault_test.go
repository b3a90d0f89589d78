package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

// TestFaultEndpoints sets and clears a canary's fault in staging, where
// fault injection is allowed, and sends every kind of bad request: each
// gets its status and a detail naming the problem, and nothing stored
// changes — no revision, no audit entry.
func TestFaultEndpoints(t *testing.T) {
	h := newHarness(t, func(c *api.Config) {
		c.Deployments = deployment.New(deployment.Config{Store: c.Store, Versions: c.Registry, Runtimes: idleRuntimes{},
			FaultEnvironments: []string{"dev", "staging"}})
	})
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	for i := range 2 {
		h.pushVersion("m", []byte{byte(i)}, nil)
	}
	for _, env := range []string{"staging", "production"} {
		base := "/api/v1/models/m/deployments/" + env
		h.mustCall(http.MethodPut, base, h.admin, api.DeployRequest{Version: "1"}, http.StatusOK)
		h.mustCall(http.MethodPut, base+"/traffic", h.admin, `{"weights": {"1": 70, "2": 30}}`, http.StatusOK)
	}
	fault := "/api/v1/models/m/deployments/staging/versions/2/fault"
	d := decode[domain.Deployment](t, h.mustCall(http.MethodPut, fault, h.admin,
		`{"abort_percent": 30, "delay_percent": 10, "delay": "50ms", "expected_revision": 2}`, http.StatusOK))
	want := domain.Fault{AbortPercent: 30, AbortStatus: 503, DelayPercent: 10, Delay: domain.Duration(50 * time.Millisecond)}
	if d.Revision != 3 || d.Versions[1].Fault == nil || *d.Versions[1].Fault != want || d.Versions[0].Fault != nil {
		t.Fatalf("PUT fault answered %+v", d)
	}
	st := decode[deployment.Status](t, h.mustCall(http.MethodGet, "/api/v1/models/m/deployments/staging", h.admin, nil, http.StatusOK))
	if st.Versions[1].Fault == nil || *st.Versions[1].Fault != want {
		t.Fatalf("GET shows %+v", st.Versions)
	}
	viewer := h.token("viewer", domain.RoleViewer)

	before := h.fingerprint()
	cases := []struct {
		name, method, path, token string
		body                      any
		want                      int
		detail                    string
	}{
		{"production not allowed", "PUT", "/api/v1/models/m/deployments/production/versions/2/fault", h.admin, `{"abort_percent": 100}`, 409, "--fault-injection-envs"},
		{"viewer", "PUT", fault, viewer, `{"abort_percent": 100}`, 403, ""},
		{"viewer clears", "DELETE", fault, viewer, nil, 403, ""},
		{"empty fault", "PUT", fault, h.admin, `{}`, 400, "abort_percent or delay_percent"},
		{"abort above 100", "PUT", fault, h.admin, `{"abort_percent": 150}`, 400, "abort_percent 150"},
		{"status 200", "PUT", fault, h.admin, `{"abort_percent": 5, "abort_status": 200}`, 400, "400 to 599"},
		{"delay as a number", "PUT", fault, h.admin, `{"delay_percent": 5, "delay": 50}`, 400, "delay"},
		{"delay not a duration", "PUT", fault, h.admin, `{"delay_percent": 5, "delay": "soon"}`, 400, "soon"},
		{"delay too long", "PUT", fault, h.admin, `{"delay_percent": 5, "delay": "2m"}`, 400, "at most 1m0s"},
		{"delay without share", "PUT", fault, h.admin, `{"delay": "5ms"}`, 400, "needs delay_percent"},
		{"unknown field", "PUT", fault, h.admin, `{"abort_percent": 5, "abort_rate": 5}`, 400, "abort_rate"},
		{"malformed", "PUT", fault, h.admin, `{"abort_percent":`, 400, "not valid JSON"},
		{"bad version", "PUT", "/api/v1/models/m/deployments/staging/versions/two/fault", h.admin, `{"abort_percent": 5}`, 400, "two"},
		{"bad version on clear", "DELETE", "/api/v1/models/m/deployments/staging/versions/0/fault", h.admin, nil, 400, "version number"},
		{"unserved version", "PUT", "/api/v1/models/m/deployments/staging/versions/7/fault", h.admin, `{"abort_percent": 5}`, 404, "version 7"},
		{"unknown environment", "PUT", "/api/v1/models/m/deployments/qa/versions/2/fault", h.admin, `{"abort_percent": 5}`, 400, "qa"},
		{"unknown model", "PUT", "/api/v1/models/ghost/deployments/staging/versions/2/fault", h.admin, `{"abort_percent": 5}`, 404, ""},
		{"stale revision", "PUT", fault, h.admin, `{"abort_percent": 5, "expected_revision": 1}`, 409, "revision 3"},
		{"stale revision on clear", "DELETE", fault + "?expected_revision=1", h.admin, nil, 409, "revision 3"},
		{"bad expected revision", "DELETE", fault + "?expected_revision=x", h.admin, nil, 400, "expected_revision"},
	}
	for _, c := range cases {
		r := h.call(c.method, c.path, c.token, c.body)
		if r.status != c.want || !strings.Contains(r.problem.Detail, c.detail) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, r.status, r.body, c.want, c.detail)
		}
	}
	if !h.fingerprint().equal(before) {
		t.Fatal("a refused request changed what is stored")
	}
	st = decode[deployment.Status](t, h.mustCall(http.MethodGet, "/api/v1/models/m/deployments/staging", h.admin, nil, http.StatusOK))
	if st.Revision != 3 || st.Versions[1].Fault == nil || *st.Versions[1].Fault != want {
		t.Fatalf("after refusals: %+v", st.Deployment)
	}

	// DELETE clears it; a second DELETE changes nothing.
	d = decode[domain.Deployment](t, h.mustCall(http.MethodDelete, fault+"?expected_revision=3", h.admin, nil, http.StatusOK))
	if d.Revision != 4 || d.Versions[1].Fault != nil {
		t.Fatalf("DELETE answered %+v", d)
	}
	after := h.fingerprint()
	if d = decode[domain.Deployment](t, h.mustCall(http.MethodDelete, fault, h.admin, nil, http.StatusOK)); d.Revision != 4 || !h.fingerprint().equal(after) {
		t.Fatalf("a second DELETE: revision %d", d.Revision)
	}
}
