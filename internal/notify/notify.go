// Package notify owns slipway's outgoing webhooks: the events other
// packages raise (promotion.*, rollout.*), the subscriptions that
// select them, and their delivery as signed CloudEvents 1.0 over HTTP.
//
// It is a transactional outbox. Enqueue writes one delivery row per
// matching webhook inside the caller's store transaction, so a change that
// commits always notifies and one that rolls back never does, and the
// caller never waits on a network. A Dispatcher, started by app, sends
// the pending rows through the egress policy, retries with backoff and
// records every outcome; pending rows survive restarts.
//
// It imports domain, clock, audit, store and runtime/egress, and nothing
// that sits above them: gate and the rollout controller import it.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// Event types. A webhook subscribes to exact types, to a family with
// "family.*", or to everything with "*". The CloudEvents type on the wire
// is TypePrefix + the type: "dev.slipway.promotion.approved".
const (
	// TypePromotionRequested: a promotion was recorded and waits for
	// approval.
	TypePromotionRequested = "promotion.requested"
	// TypePromotionRejected: a gate rule failed or a person rejected it.
	TypePromotionRejected = "promotion.rejected"
	// TypePromotionApproved: the approvals it needs were given.
	TypePromotionApproved = "promotion.approved"
	// TypePromotionCompleted: the environment's aliases moved to the
	// version.
	TypePromotionCompleted = "promotion.completed"
	// TypePromotionCancelled: a pending promotion can no longer complete
	// (superseded by another, its policy changed, its version archived).
	TypePromotionCancelled = "promotion.cancelled"

	// Rollout events: each transition of a rollout (rollout.step when it
	// moves to its next step), with the verdict and evidence that moved
	// it when the judge did.
	TypeRolloutStarted          = "rollout.started"
	TypeRolloutStep             = "rollout.step"
	TypeRolloutPaused           = "rollout.paused"
	TypeRolloutResumed          = "rollout.resumed"
	TypeRolloutAwaitingApproval = "rollout.awaiting_approval"
	TypeRolloutPromoting        = "rollout.promoting"
	TypeRolloutSucceeded        = "rollout.succeeded"
	TypeRolloutAborted          = "rollout.aborted"
	TypeRolloutRolledBack       = "rollout.rolled_back"
	TypeRolloutFailed           = "rollout.failed"
	TypeRolloutSuperseded       = "rollout.superseded"

	// TypePing is what `slipway webhook test` sends to one webhook,
	// whatever it subscribes to. Enqueue refuses it.
	TypePing = "webhook.ping"
)

// TypePrefix turns an event type into its CloudEvents type.
const TypePrefix = "dev.slipway."

// EventTypes lists every type a webhook may subscribe to. A package that
// raises a new kind of event adds its type here, so subscriptions to it
// are accepted and misspelt ones are still refused.
var EventTypes = []string{
	TypePromotionRequested,
	TypePromotionRejected,
	TypePromotionApproved,
	TypePromotionCompleted,
	TypePromotionCancelled,
	TypeRolloutStarted,
	TypeRolloutStep,
	TypeRolloutPaused,
	TypeRolloutResumed,
	TypeRolloutAwaitingApproval,
	TypeRolloutPromoting,
	TypeRolloutSucceeded,
	TypeRolloutAborted,
	TypeRolloutRolledBack,
	TypeRolloutFailed,
	TypeRolloutSuperseded,
}

// MaxDataBytes caps an event's JSON payload.
const MaxDataBytes = 64 << 10

// Event is something that happened which webhooks may want to hear of.
type Event struct {
	// ID identifies the event to receivers, which deduplicate on it (the
	// CloudEvents id): every delivery of one event, and every retry,
	// carries the same ID. Enqueue fills in a random one when empty.
	ID string
	// Type is one of EventTypes.
	Type string
	// Subject names what the event is about, as audit subjects do:
	// "model/fraud/promotion/12".
	Subject string
	// Time is when it happened; Enqueue uses the wall clock when zero.
	// Callers with a clock pass its time.
	Time time.Time
	// Data is the payload, encoded as JSON (at most MaxDataBytes).
	Data any
}

// Outbox is what Enqueue needs of a store transaction; store.Tx has it.
type Outbox interface {
	ListWebhooks(ctx context.Context, p store.Page) ([]domain.Webhook, string, error)
	CreateDelivery(ctx context.Context, d domain.Delivery) (domain.Delivery, error)
}

var _ Outbox = store.Tx(nil)

// Enqueue queues ev for every webhook subscribed to its type, inside tx:
// the deliveries commit or roll back with the caller's change. It does no
// network I/O; the Dispatcher sends them after the commit. An event no
// webhook wants writes nothing. An invalid event (unknown type, payload
// that is not JSON or too big) is ErrInvalid, and the caller's transaction
// should roll back: the change would otherwise go unannounced.
func Enqueue(ctx context.Context, tx Outbox, ev Event) error {
	if ev.Type == TypePing {
		return fmt.Errorf("event type %q goes to one webhook at a time (Service.Test), not through Enqueue: %w", ev.Type, domain.ErrInvalid)
	}
	if !slices.Contains(EventTypes, ev.Type) {
		return fmt.Errorf("event type %q is not one of %s: %w", truncate(ev.Type, 80), strings.Join(EventTypes, ", "), domain.ErrInvalid)
	}
	d, err := newDelivery(ev)
	if err != nil {
		return err
	}
	p := store.Page{Limit: store.MaxLimit}
	for {
		hooks, next, err := tx.ListWebhooks(ctx, p)
		if err != nil {
			return fmt.Errorf("event %s: listing webhooks: %w", ev.Type, err)
		}
		for _, h := range hooks {
			if !Subscribed(h.Events, ev.Type) {
				continue
			}
			d.WebhookID = h.ID
			if _, err := tx.CreateDelivery(ctx, d); err != nil {
				return fmt.Errorf("event %s: queueing for webhook %s: %w", ev.Type, h.ID, err)
			}
		}
		if next == "" {
			return nil
		}
		p.Cursor = next
	}
}

// newDelivery turns an event into a pending delivery to no webhook yet,
// due at once.
func newDelivery(ev Event) (domain.Delivery, error) {
	if ev.ID == "" {
		ev.ID = newEventID()
	}
	if len(ev.ID) > 128 || !printable(ev.ID) {
		return domain.Delivery{}, fmt.Errorf("event id %q must be 1 to 128 printable ASCII characters: %w", truncate(ev.ID, 80), domain.ErrInvalid)
	}
	if len(ev.Subject) > 1024 {
		return domain.Delivery{}, fmt.Errorf("event subject is longer than 1024 bytes: %w", domain.ErrInvalid)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return domain.Delivery{}, fmt.Errorf("event %s: data does not encode as JSON: %v: %w", ev.Type, err, domain.ErrInvalid)
	}
	if len(data) > MaxDataBytes {
		return domain.Delivery{}, fmt.Errorf("event %s: data is %d bytes of JSON, more than %d: %w", ev.Type, len(data), MaxDataBytes, domain.ErrInvalid)
	}
	return domain.Delivery{
		EventID: ev.ID, EventType: ev.Type, Subject: ev.Subject, EventTime: ev.Time, Data: data,
		Status: domain.DeliveryPending, NextAttemptAt: ev.Time, CreatedAt: ev.Time, UpdatedAt: ev.Time,
	}, nil
}

// Subscribed reports whether a webhook with these patterns wants an event
// of type typ.
func Subscribed(patterns []string, typ string) bool {
	for _, p := range patterns {
		if p == "*" || p == typ {
			return true
		}
		if family, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(typ, family+".") {
			return true
		}
	}
	return false
}

// ParsePatterns checks the event patterns of a new webhook: at least one,
// each an event type of EventTypes, a family of them ("promotion.*") or
// "*". It returns them sorted, without duplicates.
func ParsePatterns(patterns []string) ([]string, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("a webhook needs at least one event: a type such as %s, a family such as promotion.*, or *: %w",
			TypePromotionApproved, domain.ErrInvalid)
	}
	if len(patterns) > 64 {
		return nil, fmt.Errorf("a webhook takes at most 64 event patterns, not %d: %w", len(patterns), domain.ErrInvalid)
	}
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		if err := checkPattern(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func checkPattern(p string) error {
	if p == "*" || slices.Contains(EventTypes, p) {
		return nil
	}
	if family, ok := strings.CutSuffix(p, ".*"); ok && family != "" {
		for _, t := range EventTypes {
			if strings.HasPrefix(t, family+".") {
				return nil
			}
		}
	}
	return fmt.Errorf("event %q is not an event type (%s), a family of them (%s) or *: %w",
		truncate(p, 80), strings.Join(EventTypes, ", "), strings.Join(families(), ", "), domain.ErrInvalid)
}

// families lists "family.*" for every family of EventTypes.
func families() []string {
	var out []string
	for _, t := range EventTypes {
		if i := strings.LastIndexByte(t, '.'); i > 0 {
			out = append(out, t[:i]+".*")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// newEventID returns a random UUID (version 4), the usual form of a
// CloudEvents id.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
