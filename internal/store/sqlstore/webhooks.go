package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

const (
	webhookCols  = `id, url, events, secret, created_by, created_at`
	deliveryCols = `id, webhook_id, event_id, event_type, subject, event_time, data, status, attempts, ` +
		`next_attempt_at, last_status_code, last_error, created_at, updated_at`
)

const (
	qGetWebhook    = `SELECT ` + webhookCols + ` FROM webhooks WHERE id = ?`
	qListWebhooks  = `SELECT ` + webhookCols + ` FROM webhooks WHERE id > ? ORDER BY id LIMIT ?`
	qInsertWebhook = `INSERT INTO webhooks (` + webhookCols + `) VALUES (?, ?, ?, ?, ?, ?)`
	qDeleteWebhook = `DELETE FROM webhooks WHERE id = ?`
	qGetDelivery   = `SELECT ` + deliveryCols + ` FROM webhook_deliveries WHERE id = ?`
	// qDueDeliveries takes the earliest due delivery of each webhook
	// (window functions: SQLite 3.25+, PostgreSQL).
	qDueDeliveries = `SELECT ` + deliveryCols + ` FROM (SELECT ` + deliveryCols + `, ` +
		`ROW_NUMBER() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id) AS nth ` +
		`FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?) AS due ` +
		`WHERE nth = 1 ORDER BY next_attempt_at, id LIMIT ?`
	qInsertDelivery = `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, subject, event_time, data, status, attempts, ` +
		`next_attempt_at, last_status_code, last_error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	qUpdateDelivery  = `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status_code = ?, last_error = ?, updated_at = ? WHERE id = ?`
	qPruneDeliveries = `DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < ?`
)

// Cursor kinds of the two listings.
const (
	cursorWebhook  = "wh"
	cursorDelivery = "dl"
)

// GetWebhook returns ErrNotFound when no webhook has the ID.
func (r *reader) GetWebhook(ctx context.Context, id string) (domain.Webhook, error) {
	w, err := scanWebhook(r.q.QueryRowContext(ctx, r.d.rebind(qGetWebhook), id))
	if err != nil {
		return domain.Webhook{}, r.d.wrap(err, fmt.Sprintf("webhook %q", id))
	}
	return w, nil
}

// ListWebhooks returns webhooks in ID order.
func (r *reader) ListWebhooks(ctx context.Context, p store.Page) ([]domain.Webhook, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list webhooks: %w", err)
	}
	after, err := decodeCursor(cursorWebhook, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list webhooks: %w", err)
	}
	ws, err := queryAll(ctx, r.q, r.d.rebind(qListWebhooks), []any{after, p.Limit + 1}, p.Limit+1, scanWebhook)
	if err != nil {
		return nil, "", r.d.wrap(err, "list webhooks")
	}
	ws, next := cutPage(ws, p.Limit, cursorWebhook, func(w domain.Webhook) string { return w.ID })
	return ws, next, nil
}

func scanWebhook(s scanner) (domain.Webhook, error) {
	var (
		w               domain.Webhook
		events, created string
	)
	if err := s.Scan(&w.ID, &w.URL, &events, &w.Secret, &w.CreatedBy, &created); err != nil {
		return w, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return w, fmt.Errorf("webhook %q: events: %w", w.ID, err)
	}
	var err error
	if w.CreatedAt, err = parseTime(created); err != nil {
		return w, fmt.Errorf("webhook %q: created at: %w", w.ID, err)
	}
	return w, nil
}

// CreateWebhook returns ErrConflict when the ID is taken.
func (t *tx) CreateWebhook(ctx context.Context, w domain.Webhook) error {
	what := fmt.Sprintf("webhook %q", w.ID)
	events := w.Events
	if events == nil {
		events = []string{}
	}
	doc, err := json.Marshal(events)
	if err != nil {
		return fmt.Errorf("%s: events: %w", what, err)
	}
	_, err = t.tx.ExecContext(ctx, t.d.rebind(qInsertWebhook), w.ID, w.URL, string(doc), w.Secret, w.CreatedBy, formatTime(w.CreatedAt))
	return t.d.wrap(err, what)
}

// DeleteWebhook deletes the webhook; its deliveries go with it (ON DELETE
// CASCADE). ErrNotFound when there is none.
func (t *tx) DeleteWebhook(ctx context.Context, id string) error {
	what := fmt.Sprintf("webhook %q", id)
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qDeleteWebhook), id)
	if err != nil {
		return t.d.wrap(err, what)
	}
	return mustAffect(res, what)
}

// GetDelivery returns ErrNotFound when no delivery has the ID.
func (r *reader) GetDelivery(ctx context.Context, id int64) (domain.Delivery, error) {
	d, err := scanDelivery(r.q.QueryRowContext(ctx, r.d.rebind(qGetDelivery), id))
	if err != nil {
		return domain.Delivery{}, r.d.wrap(err, fmt.Sprintf("webhook delivery %d", id))
	}
	return d, nil
}

// ListDeliveries pages through deliveries newest first.
func (r *reader) ListDeliveries(ctx context.Context, f store.DeliveryFilter, p store.Page) ([]domain.Delivery, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	before, err := decodeSeqCursor(cursorDelivery, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	w := newWhere(`SELECT ` + deliveryCols + ` FROM webhook_deliveries WHERE 1 = 1`)
	w.and(before > 0, `id < ?`, before)
	w.and(f.WebhookID != "", `webhook_id = ?`, f.WebhookID)
	w.and(f.Status != "", `status = ?`, string(f.Status))
	query, args := w.end(`ORDER BY id DESC LIMIT ?`, p.Limit+1)
	ds, err := queryAll(ctx, r.q, r.d.rebind(query), args, p.Limit+1, scanDelivery)
	if err != nil {
		return nil, "", r.d.wrap(err, "list webhook deliveries")
	}
	ds, next := cutPage(ds, p.Limit, cursorDelivery, func(d domain.Delivery) string { return fmt.Sprint(d.ID) })
	return ds, next, nil
}

// DueDeliveries returns the earliest due pending delivery of each
// webhook, longest waiting first.
func (r *reader) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]domain.Delivery, error) {
	if limit < 1 || limit > store.MaxLimit {
		return nil, fmt.Errorf("due webhook deliveries: limit %d must be between 1 and %d: %w", limit, store.MaxLimit, domain.ErrInvalid)
	}
	ds, err := queryAll(ctx, r.q, r.d.rebind(qDueDeliveries), []any{formatTime(now), limit}, limit, scanDelivery)
	if err != nil {
		return nil, r.d.wrap(err, "due webhook deliveries")
	}
	return ds, nil
}

func scanDelivery(s scanner) (domain.Delivery, error) {
	var (
		d                    domain.Delivery
		status, evTime, data string
		created, updated     string
		next                 sql.NullString
	)
	if err := s.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Subject, &evTime, &data, &status, &d.Attempts,
		&next, &d.LastStatusCode, &d.LastError, &created, &updated); err != nil {
		return d, err
	}
	d.Status = domain.DeliveryStatus(status)
	d.Data = json.RawMessage(data)
	var err error
	if d.EventTime, err = parseTime(evTime); err != nil {
		return d, fmt.Errorf("webhook delivery %d: event time: %w", d.ID, err)
	}
	if next.Valid {
		if d.NextAttemptAt, err = parseTime(next.String); err != nil {
			return d, fmt.Errorf("webhook delivery %d: next attempt: %w", d.ID, err)
		}
	}
	if d.CreatedAt, err = parseTime(created); err != nil {
		return d, fmt.Errorf("webhook delivery %d: created at: %w", d.ID, err)
	}
	if d.UpdatedAt, err = parseTime(updated); err != nil {
		return d, fmt.Errorf("webhook delivery %d: updated at: %w", d.ID, err)
	}
	return d, nil
}

// nextAttempt stores a pending delivery's next attempt time and an ended
// one's absence of it.
func nextAttempt(d domain.Delivery) sql.NullString {
	if d.Status != domain.DeliveryPending {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(d.NextAttemptAt), Valid: true}
}

// CreateDelivery stores d with the next ID. ErrNotFound when the webhook
// does not exist, ErrConflict when the event is already queued for it.
func (t *tx) CreateDelivery(ctx context.Context, d domain.Delivery) (domain.Delivery, error) {
	what := fmt.Sprintf("delivery of event %q to webhook %q", d.EventID, d.WebhookID)
	if d.Status == domain.DeliveryPending && d.NextAttemptAt.IsZero() {
		return domain.Delivery{}, fmt.Errorf("%s: a pending delivery needs a next attempt time: %w", what, domain.ErrInvalid)
	}
	data := string(d.Data)
	if data == "" {
		data = "null"
	}
	err := t.tx.QueryRowContext(ctx, t.d.rebind(qInsertDelivery),
		d.WebhookID, d.EventID, d.EventType, d.Subject, formatTime(d.EventTime), data, string(d.Status), d.Attempts,
		nextAttempt(d), d.LastStatusCode, d.LastError, formatTime(d.CreatedAt), formatTime(d.UpdatedAt)).Scan(&d.ID)
	if err != nil {
		return domain.Delivery{}, t.d.wrap(err, what)
	}
	return t.GetDelivery(ctx, d.ID)
}

// UpdateDelivery records an attempt's outcome; ErrNotFound when the
// delivery is gone.
func (t *tx) UpdateDelivery(ctx context.Context, d domain.Delivery) error {
	what := fmt.Sprintf("webhook delivery %d", d.ID)
	if d.Status == domain.DeliveryPending && d.NextAttemptAt.IsZero() {
		return fmt.Errorf("%s: a pending delivery needs a next attempt time: %w", what, domain.ErrInvalid)
	}
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qUpdateDelivery),
		string(d.Status), d.Attempts, nextAttempt(d), d.LastStatusCode, d.LastError, formatTime(d.UpdatedAt), d.ID)
	if err != nil {
		return t.d.wrap(err, what)
	}
	return mustAffect(res, what)
}

// PruneDeliveries deletes ended deliveries last updated before the time.
func (t *tx) PruneDeliveries(ctx context.Context, before time.Time) (int, error) {
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qPruneDeliveries), formatTime(before))
	if err != nil {
		return 0, t.d.wrap(err, "prune webhook deliveries")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, t.d.wrap(err, "prune webhook deliveries")
	}
	return int(n), nil
}
