package apiclient

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// DatasetRoles name a dataset's label, segment and sensitive columns.
type DatasetRoles struct {
	Label     string
	Segments  []string
	Sensitive string
	// Task is classification or regression; "" lets the server infer it.
	Task string
}

// PushDataset streams a dataset file (format "csv" or "jsonl", size bytes
// or -1 when unknown). Created is false when the server already had a
// version of name with the same bytes and roles; that version is returned.
func (c *Client) PushDataset(ctx context.Context, name, format string, roles DatasetRoles, size int64, body io.Reader) (api.DatasetPushResponse, error) {
	q := url.Values{"format": {format}, "label": {roles.Label}}
	for _, s := range roles.Segments {
		q.Add("segment", s)
	}
	if roles.Sensitive != "" {
		q.Set("sensitive", roles.Sensitive)
	}
	if roles.Task != "" {
		q.Set("task", roles.Task)
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/api/v1/datasets/"+url.PathEscape(name), q, body)
	if err != nil {
		return api.DatasetPushResponse{}, err
	}
	req.ContentLength = size
	var out api.DatasetPushResponse
	return out, c.do(req, &out)
}

// GetDataset returns NAME (the latest version) or NAME@N.
func (c *Client) GetDataset(ctx context.Context, ref string) (domain.Dataset, error) {
	var d domain.Dataset
	return d, c.getJSON(ctx, "/api/v1/datasets/"+url.PathEscape(ref), nil, &d)
}

// ListDatasets lists datasets, the versions of one name when name is set.
func (c *Client) ListDatasets(ctx context.Context, name string, p Page) (api.List[domain.Dataset], error) {
	q := p.values()
	if name != "" {
		q.Set("name", name)
	}
	var l api.List[domain.Dataset]
	return l, c.getJSON(ctx, "/api/v1/datasets", q, &l)
}
