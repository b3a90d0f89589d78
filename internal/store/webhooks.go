package store

import (
	"context"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// DeliveryFilter narrows a delivery listing; zero fields match all.
type DeliveryFilter struct {
	WebhookID string
	Status    domain.DeliveryStatus
}

// WebhookReader is the read side of webhook subscriptions and their
// outbox of deliveries; Reader includes it.
type WebhookReader interface {
	GetWebhook(ctx context.Context, id string) (domain.Webhook, error)
	// ListWebhooks returns webhooks in ID order, secrets included (the
	// dispatcher signs with them; the API never shows them).
	ListWebhooks(ctx context.Context, p Page) (webhooks []domain.Webhook, next string, err error)

	GetDelivery(ctx context.Context, id int64) (domain.Delivery, error)
	// ListDeliveries returns deliveries newest first (descending ID).
	ListDeliveries(ctx context.Context, f DeliveryFilter, p Page) (deliveries []domain.Delivery, next string, err error)
	// DueDeliveries returns at most limit pending deliveries whose next
	// attempt is at or before now, the longest waiting first, and of each
	// webhook only the one due first: a dispatcher sends one delivery at a
	// time to a webhook, so a backlog for one receiver cannot crowd out
	// the others.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]domain.Delivery, error)
}

// WebhookWriter is the write side; Tx includes it.
type WebhookWriter interface {
	// CreateWebhook returns ErrConflict when the ID is taken.
	CreateWebhook(ctx context.Context, w domain.Webhook) error
	// DeleteWebhook deletes a webhook and every delivery of it; ErrNotFound
	// when there is none.
	DeleteWebhook(ctx context.Context, id string) error

	// CreateDelivery assigns the next ID and stores d. The webhook must
	// exist (ErrNotFound); an event already queued for the webhook (same
	// EventID) is ErrConflict.
	CreateDelivery(ctx context.Context, d domain.Delivery) (domain.Delivery, error)
	// UpdateDelivery records an attempt: status, attempts, next attempt,
	// last status code, last error and updated time from d; the event is
	// never changed. ErrNotFound when the delivery does not exist (its
	// webhook was deleted).
	UpdateDelivery(ctx context.Context, d domain.Delivery) error
	// PruneDeliveries deletes ended (delivered or failed) deliveries last
	// updated before t and says how many it deleted.
	PruneDeliveries(ctx context.Context, before time.Time) (int, error)
}
