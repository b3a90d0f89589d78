package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

func faultPath(model, env string, version int) string {
	return deploymentPath(model, env) + "/versions/" + strconv.Itoa(version) + "/fault"
}

// SetFault sets the fault the gateway injects into one served version's
// requests; environments that do not allow fault injection refuse it.
func (c *Client) SetFault(ctx context.Context, model, env string, version int, f domain.Fault, expected *int64) (domain.Deployment, error) {
	var d domain.Deployment
	return d, c.sendJSON(ctx, http.MethodPut, faultPath(model, env, version), api.FaultRequest{Fault: f, ExpectedRevision: expected}, &d)
}

// ClearFault removes the fault of one served version.
func (c *Client) ClearFault(ctx context.Context, model, env string, version int, expected *int64) (domain.Deployment, error) {
	q := url.Values{}
	if expected != nil {
		q.Set("expected_revision", strconv.FormatInt(*expected, 10))
	}
	req, err := c.newRequest(ctx, http.MethodDelete, faultPath(model, env, version), q, nil)
	if err != nil {
		return domain.Deployment{}, err
	}
	var d domain.Deployment
	return d, c.do(req, &d)
}
