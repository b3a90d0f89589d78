package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

const deploymentCols = `model, environment, versions, stable, routing, revision, updated_by, updated_at`

const (
	qGetDeployment    = `SELECT ` + deploymentCols + ` FROM deployments WHERE model = ? AND environment = ?`
	qUpsertDeployment = `INSERT INTO deployments (` + deploymentCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ` +
		`ON CONFLICT (model, environment) DO UPDATE SET versions = excluded.versions, stable = excluded.stable, routing = excluded.routing, ` +
		`revision = excluded.revision, updated_by = excluded.updated_by, updated_at = excluded.updated_at`
	qDeleteDeployment = `DELETE FROM deployments WHERE model = ? AND environment = ?`
)

// GetDeployment returns ErrNotFound when the environment serves nothing of
// the model.
func (r *reader) GetDeployment(ctx context.Context, model, env string) (domain.Deployment, error) {
	d, err := scanDeployment(r.q.QueryRowContext(ctx, r.d.rebind(qGetDeployment), model, env))
	if err != nil {
		return domain.Deployment{}, r.d.wrap(err, fmt.Sprintf("deployment of model %q in environment %q", model, env))
	}
	return d, nil
}

// ListDeployments returns deployments ordered by model then environment,
// optionally of one model.
func (r *reader) ListDeployments(ctx context.Context, f store.DeploymentFilter, p store.Page) ([]domain.Deployment, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list deployments: %w", err)
	}
	after, err := decodeCursor(cursorDeployment, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list deployments: %w", err)
	}
	afterModel, afterEnv, _ := strings.Cut(after, "\x00")
	q := `SELECT ` + deploymentCols + ` FROM deployments WHERE (model > ? OR (model = ? AND environment > ?))`
	args := []any{afterModel, afterModel, afterEnv}
	if f.Model != "" {
		q += ` AND model = ?`
		args = append(args, f.Model)
	}
	if f.Environment != "" {
		q += ` AND environment = ?`
		args = append(args, f.Environment)
	}
	q += ` ORDER BY model, environment LIMIT ?`
	args = append(args, p.Limit+1)
	ds, err := queryAll(ctx, r.q, r.d.rebind(q), args, p.Limit+1, scanDeployment)
	if err != nil {
		return nil, "", r.d.wrap(err, "list deployments")
	}
	ds, next := cutPage(ds, p.Limit, cursorDeployment, func(d domain.Deployment) string { return d.Model + "\x00" + d.Environment })
	return ds, next, nil
}

func scanDeployment(s scanner) (domain.Deployment, error) {
	var (
		d                          domain.Deployment
		versions, routing, updated string
	)
	if err := s.Scan(&d.Model, &d.Environment, &versions, &d.Stable, &routing, &d.Revision, &d.UpdatedBy, &updated); err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(versions), &d.Versions); err != nil {
		return d, fmt.Errorf("deployment of model %q in %q: versions: %w", d.Model, d.Environment, err)
	}
	if err := json.Unmarshal([]byte(routing), &d.Routing); err != nil {
		return d, fmt.Errorf("deployment of model %q in %q: routing: %w", d.Model, d.Environment, err)
	}
	var err error
	if d.UpdatedAt, err = parseTime(updated); err != nil {
		return d, fmt.Errorf("deployment of model %q in %q: updated at: %w", d.Model, d.Environment, err)
	}
	return d, nil
}

// PutDeployment creates or replaces a deployment as given (revision
// included); ErrNotFound when the model does not exist.
func (t *tx) PutDeployment(ctx context.Context, d domain.Deployment) error {
	what := fmt.Sprintf("deployment of model %q in environment %q", d.Model, d.Environment)
	versions, err := json.Marshal(d.Versions)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	routing, err := json.Marshal(d.Routing)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	_, err = t.tx.ExecContext(ctx, t.d.rebind(qUpsertDeployment),
		d.Model, d.Environment, string(versions), d.Stable, string(routing), d.Revision, d.UpdatedBy, formatTime(d.UpdatedAt))
	return t.d.wrap(err, what)
}

// DeleteDeployment returns ErrNotFound when there is none.
func (t *tx) DeleteDeployment(ctx context.Context, model, env string) error {
	what := fmt.Sprintf("deployment of model %q in environment %q", model, env)
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qDeleteDeployment), model, env)
	if err != nil {
		return t.d.wrap(err, what)
	}
	return mustAffect(res, what)
}
