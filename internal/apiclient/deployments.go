package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

func deploymentPath(model, env string) string {
	return modelPath(model) + "/deployments/" + url.PathEscape(env)
}

// Deploy serves one version (a number or @alias) at 100 % of env.
func (c *Client) Deploy(ctx context.Context, model, ref, env string, expected *int64) (domain.Deployment, error) {
	var d domain.Deployment
	return d, c.sendJSON(ctx, http.MethodPut, deploymentPath(model, env),
		api.DeployRequest{Version: api.VersionRef(ref), ExpectedRevision: expected}, &d)
}

// SetTraffic replaces env's split of model: version → weight. The stable
// version stays while served, else the highest-weight version becomes it.
func (c *Client) SetTraffic(ctx context.Context, model, env string, weights map[int]int, expected *int64) (domain.Deployment, error) {
	return c.SetTrafficStable(ctx, model, env, weights, 0, expected)
}

// SetTrafficStable is SetTraffic that also names the stable version, the
// one traffic falls back to (0: as SetTraffic chooses).
func (c *Client) SetTrafficStable(ctx context.Context, model, env string, weights map[int]int, stable int, expected *int64) (domain.Deployment, error) {
	req := api.TrafficRequest{Weights: map[string]int{}, Stable: stable, ExpectedRevision: expected}
	for v, w := range weights {
		req.Weights[strconv.Itoa(v)] = w
	}
	var d domain.Deployment
	return d, c.sendJSON(ctx, http.MethodPut, deploymentPath(model, env)+"/traffic", req, &d)
}

// GetDeployment returns what env serves of model, with health.
func (c *Client) GetDeployment(ctx context.Context, model, env string) (deployment.Status, error) {
	var st deployment.Status
	return st, c.getJSON(ctx, deploymentPath(model, env), nil, &st)
}

// ListDeployments lists deployments, of one model when model is not empty.
func (c *Client) ListDeployments(ctx context.Context, model, env string, p Page) (api.List[deployment.Status], error) {
	q := p.values()
	if model != "" {
		q.Set("model", model)
	}
	if env != "" {
		q.Set("environment", env)
	}
	var l api.List[deployment.Status]
	return l, c.getJSON(ctx, "/api/v1/deployments", q, &l)
}

// SetPrice sets the token price of one served version.
func (c *Client) SetPrice(ctx context.Context, model, env string, version int, price domain.Price) (domain.Deployment, error) {
	var d domain.Deployment
	return d, c.sendJSON(ctx, http.MethodPut, deploymentPath(model, env)+"/versions/"+strconv.Itoa(version)+"/price",
		api.PriceRequest{Price: price}, &d)
}
