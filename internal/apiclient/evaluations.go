package apiclient

import (
	"context"
	"net/http"
	"strconv"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Evaluate runs a version (a number or @alias) over a dataset (NAME or
// NAME@N), and first the against version (e.g. @champion) when set. It
// returns when every row has run.
func (c *Client) Evaluate(ctx context.Context, model, version, dataset, against string) (api.EvaluationResponse, error) {
	var out api.EvaluationResponse
	return out, c.sendJSON(ctx, http.MethodPost, modelPath(model)+"/evaluations",
		api.EvaluationRequest{Version: api.VersionRef(version), Dataset: dataset, Against: api.VersionRef(against)}, &out)
}

// GetEvaluation returns one evaluation.
func (c *Client) GetEvaluation(ctx context.Context, id int64) (domain.Evaluation, error) {
	var e domain.Evaluation
	return e, c.getJSON(ctx, "/api/v1/evaluations/"+strconv.FormatInt(id, 10), nil, &e)
}

// EvaluationFilter narrows a listing; zero fields match all.
type EvaluationFilter struct {
	Model   string
	Version int
	Status  string
}

// ListEvaluations lists evaluations, oldest first.
func (c *Client) ListEvaluations(ctx context.Context, f EvaluationFilter, p Page) (api.List[domain.Evaluation], error) {
	q := p.values()
	if f.Model != "" {
		q.Set("model", f.Model)
	}
	if f.Version != 0 {
		q.Set("version", strconv.Itoa(f.Version))
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	var l api.List[domain.Evaluation]
	return l, c.getJSON(ctx, "/api/v1/evaluations", q, &l)
}
