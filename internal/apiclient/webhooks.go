package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

func webhookPath(id string) string { return "/api/v1/webhooks/" + url.PathEscape(id) }

// AddWebhook subscribes url to events; an empty secret asks the server to
// generate one. The answer carries the secret, shown this once.
func (c *Client) AddWebhook(ctx context.Context, req api.WebhookRequest) (api.WebhookResponse, error) {
	var w api.WebhookResponse
	return w, c.sendJSON(ctx, http.MethodPost, "/api/v1/webhooks", req, &w)
}

// ListWebhooks returns one page of webhooks.
func (c *Client) ListWebhooks(ctx context.Context, p Page) (api.List[domain.Webhook], error) {
	var l api.List[domain.Webhook]
	return l, c.getJSON(ctx, "/api/v1/webhooks", p.values(), &l)
}

// GetWebhook returns one webhook.
func (c *Client) GetWebhook(ctx context.Context, id string) (domain.Webhook, error) {
	var w domain.Webhook
	return w, c.getJSON(ctx, webhookPath(id), nil, &w)
}

// RemoveWebhook deletes a webhook and its deliveries.
func (c *Client) RemoveWebhook(ctx context.Context, id string) (domain.Webhook, error) {
	var w domain.Webhook
	req, err := c.newRequest(ctx, http.MethodDelete, webhookPath(id), nil, nil)
	if err != nil {
		return w, err
	}
	return w, c.do(req, &w)
}

// TestWebhook queues a ping to one webhook and returns its delivery.
func (c *Client) TestWebhook(ctx context.Context, id string) (domain.Delivery, error) {
	var d domain.Delivery
	return d, c.sendJSON(ctx, http.MethodPost, webhookPath(id)+"/test", nil, &d)
}

// ListDeliveries returns one page of deliveries, newest first: of one
// webhook when id is not empty, of one status when status is not empty.
func (c *Client) ListDeliveries(ctx context.Context, id, status string, p Page) (api.List[domain.Delivery], error) {
	path := "/api/v1/webhook-deliveries"
	if id != "" {
		path = webhookPath(id) + "/deliveries"
	}
	q := p.values()
	if status != "" {
		q.Set("status", status)
	}
	var l api.List[domain.Delivery]
	return l, c.getJSON(ctx, path, q, &l)
}

// GetDelivery returns one delivery.
func (c *Client) GetDelivery(ctx context.Context, id int64) (domain.Delivery, error) {
	var d domain.Delivery
	return d, c.getJSON(ctx, "/api/v1/webhook-deliveries/"+strconv.FormatInt(id, 10), nil, &d)
}
