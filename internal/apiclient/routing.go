package apiclient

import (
	"context"
	"net/http"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// SetRouting replaces the routing policy of env's deployment of model —
// sticky key, match rules, shadow and limits — keeping its split. The
// zero policy clears it. expected, when set, refuses the change unless the
// deployment is still at that revision.
func (c *Client) SetRouting(ctx context.Context, model, env string, p domain.Routing, expected *int64) (domain.Deployment, error) {
	var d domain.Deployment
	return d, c.sendJSON(ctx, http.MethodPut, deploymentPath(model, env)+"/routing", api.NewRoutingRequest(p, expected), &d)
}
