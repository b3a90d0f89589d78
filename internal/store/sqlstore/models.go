package sqlstore

import (
	"context"
	"fmt"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// GetModel returns ErrNotFound when no model has the name.
func (r *reader) GetModel(ctx context.Context, name string) (domain.Model, error) {
	m, err := scanModel(r.q.QueryRowContext(ctx, r.d.rebind(qGetModel), name))
	if err != nil {
		return domain.Model{}, r.d.wrap(err, fmt.Sprintf("model %q", name))
	}
	return m, nil
}

// ListModels returns models in name order.
func (r *reader) ListModels(ctx context.Context, p store.Page) ([]domain.Model, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list models: %w", err)
	}
	after, err := decodeCursor(cursorModel, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list models: %w", err)
	}
	models, err := queryAll(ctx, r.q, r.d.rebind(qListModels), []any{after, p.Limit + 1}, p.Limit+1, scanModel)
	if err != nil {
		return nil, "", r.d.wrap(err, "list models")
	}
	models, next := cutPage(models, p.Limit, cursorModel, func(m domain.Model) string { return m.Name })
	return models, next, nil
}

// modelExists returns ErrNotFound naming the model when it does not exist.
func (r *reader) modelExists(ctx context.Context, q querier, name string) error {
	var one int
	if err := q.QueryRowContext(ctx, r.d.rebind(qModelExists), name).Scan(&one); err != nil {
		return r.d.wrap(err, fmt.Sprintf("model %q", name))
	}
	return nil
}

func scanModel(s scanner) (domain.Model, error) {
	var (
		m             domain.Model
		tags, created string
	)
	if err := s.Scan(&m.Name, &m.Description, &m.Owner, &tags, &m.CreatedBy, &created); err != nil {
		return m, err
	}
	var err error
	if m.Tags, err = decodeStrings("tags", tags); err != nil {
		return m, fmt.Errorf("model %q: %w", m.Name, err)
	}
	if m.CreatedAt, err = parseTime(created); err != nil {
		return m, fmt.Errorf("model %q: created at: %w", m.Name, err)
	}
	return m, nil
}

// CreateModel returns ErrConflict when the name is taken.
func (t *tx) CreateModel(ctx context.Context, m domain.Model) error {
	tags, err := encodeJSON("tags", m.Tags)
	if err != nil {
		return fmt.Errorf("model %q: %w", m.Name, err)
	}
	_, err = t.tx.ExecContext(ctx, t.d.rebind(qInsertModel),
		m.Name, m.Description, m.Owner, tags, m.CreatedBy, formatTime(m.CreatedAt))
	return t.d.wrap(err, fmt.Sprintf("model %q", m.Name))
}
