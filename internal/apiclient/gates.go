package apiclient

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Apply sends one YAML document (a GatePolicy); file names it in errors.
func (c *Client) Apply(ctx context.Context, file string, doc []byte) (api.ApplyResponse, error) {
	var out api.ApplyResponse
	return out, c.postYAML(ctx, "/api/v1/apply", url.Values{"file": {file}}, doc, &out)
}

// postYAML posts a YAML document to path and decodes the answer into out.
func (c *Client) postYAML(ctx context.Context, path string, q url.Values, doc []byte, out any) error {
	req, err := c.newRequest(ctx, http.MethodPost, path, q, bytes.NewReader(doc))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/yaml")
	return c.do(req, out)
}

// GetPolicy returns the gate policy in force for a model and environment.
func (c *Client) GetPolicy(ctx context.Context, model, env string) (domain.GatePolicy, error) {
	var p domain.GatePolicy
	return p, c.getJSON(ctx, modelPath(model)+"/policies/"+url.PathEscape(env), nil, &p)
}

// ListPolicies returns a model's policies in force.
func (c *Client) ListPolicies(ctx context.Context, model string) ([]domain.GatePolicy, error) {
	var l api.List[domain.GatePolicy]
	return l.Items, c.getJSON(ctx, modelPath(model)+"/policies", nil, &l)
}

// Promote asks to move a version (a number or @alias) into an environment.
func (c *Client) Promote(ctx context.Context, model string, req api.PromoteRequest) (domain.Promotion, error) {
	var p domain.Promotion
	return p, c.sendJSON(ctx, http.MethodPost, modelPath(model)+"/promotions", req, &p)
}

// GetPromotion returns one promotion.
func (c *Client) GetPromotion(ctx context.Context, id int64) (domain.Promotion, error) {
	var p domain.Promotion
	return p, c.getJSON(ctx, "/api/v1/promotions/"+strconv.FormatInt(id, 10), nil, &p)
}

// PromotionFilter narrows a listing; zero fields match all.
type PromotionFilter struct {
	Model       string
	Environment string
	State       string
	Version     int
}

// ListPromotions lists promotions, newest first.
func (c *Client) ListPromotions(ctx context.Context, f PromotionFilter, p Page) (api.List[domain.Promotion], error) {
	q := listQuery(p, map[string]string{"model": f.Model, "environment": f.Environment, "state": f.State})
	if f.Version != 0 {
		q.Set("version", strconv.Itoa(f.Version))
	}
	var l api.List[domain.Promotion]
	return l, c.getJSON(ctx, "/api/v1/promotions", q, &l)
}

// listQuery is the query of a listing: the page, and each filter field
// that is not empty.
func listQuery(p Page, filter map[string]string) url.Values {
	q := p.values()
	for k, v := range filter {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// Decide approves (approve true) or rejects a pending promotion.
func (c *Client) Decide(ctx context.Context, id int64, approve bool, comment string) (domain.Promotion, error) {
	verb := "/reject"
	if approve {
		verb = "/approve"
	}
	var p domain.Promotion
	return p, c.sendJSON(ctx, http.MethodPost, "/api/v1/promotions/"+strconv.FormatInt(id, 10)+verb, api.DecisionRequest{Comment: comment}, &p)
}
