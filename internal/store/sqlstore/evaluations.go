package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	gojson "github.com/goccy/go-json"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

const evaluationCols = `id, model, version, dataset, dataset_version, dataset_digest, status, error, task, ` +
	`row_count, threshold, result, baseline, created_by, started_at, finished_at`

const (
	qGetEvaluation    = `SELECT ` + evaluationCols + ` FROM evaluations WHERE id = ?`
	qNextEvaluation   = `SELECT COALESCE(MAX(id), 0) + 1 FROM evaluations`
	qInsertEvaluation = `INSERT INTO evaluations (` + evaluationCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qFinishEvaluation = `UPDATE evaluations SET status = ?, error = ?, row_count = ?, result = ?, baseline = ?, finished_at = ?` +
		` WHERE id = ? AND status = 'running'`
	qEvaluationStatus = `SELECT status FROM evaluations WHERE id = ?`
)

const cursorEvaluation = "e"

// evaluationResult is the result column: what an evaluation found.
type evaluationResult struct {
	Metrics  map[string]float64      `json:"metrics,omitempty"`
	Segments []domain.SegmentMetrics `json:"segments,omitempty"`
	Fairness *domain.Fairness        `json:"fairness,omitempty"`
	Features *domain.FeatureMatch    `json:"features,omitempty"`
}

// GetEvaluation returns one evaluation.
func (r *reader) GetEvaluation(ctx context.Context, id int64) (domain.Evaluation, error) {
	e, err := scanEvaluation(r.q.QueryRowContext(ctx, r.d.rebind(qGetEvaluation), id))
	if err != nil {
		return domain.Evaluation{}, r.d.wrap(err, fmt.Sprintf("evaluation %d", id))
	}
	return e, nil
}

// evaluationQuery builds a filtered listing, ascending or descending by ID.
func evaluationQuery(f store.EvaluationFilter, after int64, desc bool, limit int) (string, []any) {
	w := newWhere(`SELECT `+evaluationCols+` FROM evaluations WHERE id > ?`, after)
	w.and(f.Model != "", `model = ?`, f.Model)
	w.and(f.Version != 0, `version = ?`, f.Version)
	w.and(f.DatasetDigest != "", `dataset_digest = ?`, f.DatasetDigest)
	w.and(f.Dataset != "", `dataset = ?`, f.Dataset)
	w.and(f.DatasetVersion != 0, `dataset_version = ?`, f.DatasetVersion)
	w.and(f.Status != "", `status = ?`, string(f.Status))
	if desc {
		return w.end(`ORDER BY id DESC LIMIT ?`, limit)
	}
	return w.end(`ORDER BY id LIMIT ?`, limit)
}

// ListEvaluations pages through evaluations in ID order.
func (r *reader) ListEvaluations(ctx context.Context, f store.EvaluationFilter, p store.Page) ([]domain.Evaluation, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list evaluations: %w", err)
	}
	after, err := decodeSeqCursor(cursorEvaluation, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list evaluations: %w", err)
	}
	query, args := evaluationQuery(f, after, false, p.Limit+1)
	es, err := queryAll(ctx, r.q, r.d.rebind(query), args, p.Limit+1, scanEvaluation)
	if err != nil {
		return nil, "", r.d.wrap(err, "list evaluations")
	}
	es, next := cutPage(es, p.Limit, cursorEvaluation, func(e domain.Evaluation) string {
		return fmt.Sprint(e.ID)
	})
	return es, next, nil
}

// LatestEvaluation returns the newest evaluation matching f.
func (r *reader) LatestEvaluation(ctx context.Context, f store.EvaluationFilter) (domain.Evaluation, error) {
	query, args := evaluationQuery(f, 0, true, 1)
	e, err := scanEvaluation(r.q.QueryRowContext(ctx, r.d.rebind(query), args...))
	if err != nil {
		return domain.Evaluation{}, r.d.wrap(err, fmt.Sprintf("evaluation of model %q version %d on dataset %s with status %q",
			f.Model, f.Version, f.DatasetDigest, f.Status))
	}
	return e, nil
}

func scanEvaluation(s scanner) (domain.Evaluation, error) {
	var e domain.Evaluation
	var status, task, result, started string
	var finished sql.NullString
	if err := s.Scan(&e.ID, &e.Model, &e.Version, &e.Dataset, &e.DatasetVersion, &e.DatasetDigest, &status, &e.Error,
		&task, &e.Rows, &e.Threshold, &result, &e.Baseline, &e.CreatedBy, &started, &finished); err != nil {
		return e, err
	}
	e.Status, e.Task = domain.EvaluationStatus(status), domain.Task(task)
	var res evaluationResult
	if err := gojson.Unmarshal([]byte(result), &res); err != nil {
		return e, fmt.Errorf("stored result of evaluation %d: %w", e.ID, err)
	}
	e.Metrics, e.Segments, e.Fairness, e.Features = res.Metrics, res.Segments, res.Fairness, res.Features
	var err error
	if e.StartedAt, err = parseTime(started); err != nil {
		return e, fmt.Errorf("evaluation %d: %w", e.ID, err)
	}
	if finished.Valid {
		at, err := parseTime(finished.String)
		if err != nil {
			return e, fmt.Errorf("evaluation %d: %w", e.ID, err)
		}
		e.FinishedAt = &at
	}
	return e, nil
}

func encodeResult(e domain.Evaluation) (string, error) {
	if len(e.Metrics) == 0 {
		e.Metrics = nil
	}
	return encodeJSON("evaluation result", evaluationResult{Metrics: e.Metrics, Segments: e.Segments, Fairness: e.Fairness, Features: e.Features})
}

// CreateEvaluation stores a running evaluation under the next ID.
func (t *tx) CreateEvaluation(ctx context.Context, e domain.Evaluation) (domain.Evaluation, error) {
	what := fmt.Sprintf("evaluation of version %d of model %q", e.Version, e.Model)
	if e.Status != domain.EvaluationRunning || e.FinishedAt != nil {
		return domain.Evaluation{}, fmt.Errorf("%s: a new evaluation must be running, not %q: %w", what, e.Status, domain.ErrInvalid)
	}
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qNextEvaluation)).Scan(&e.ID); err != nil {
		return domain.Evaluation{}, t.d.wrap(err, what)
	}
	e.StartedAt = e.StartedAt.UTC()
	if len(e.Metrics) == 0 {
		e.Metrics = nil
	}
	result, err := encodeResult(e)
	if err != nil {
		return domain.Evaluation{}, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := t.tx.ExecContext(ctx, t.d.rebind(qInsertEvaluation), e.ID, e.Model, e.Version, e.Dataset, e.DatasetVersion,
		e.DatasetDigest, string(e.Status), e.Error, string(e.Task), e.Rows, e.Threshold, result, e.Baseline, e.CreatedBy,
		formatTime(e.StartedAt), nil); err != nil {
		// The foreign keys are the version's and the dataset's.
		return domain.Evaluation{}, t.d.wrap(err, fmt.Sprintf("version %d of model %q or version %d of dataset %q",
			e.Version, e.Model, e.DatasetVersion, e.Dataset))
	}
	return e, nil
}

// FinishEvaluation moves a running evaluation to its outcome, once.
func (t *tx) FinishEvaluation(ctx context.Context, e domain.Evaluation) error {
	what := fmt.Sprintf("evaluation %d", e.ID)
	if e.Status != domain.EvaluationSucceeded && e.Status != domain.EvaluationFailed {
		return fmt.Errorf("%s: an evaluation finishes as succeeded or failed, not %q: %w", what, e.Status, domain.ErrInvalid)
	}
	if e.FinishedAt == nil {
		return fmt.Errorf("%s: finishing needs the time it finished: %w", what, domain.ErrInvalid)
	}
	result, err := encodeResult(e)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qFinishEvaluation), string(e.Status), e.Error, e.Rows, result, e.Baseline,
		formatTime(*e.FinishedAt), e.ID)
	if err != nil {
		return t.d.wrap(err, what)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: rows affected: %w", what, err)
	} else if n == 1 {
		return nil
	}
	var status string
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qEvaluationStatus), e.ID).Scan(&status); err != nil {
		return t.d.wrap(err, what)
	}
	return fmt.Errorf("%s has finished already (%s) and never changes: %w", what, status, domain.ErrPrecondition)
}
