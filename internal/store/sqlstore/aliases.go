package sqlstore

import (
	"context"
	"fmt"

	"github.com/slipway-ml/slipway/internal/domain"
)

// GetAlias returns ErrNotFound when the model has no such alias.
func (r *reader) GetAlias(ctx context.Context, model, name string) (domain.Alias, error) {
	a, err := scanAlias(r.q.QueryRowContext(ctx, r.d.rebind(qGetAlias), model, name))
	if err != nil {
		return domain.Alias{}, r.d.wrap(err, fmt.Sprintf("alias %q of model %q", name, model))
	}
	return a, nil
}

// ListAliases returns a model's aliases in name order; ErrNotFound when
// the model does not exist.
func (r *reader) ListAliases(ctx context.Context, model string) ([]domain.Alias, error) {
	var aliases []domain.Alias
	err := r.snapshot(ctx, func(q querier) error {
		if err := r.modelExists(ctx, q, model); err != nil {
			return err
		}
		var err error
		aliases, err = queryAll(ctx, q, r.d.rebind(qListAliases), []any{model}, 0, scanAlias)
		return r.d.wrap(err, fmt.Sprintf("aliases of model %q", model))
	})
	return aliases, err
}

func scanAlias(s scanner) (domain.Alias, error) {
	var (
		a       domain.Alias
		updated string
	)
	if err := s.Scan(&a.Model, &a.Name, &a.Version, &a.UpdatedBy, &updated); err != nil {
		return a, err
	}
	var err error
	if a.UpdatedAt, err = parseTime(updated); err != nil {
		return a, fmt.Errorf("alias %q of model %q: updated at: %w", a.Name, a.Model, err)
	}
	return a, nil
}

// SetAlias creates or moves an alias; ErrNotFound when the version (or
// its model) does not exist.
func (t *tx) SetAlias(ctx context.Context, a domain.Alias) error {
	_, err := t.tx.ExecContext(ctx, t.d.rebind(qUpsertAlias),
		a.Model, a.Name, a.Version, a.UpdatedBy, formatTime(a.UpdatedAt))
	if err != nil {
		// The only foreign key is the version's.
		return t.d.wrap(err, fmt.Sprintf("alias %q: version %d of model %q", a.Name, a.Version, a.Model))
	}
	return nil
}

// DeleteAlias returns ErrNotFound when the alias does not exist.
func (t *tx) DeleteAlias(ctx context.Context, model, name string) error {
	what := fmt.Sprintf("alias %q of model %q", name, model)
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qDeleteAlias), model, name)
	if err != nil {
		return t.d.wrap(err, what)
	}
	return mustAffect(res, what)
}
