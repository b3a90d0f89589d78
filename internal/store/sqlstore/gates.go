package sqlstore

import (
	"context"
	"fmt"

	gojson "github.com/goccy/go-json"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

const policyCols = `model, environment, revision, policy, source, created_by, created_at`

const (
	qGetGatePolicy = `SELECT ` + policyCols + ` FROM gate_policies WHERE model = ? AND environment = ? ORDER BY revision DESC LIMIT 1`
	// The latest revision of each (model, environment).
	qListGatePolicies = `SELECT ` + policyCols + ` FROM gate_policies p WHERE (? = '' OR model = ?) AND revision = ` +
		`(SELECT MAX(revision) FROM gate_policies q WHERE q.model = p.model AND q.environment = p.environment) ORDER BY model, environment`
	qNextPolicyRevision = `SELECT COALESCE(MAX(revision), 0) + 1 FROM gate_policies WHERE model = ? AND environment = ?`
	qInsertGatePolicy   = `INSERT INTO gate_policies (` + policyCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`

	promotionCols    = `id, model, version, environment, state, doc, created_at, updated_at`
	qGetPromotion    = `SELECT ` + promotionCols + ` FROM promotions WHERE id = ?`
	qNextPromotion   = `SELECT COALESCE(MAX(id), 0) + 1 FROM promotions`
	qInsertPromotion = `INSERT INTO promotions (` + promotionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qUpdatePromotion = `UPDATE promotions SET state = ?, doc = ?, updated_at = ? WHERE id = ? AND state = 'pending'`
	qPromotionState  = `SELECT state FROM promotions WHERE id = ?`
)

const cursorPromotion = "p"

// policyDoc is the policy column.
type policyDoc struct {
	Dataset   string            `json:"dataset,omitempty"`
	Rules     []domain.GateRule `json:"rules"`
	Approvals domain.Approvals  `json:"approvals"`
}

// GetGatePolicy returns the latest revision.
func (r *reader) GetGatePolicy(ctx context.Context, model, env string) (domain.GatePolicy, error) {
	p, err := scanPolicy(r.q.QueryRowContext(ctx, r.d.rebind(qGetGatePolicy), model, env))
	if err != nil {
		return domain.GatePolicy{}, r.d.wrap(err, fmt.Sprintf("gate policy of model %q for environment %q", model, env))
	}
	return p, nil
}

// ListGatePolicies returns the latest revision of each policy.
func (r *reader) ListGatePolicies(ctx context.Context, model string) ([]domain.GatePolicy, error) {
	ps, err := queryAll(ctx, r.q, r.d.rebind(qListGatePolicies), []any{model, model}, 0, scanPolicy)
	if err != nil {
		return nil, r.d.wrap(err, "list gate policies")
	}
	return ps, nil
}

func scanPolicy(s scanner) (domain.GatePolicy, error) {
	var p domain.GatePolicy
	var doc, created string
	if err := s.Scan(&p.Model, &p.Environment, &p.Revision, &doc, &p.Source, &p.CreatedBy, &created); err != nil {
		return p, err
	}
	var d policyDoc
	if err := gojson.Unmarshal([]byte(doc), &d); err != nil {
		return p, fmt.Errorf("stored gate policy of %q for %q: %w", p.Model, p.Environment, err)
	}
	p.Dataset, p.Rules, p.Approvals = d.Dataset, d.Rules, d.Approvals
	var err error
	if p.CreatedAt, err = parseTime(created); err != nil {
		return p, fmt.Errorf("gate policy of %q for %q: %w", p.Model, p.Environment, err)
	}
	return p, nil
}

// CreateGatePolicy stores the next revision.
func (t *tx) CreateGatePolicy(ctx context.Context, p domain.GatePolicy) (domain.GatePolicy, error) {
	what := fmt.Sprintf("gate policy of model %q for environment %q", p.Model, p.Environment)
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qNextPolicyRevision), p.Model, p.Environment).Scan(&p.Revision); err != nil {
		return domain.GatePolicy{}, t.d.wrap(err, what)
	}
	doc, err := encodeJSON("gate policy", policyDoc{Dataset: p.Dataset, Rules: p.Rules, Approvals: p.Approvals})
	if err != nil {
		return domain.GatePolicy{}, fmt.Errorf("%s: %w", what, err)
	}
	p.CreatedAt = p.CreatedAt.UTC()
	if _, err := t.tx.ExecContext(ctx, t.d.rebind(qInsertGatePolicy), p.Model, p.Environment, p.Revision, doc, p.Source,
		p.CreatedBy, formatTime(p.CreatedAt)); err != nil {
		return domain.GatePolicy{}, t.d.wrap(err, fmt.Sprintf("model %q", p.Model))
	}
	return p, nil
}

// GetPromotion returns one promotion.
func (r *reader) GetPromotion(ctx context.Context, id int64) (domain.Promotion, error) {
	p, err := scanPromotion(r.q.QueryRowContext(ctx, r.d.rebind(qGetPromotion), id))
	if err != nil {
		return domain.Promotion{}, r.d.wrap(err, fmt.Sprintf("promotion %d", id))
	}
	return p, nil
}

// ListPromotions pages through promotions newest first.
func (r *reader) ListPromotions(ctx context.Context, f store.PromotionFilter, p store.Page) ([]domain.Promotion, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list promotions: %w", err)
	}
	before, err := decodeSeqCursor(cursorPromotion, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list promotions: %w", err)
	}
	w := newWhere(`SELECT ` + promotionCols + ` FROM promotions WHERE 1 = 1`)
	w.and(before > 0, `id < ?`, before)
	w.and(f.Model != "", `model = ?`, f.Model)
	w.and(f.Environment != "", `environment = ?`, f.Environment)
	w.and(f.State != "", `state = ?`, string(f.State))
	w.and(f.Version != 0, `version = ?`, f.Version)
	query, args := w.end(`ORDER BY id DESC LIMIT ?`, p.Limit+1)
	ps, err := queryAll(ctx, r.q, r.d.rebind(query), args, p.Limit+1, scanPromotion)
	if err != nil {
		return nil, "", r.d.wrap(err, "list promotions")
	}
	ps, next := cutPage(ps, p.Limit, cursorPromotion, func(p domain.Promotion) string { return fmt.Sprint(p.ID) })
	return ps, next, nil
}

func scanPromotion(s scanner) (domain.Promotion, error) {
	var p domain.Promotion
	var state, doc, created, updated string
	if err := s.Scan(&p.ID, &p.Model, &p.Version, &p.Environment, &state, &doc, &created, &updated); err != nil {
		return p, err
	}
	id, model, version, env := p.ID, p.Model, p.Version, p.Environment
	if err := gojson.Unmarshal([]byte(doc), &p); err != nil {
		return p, fmt.Errorf("stored promotion %d: %w", id, err)
	}
	// The columns are the truth for what is indexed.
	p.ID, p.Model, p.Version, p.Environment, p.State = id, model, version, env, domain.PromotionState(state)
	var err error
	if p.CreatedAt, err = parseTime(created); err != nil {
		return p, fmt.Errorf("promotion %d: %w", id, err)
	}
	if p.UpdatedAt, err = parseTime(updated); err != nil {
		return p, fmt.Errorf("promotion %d: %w", id, err)
	}
	return p, nil
}

// CreatePromotion stores a promotion under the next ID.
func (t *tx) CreatePromotion(ctx context.Context, p domain.Promotion) (domain.Promotion, error) {
	what := fmt.Sprintf("promotion of version %d of model %q to %s", p.Version, p.Model, p.Environment)
	if _, err := domain.ParsePromotionState(string(p.State)); err != nil {
		return domain.Promotion{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qNextPromotion)).Scan(&p.ID); err != nil {
		return domain.Promotion{}, t.d.wrap(err, what)
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	doc, err := encodeJSON("promotion", p)
	if err != nil {
		return domain.Promotion{}, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := t.tx.ExecContext(ctx, t.d.rebind(qInsertPromotion), p.ID, p.Model, p.Version, p.Environment, string(p.State),
		doc, formatTime(p.CreatedAt), formatTime(p.UpdatedAt)); err != nil {
		return domain.Promotion{}, t.d.wrap(err, fmt.Sprintf("version %d of model %q", p.Version, p.Model))
	}
	return p, nil
}

// UpdatePromotion changes a pending promotion.
func (t *tx) UpdatePromotion(ctx context.Context, p domain.Promotion) error {
	what := fmt.Sprintf("promotion %d", p.ID)
	if _, err := domain.ParsePromotionState(string(p.State)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	doc, err := encodeJSON("promotion", p)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qUpdatePromotion), string(p.State), doc, formatTime(p.UpdatedAt), p.ID)
	if err != nil {
		return t.d.wrap(err, what)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: rows affected: %w", what, err)
	} else if n == 1 {
		return nil
	}
	var state string
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qPromotionState), p.ID).Scan(&state); err != nil {
		return t.d.wrap(err, what)
	}
	return fmt.Errorf("%s is %s and can no longer change: %w", what, state, domain.ErrPrecondition)
}
