package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// activePhases is the SQL list of the phases that are not terminal,
// written exactly as in the partial unique index rollouts_one_active of
// 010_rollouts.sql so SQLite can answer ActiveRollout from that index.
const activePhases = `('pending', 'progressing', 'paused', 'awaiting_approval', 'promoting')`

const (
	rolloutCols      = `id, model, environment, baseline, candidate, phase, in_effect, revision, spec, doc, created_by, created_at, updated_at`
	qGetRollout      = `SELECT ` + rolloutCols + ` FROM rollouts WHERE id = ?`
	qActiveRollout   = `SELECT ` + rolloutCols + ` FROM rollouts WHERE model = ? AND environment = ? AND phase IN ` + activePhases
	qNextRollout     = `SELECT COALESCE(MAX(id), 0) + 1 FROM rollouts`
	qInsertRollout   = `INSERT INTO rollouts (` + rolloutCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qUpdateRollout   = `UPDATE rollouts SET phase = ?, in_effect = ?, revision = ?, doc = ?, updated_at = ? WHERE id = ? AND revision = ?`
	cursorRollout    = "r"
	rolloutDocFormat = "rollout"
)

// GetRollout returns one rollout.
func (r *reader) GetRollout(ctx context.Context, id int64) (domain.Rollout, error) {
	ro, err := scanRollout(r.q.QueryRowContext(ctx, r.d.rebind(qGetRollout), id))
	if err != nil {
		return domain.Rollout{}, r.d.wrap(err, fmt.Sprintf("rollout %d", id))
	}
	return ro, nil
}

// ActiveRollout returns the one rollout of model in env that has not
// ended.
func (r *reader) ActiveRollout(ctx context.Context, model, env string) (domain.Rollout, error) {
	ro, err := scanRollout(r.q.QueryRowContext(ctx, r.d.rebind(qActiveRollout), model, env))
	if err != nil {
		return domain.Rollout{}, r.d.wrap(err, fmt.Sprintf("active rollout of model %q in %s", model, env))
	}
	return ro, nil
}

// ListRollouts pages through rollouts newest first.
func (r *reader) ListRollouts(ctx context.Context, f store.RolloutFilter, p store.Page) ([]domain.Rollout, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list rollouts: %w", err)
	}
	before, err := decodeSeqCursor(cursorRollout, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list rollouts: %w", err)
	}
	if f.Phase != "" {
		if _, err := domain.ParseRolloutPhase(string(f.Phase)); err != nil {
			return nil, "", fmt.Errorf("list rollouts: %w", err)
		}
	}
	w := newWhere(`SELECT ` + rolloutCols + ` FROM rollouts WHERE 1 = 1`)
	w.and(before > 0, `id < ?`, before)
	w.and(f.Model != "", `model = ?`, f.Model)
	w.and(f.Environment != "", `environment = ?`, f.Environment)
	w.and(f.Phase != "", `phase = ?`, string(f.Phase))
	w.and(f.Active, `phase IN `+activePhases)
	w.and(f.NotInEffect, `in_effect = 0`)
	query, args := w.end(`ORDER BY id DESC LIMIT ?`, p.Limit+1)
	rs, err := queryAll(ctx, r.q, r.d.rebind(query), args, p.Limit+1, scanRollout)
	if err != nil {
		return nil, "", r.d.wrap(err, "list rollouts")
	}
	rs, next := cutPage(rs, p.Limit, cursorRollout, func(r domain.Rollout) string { return fmt.Sprint(r.ID) })
	return rs, next, nil
}

func scanRollout(s scanner) (domain.Rollout, error) {
	var c domain.Rollout
	var phase, spec, doc, created, updated string
	var inEffect int64
	if err := s.Scan(&c.ID, &c.Model, &c.Environment, &c.Baseline, &c.Candidate, &phase, &inEffect, &c.Revision,
		&spec, &doc, &c.CreatedBy, &created, &updated); err != nil {
		return c, err
	}
	var r domain.Rollout
	if err := gojson.Unmarshal([]byte(doc), &r); err != nil {
		return r, fmt.Errorf("stored rollout %d: %w", c.ID, err)
	}
	// The columns are the truth for what is indexed.
	r.ID, r.Model, r.Environment, r.Baseline, r.Candidate = c.ID, c.Model, c.Environment, c.Baseline, c.Candidate
	r.Phase, r.InEffect, r.Revision, r.Spec, r.CreatedBy = domain.RolloutPhase(phase), inEffect == 1, c.Revision, spec, c.CreatedBy
	var err error
	if r.CreatedAt, err = parseTime(created); err != nil {
		return r, fmt.Errorf("rollout %d: %w", c.ID, err)
	}
	if r.UpdatedAt, err = parseTime(updated); err != nil {
		return r, fmt.Errorf("rollout %d: %w", c.ID, err)
	}
	return r, nil
}

// rolloutDoc is the doc column of r: everything but the spec, which has
// its own column and is stored as given.
func rolloutDoc(r domain.Rollout) (string, error) {
	r.Spec = ""
	return encodeJSON(rolloutDocFormat, r)
}

// inUTC returns r with every time in UTC, sharing no slice with r.
func inUTC(r domain.Rollout) domain.Rollout {
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	r.StepStartedAt, r.RunStartedAt = r.StepStartedAt.UTC(), r.RunStartedAt.UTC()
	r.PromotedAt, r.EndedAt = utcPtr(r.PromotedAt), utcPtr(r.EndedAt)
	r.Traffic.Sticky = clonePtr(r.Traffic.Sticky)
	r.Approvals = slices.Clone(r.Approvals)
	for i := range r.Approvals {
		r.Approvals[i].At = r.Approvals[i].At.UTC()
	}
	r.Verdicts = slices.Clone(r.Verdicts)
	for i := range r.Verdicts {
		r.Verdicts[i].At = r.Verdicts[i].At.UTC()
	}
	r.History = slices.Clone(r.History)
	for i := range r.History {
		r.History[i].At = r.History[i].At.UTC()
	}
	return r
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// CreateRollout stores a new active rollout under the next ID.
func (t *tx) CreateRollout(ctx context.Context, r domain.Rollout) (domain.Rollout, error) {
	what := fmt.Sprintf("rollout of model %q in %s", r.Model, r.Environment)
	if err := r.Validate(); err != nil {
		return domain.Rollout{}, fmt.Errorf("%s: %w", what, err)
	}
	if !r.Active() {
		return domain.Rollout{}, fmt.Errorf("%s: a rollout is created active, not %s: %w", what, r.Phase, domain.ErrInvalid)
	}
	switch active, err := t.ActiveRollout(ctx, r.Model, r.Environment); {
	case err == nil:
		return domain.Rollout{}, fmt.Errorf("model %q already has rollout %d in %s (%s); end it, or supersede it: %w",
			r.Model, active.ID, r.Environment, active.Phase, domain.ErrConflict)
	case !errors.Is(err, domain.ErrNotFound):
		return domain.Rollout{}, err
	}
	// Named not-found errors; the foreign keys are the backstop.
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qModelExists), r.Model).Scan(new(int)); err != nil {
		return domain.Rollout{}, t.d.wrap(err, fmt.Sprintf("model %q", r.Model))
	}
	for _, v := range []int{r.Baseline, r.Candidate} {
		if err := t.tx.QueryRowContext(ctx, t.d.rebind(qVersionExists), r.Model, v).Scan(new(int)); err != nil {
			return domain.Rollout{}, t.d.wrap(err, fmt.Sprintf("version %d of model %q", v, r.Model))
		}
	}
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qNextRollout)).Scan(&r.ID); err != nil {
		return domain.Rollout{}, t.d.wrap(err, what)
	}
	r = inUTC(r)
	r.Revision = 1
	if err := t.insertRollout(ctx, r); err != nil {
		return domain.Rollout{}, err
	}
	return r, nil
}

func (t *tx) insertRollout(ctx context.Context, r domain.Rollout) error {
	doc, err := rolloutDoc(r)
	if err != nil {
		return fmt.Errorf("rollout of model %q in %s: %w", r.Model, r.Environment, err)
	}
	if _, err := t.tx.ExecContext(ctx, t.d.rebind(qInsertRollout), r.ID, r.Model, r.Environment, r.Baseline, r.Candidate,
		string(r.Phase), boolInt(r.InEffect), r.Revision, r.Spec, doc, r.CreatedBy, formatTime(r.CreatedAt), formatTime(r.UpdatedAt)); err != nil {
		// A unique violation here is the one-active index: another
		// writer got there first.
		return t.d.wrap(err, fmt.Sprintf("an active rollout of model %q in %s", r.Model, r.Environment))
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// UpdateRollout is a compare-and-swap on the stored revision.
func (t *tx) UpdateRollout(ctx context.Context, r domain.Rollout, expectedRevision int64) (domain.Rollout, error) {
	what := fmt.Sprintf("rollout %d", r.ID)
	if err := r.Validate(); err != nil {
		return domain.Rollout{}, fmt.Errorf("%s: %w", what, err)
	}
	stored, err := t.GetRollout(ctx, r.ID)
	if err != nil {
		return domain.Rollout{}, err
	}
	if stored.Revision != expectedRevision {
		return domain.Rollout{}, fmt.Errorf("%s is at revision %d, not %d; reload it: %w", what, stored.Revision, expectedRevision, domain.ErrConflict)
	}
	r = inUTC(r)
	if field := changedIdentity(stored, r); field != "" {
		return domain.Rollout{}, fmt.Errorf("%s: its %s never changes: %w", what, field, domain.ErrInvalid)
	}
	if stored.Phase.Terminal() {
		if err := endedChange(stored, r); err != nil {
			return domain.Rollout{}, fmt.Errorf("%s ended (%s): %w", what, stored.Phase, err)
		}
	}
	r.Revision = expectedRevision + 1
	doc, err := rolloutDoc(r)
	if err != nil {
		return domain.Rollout{}, fmt.Errorf("%s: %w", what, err)
	}
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qUpdateRollout), string(r.Phase), boolInt(r.InEffect), r.Revision, doc,
		formatTime(r.UpdatedAt), r.ID, expectedRevision)
	if err != nil {
		return domain.Rollout{}, t.d.wrap(err, what)
	}
	if n, err := res.RowsAffected(); err != nil {
		return domain.Rollout{}, fmt.Errorf("%s: rows affected: %w", what, err)
	} else if n != 1 {
		return domain.Rollout{}, fmt.Errorf("%s changed under this transaction: %w", what, domain.ErrConflict)
	}
	return r, nil
}

// changedIdentity names the first field that says what a rollout is
// about and differs between stored and r ("" when none).
func changedIdentity(stored, r domain.Rollout) string {
	switch {
	case r.Model != stored.Model:
		return "model"
	case r.Environment != stored.Environment:
		return "environment"
	case r.Strategy != stored.Strategy:
		return "strategy"
	case r.Baseline != stored.Baseline || r.Candidate != stored.Candidate:
		return "versions"
	case r.CandidateRef != stored.CandidateRef:
		return "candidate ref"
	case r.Spec != stored.Spec:
		return "spec"
	case r.CreatedBy != stored.CreatedBy || !r.CreatedAt.Equal(stored.CreatedAt):
		return "creation"
	}
	return ""
}

// endedChange allows the one change a rollout that ended may take:
// marking its end state in effect, with nothing else changed but
// UpdatedAt. The restart path (redo Desired for every rollout not in
// effect) needs that write; nothing else moves a terminal rollout.
func endedChange(stored, r domain.Rollout) error {
	if stored.InEffect {
		return fmt.Errorf("it is in effect and no longer changes: %w", domain.ErrPrecondition)
	}
	if !r.InEffect {
		return fmt.Errorf("the only change it takes is to be marked in effect: %w", domain.ErrPrecondition)
	}
	a, b := stored, r
	for _, x := range []*domain.Rollout{&a, &b} {
		x.InEffect, x.UpdatedAt, x.Revision = false, time.Time{}, 0
	}
	da, errA := rolloutDoc(a)
	db, errB := rolloutDoc(b)
	if err := errors.Join(errA, errB); err != nil {
		return err
	}
	if da != db {
		return fmt.Errorf("the only change it takes is to be marked in effect, with nothing else changed: %w", domain.ErrPrecondition)
	}
	return nil
}
