package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// Webhook is a subscription: slipway POSTs every event whose type matches
// one of Events to URL, signed with Secret. Events holds exact types
// ("promotion.approved"), family prefixes ("promotion.*") or "*".
type Webhook struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	// Secret keys the HMAC signature of every delivery. It is shown once,
	// when the webhook is created, and never serialised after.
	Secret    string    `json:"-"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// DeliveryStatus is where one delivery of an event to one webhook stands.
// A delivery is created pending and ends once, delivered or failed.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// ParseDeliveryStatus checks a status given from outside.
func ParseDeliveryStatus(s string) (DeliveryStatus, error) {
	switch st := DeliveryStatus(s); st {
	case DeliveryPending, DeliveryDelivered, DeliveryFailed:
		return st, nil
	}
	return "", fmt.Errorf("delivery status %q is not pending, delivered or failed: %w", truncate(s, 40), ErrInvalid)
}

// Delivery is one event on its way to one webhook: the event itself (so
// every attempt sends the same body) and how the attempts went.
type Delivery struct {
	ID        int64           `json:"id"`
	WebhookID string          `json:"webhook_id"`
	EventID   string          `json:"event_id"`
	EventType string          `json:"event_type"`
	Subject   string          `json:"subject,omitempty"`
	EventTime time.Time       `json:"event_time"`
	Data      json.RawMessage `json:"data"`

	Status   DeliveryStatus `json:"status"`
	Attempts int            `json:"attempts"`
	// NextAttemptAt is when a pending delivery is tried next (or, while an
	// attempt runs, when its claim lapses); zero once it has ended.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// LastStatusCode is the HTTP status of the last answer, 0 when the last
	// attempt got none (a network error, a refused address).
	LastStatusCode int       `json:"last_status_code,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}
