package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// idleRuntimes starts every version as an in-process endpoint that is
// never called: the API only needs deployments to be accepted.
type idleRuntimes struct{}

func (idleRuntimes) Start(context.Context, domain.Version) (runtime.Endpoint, error) {
	return runtime.Endpoint{Protocol: runtime.ProtocolOIP, Handler: http.NotFoundHandler()}, nil
}
func (idleRuntimes) Health(context.Context, string, int) error                    { return nil }
func (idleRuntimes) Retain(context.Context, func(model string, version int) bool) {}

func TestTrafficStableVersion(t *testing.T) {
	h := newHarness(t, func(c *api.Config) {
		c.Deployments = deployment.New(deployment.Config{Store: c.Store, Versions: c.Registry, Runtimes: idleRuntimes{}})
	})
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	for i := range 3 {
		h.pushVersion("m", []byte{byte(i)}, nil)
	}
	base := "/api/v1/models/m/deployments/production"
	stable := func(r response) int { return decode[domain.Deployment](t, r).Stable }

	if got := stable(h.mustCall(http.MethodPut, base, h.admin, api.DeployRequest{Version: "1"}, http.StatusOK)); got != 1 {
		t.Errorf("deploy: stable %d, want the deployed version 1", got)
	}
	r := h.mustCall(http.MethodPut, base+"/traffic", h.admin, `{"weights": {"1": 10, "2": 90}}`, http.StatusOK)
	if got := stable(r); got != 1 {
		t.Errorf("canary split: stable %d, want 1 kept", got)
	}
	r = h.mustCall(http.MethodPut, base+"/traffic", h.admin, `{"weights": {"1": 10, "2": 90}, "stable": 2}`, http.StatusOK)
	if got := stable(r); got != 2 {
		t.Errorf("stable named: %d, want 2", got)
	}
	r = h.mustCall(http.MethodPut, base+"/traffic", h.admin, `{"weights": {"1": 40, "3": 60}}`, http.StatusOK)
	if got := stable(r); got != 3 {
		t.Errorf("stable dropped: %d, want the highest weight, 3", got)
	}
	bad := h.mustCall(http.MethodPut, base+"/traffic", h.admin, `{"weights": {"1": 40, "3": 60}, "stable": 2}`, http.StatusBadRequest)
	if bad.problem.Detail == "" {
		t.Errorf("a stable version outside the split: %s", bad.body)
	}
	st := decode[deployment.Status](t, h.mustCall(http.MethodGet, base, h.admin, nil, http.StatusOK))
	if st.Stable != 3 || st.Revision != 4 {
		t.Errorf("GET: stable %d revision %d, want 3 and 4", st.Stable, st.Revision)
	}
}
