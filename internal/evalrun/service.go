// Package evalrun runs a model version over every row of an evaluation
// dataset through the version's real runtime — the same fleet and the same
// Open Inference Protocol calls the gateway uses, one row per request — and
// records the evaluation: created running before the first row, finished
// once as succeeded (with metrics from package evaluation) or failed, each
// step with its audit entry in the same transaction. At start-up, Recover
// fails what a crash left running, so no evaluation is ever half-recorded.
//
// Everything that can refuse an evaluation without running it — the
// version, the dataset, the runtime, the model's metadata, the matching of
// columns to features — is checked before anything is recorded.
//
// It is the service the API and the gate engine call; it imports the
// store, the registry's types, runtime endpoints and the pure packages
// dataset and evaluation, never the API or the gateway.
package evalrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/dataset"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/store"
)

// Versions resolves a version reference (a number or @alias).
type Versions interface {
	GetVersion(ctx context.Context, model string, ref registry.Ref) (domain.Version, error)
}

// Datasets finds a dataset version and opens its bytes.
type Datasets interface {
	GetDataset(ctx context.Context, ref string) (domain.Dataset, error)
	OpenDataset(ctx context.Context, d domain.Dataset) (io.ReadCloser, error)
}

// Runtimes runs a version for as long as it is held (the fleet).
type Runtimes interface {
	Acquire(ctx context.Context, v domain.Version) (ep runtime.Endpoint, release func(), err error)
}

// Config wires a Service.
type Config struct {
	Store    store.Store
	Versions Versions
	Datasets Datasets
	Runtimes Runtimes
	Clock    clock.Clock
	Log      *slog.Logger
}

// Service runs and records evaluations.
type Service struct {
	cfg Config
}

// New returns the service.
func New(c Config) *Service {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return &Service{cfg: c}
}

// InterruptedByRestart is the error of an evaluation a server restart cut
// short.
const InterruptedByRestart = "interrupted by a server restart"

func evaluationSubject(e domain.Evaluation) string {
	return fmt.Sprintf("model/%s/version/%d/evaluation/%d", e.Model, e.Version, e.ID)
}

// Evaluate runs one version (versionRef: a number or @alias) over every row
// of a dataset (datasetRef: NAME for the latest, or NAME@N) and returns the
// recorded evaluation. An error with no evaluation means nothing was
// recorded (bad references, a runtime that cannot start, columns that do
// not match the model's features). Once rows run, the evaluation is
// recorded: a failure then is an evaluation with status failed and its
// error, returned with a nil error.
func (s *Service) Evaluate(ctx context.Context, actor, model, versionRef, datasetRef string) (domain.Evaluation, error) {
	return s.evaluate(ctx, actor, model, versionRef, datasetRef, 0)
}

// EvaluateAgainst evaluates the version and a baseline (againstRef, e.g.
// @champion) on the same dataset version: the baseline first, then the
// candidate, which records the baseline's evaluation ID. When both refs
// name the same version it runs once and returns that evaluation twice.
// A baseline that fails stops before the candidate runs.
func (s *Service) EvaluateAgainst(ctx context.Context, actor, model, versionRef, datasetRef, againstRef string) (candidate, baseline domain.Evaluation, err error) {
	cand, err := s.cfg.Versions.GetVersion(ctx, model, registry.Ref(versionRef))
	if err != nil {
		return domain.Evaluation{}, domain.Evaluation{}, err
	}
	base, err := s.cfg.Versions.GetVersion(ctx, model, registry.Ref(againstRef))
	if err != nil {
		return domain.Evaluation{}, domain.Evaluation{}, fmt.Errorf("baseline %s: %w", againstRef, err)
	}
	// Pin the dataset version, so both run on the same bytes.
	d, err := s.cfg.Datasets.GetDataset(ctx, datasetRef)
	if err != nil {
		return domain.Evaluation{}, domain.Evaluation{}, err
	}
	pinned := d.Ref()
	if base.Number == cand.Number {
		e, err := s.evaluate(ctx, actor, model, strconv.Itoa(cand.Number), pinned, 0)
		return e, e, err
	}
	baseline, err = s.evaluate(ctx, actor, model, strconv.Itoa(base.Number), pinned, 0)
	if err != nil {
		return domain.Evaluation{}, domain.Evaluation{}, fmt.Errorf("baseline version %d (%s): %w", base.Number, againstRef, err)
	}
	if baseline.Status != domain.EvaluationSucceeded {
		return domain.Evaluation{}, baseline, fmt.Errorf("the baseline evaluation %d of version %d failed: %s: %w", baseline.ID, base.Number, baseline.Error, domain.ErrPrecondition)
	}
	candidate, err = s.evaluate(ctx, actor, model, strconv.Itoa(cand.Number), pinned, baseline.ID)
	return candidate, baseline, err
}

// LatestSucceeded returns the newest succeeded evaluation of one version on
// the dataset bytes named by digest, or ErrNotFound: the gate engine reuses
// it rather than running the version again.
func (s *Service) LatestSucceeded(ctx context.Context, model string, version int, datasetDigest string) (domain.Evaluation, error) {
	if err := domain.ValidateName("model", model); err != nil {
		return domain.Evaluation{}, err
	}
	return s.cfg.Store.LatestEvaluation(ctx, store.EvaluationFilter{
		Model: model, Version: version, DatasetDigest: datasetDigest, Status: domain.EvaluationSucceeded,
	})
}

// Get returns one evaluation.
func (s *Service) Get(ctx context.Context, id int64) (domain.Evaluation, error) {
	return s.cfg.Store.GetEvaluation(ctx, id)
}

// List returns one page of evaluations, oldest first.
func (s *Service) List(ctx context.Context, f store.EvaluationFilter, p store.Page) ([]domain.Evaluation, string, error) {
	if f.Model != "" {
		if err := domain.ValidateName("model", f.Model); err != nil {
			return nil, "", err
		}
	}
	if f.Version != 0 && f.Model == "" {
		return nil, "", fmt.Errorf("a version filter needs the model: %w", domain.ErrInvalid)
	}
	if f.Status != "" {
		if _, err := domain.ParseEvaluationStatus(string(f.Status)); err != nil {
			return nil, "", err
		}
	}
	return s.cfg.Store.ListEvaluations(ctx, f, p)
}

// Recover fails every evaluation left running, which only a process that
// stopped mid-run leaves; the server calls it at start-up, before it
// serves, so none is running yet. It returns how many it failed.
func (s *Service) Recover(ctx context.Context) (int, error) {
	n := 0
	for {
		running, _, err := s.cfg.Store.ListEvaluations(ctx, store.EvaluationFilter{Status: domain.EvaluationRunning}, store.Page{Limit: 100})
		if err != nil {
			return n, err
		}
		if len(running) == 0 {
			return n, nil
		}
		for _, e := range running {
			e.Status, e.Error = domain.EvaluationFailed, InterruptedByRestart
			if err := s.finish(ctx, "slipway", e); err != nil {
				return n, err
			}
			n++
			s.cfg.Log.Warn("an evaluation was interrupted by a server restart; marked failed", "evaluation", e.ID, "model", e.Model, "version", e.Version)
		}
	}
}

// run is an evaluation ready to start: everything checked, nothing
// recorded yet.
type run struct {
	v        domain.Version
	d        domain.Dataset
	table    *dataset.Table
	labels   []float64
	features domain.FeatureMatch
	rows     [][]float64
	call     *caller
	input    string
}

func (s *Service) evaluate(ctx context.Context, actor, model, versionRef, datasetRef string, baseline int64) (domain.Evaluation, error) {
	if err := domain.ValidateName("model", model); err != nil {
		return domain.Evaluation{}, err
	}
	v, err := s.cfg.Versions.GetVersion(ctx, model, registry.Ref(versionRef))
	if err != nil {
		return domain.Evaluation{}, err
	}
	if v.State == domain.StateArchived {
		return domain.Evaluation{}, fmt.Errorf("version %d of model %q is archived and cannot run: %w", v.Number, model, domain.ErrPrecondition)
	}
	d, err := s.cfg.Datasets.GetDataset(ctx, datasetRef)
	if err != nil {
		return domain.Evaluation{}, err
	}
	r := &run{v: v, d: d}
	if err := s.load(ctx, r); err != nil {
		return domain.Evaluation{}, err
	}
	ep, release, err := s.cfg.Runtimes.Acquire(ctx, v)
	if err != nil {
		return domain.Evaluation{}, fmt.Errorf("%w: %w", err, domain.ErrPrecondition)
	}
	defer release()
	if r.call, err = newCaller(ep, v); err != nil {
		return domain.Evaluation{}, err
	}
	in, err := r.call.metadata(ctx)
	if err != nil {
		return domain.Evaluation{}, fmt.Errorf("version %d of model %q: %w", v.Number, model, err)
	}
	r.input = in.name
	if r.features, err = matchFeatures(d, in); err != nil {
		return domain.Evaluation{}, err
	}
	if r.rows, err = featureRows(r.table, r.features.Columns); err != nil {
		return domain.Evaluation{}, err
	}

	e := domain.Evaluation{
		Model: model, Version: v.Number, Dataset: d.Name, DatasetVersion: d.Number, DatasetDigest: d.Digest,
		Status: domain.EvaluationRunning, Task: d.Task, Features: &r.features, Baseline: baseline,
		CreatedBy: actor, StartedAt: s.cfg.Clock.Now(),
	}
	if d.Task == domain.TaskClassification {
		e.Threshold = threshold
	}
	err = s.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		if e, err = tx.CreateEvaluation(ctx, e); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: e.StartedAt, Actor: actor, Action: "evaluation.start", Subject: evaluationSubject(e),
			After: audit.Document(map[string]any{"dataset": d.Ref(), "dataset_digest": d.Digest, "rows": d.Rows, "baseline": baseline}),
		})
		return err
	})
	if err != nil {
		return domain.Evaluation{}, err
	}
	res, rows, runErr := s.predictAll(ctx, r, e.ID)
	e.Rows = rows
	if runErr == nil {
		e.Status, e.Metrics, e.Segments, e.Fairness = domain.EvaluationSucceeded, res.metrics, res.segments, res.fairness
	} else {
		e.Status, e.Error = domain.EvaluationFailed, runErr.Error()
	}
	// The outcome is recorded even when the caller has gone away.
	if err := s.finish(context.WithoutCancel(ctx), actor, e); err != nil {
		return domain.Evaluation{}, fmt.Errorf("recording the outcome of evaluation %d: %w", e.ID, err)
	}
	return s.cfg.Store.GetEvaluation(context.WithoutCancel(ctx), e.ID)
}

// load reads the dataset's bytes (checked against its digest) and labels,
// and bounds its segments.
func (s *Service) load(ctx context.Context, r *run) error {
	rc, err := s.cfg.Datasets.OpenDataset(ctx, r.d)
	if err != nil {
		return err
	}
	defer rc.Close()
	schema := dataset.Schema{Format: dataset.Format(r.d.Format), Rows: r.d.Rows, Label: r.d.Label, Segments: r.d.Segments, Sensitive: r.d.Sensitive}
	for _, c := range r.d.Columns {
		schema.Columns = append(schema.Columns, dataset.Column{Name: c.Name, Type: dataset.Type(c.Type), Missing: c.Missing})
	}
	if r.table, err = dataset.Read(rc, schema); err != nil {
		return fmt.Errorf("reading dataset %s: %w", r.d.Ref(), err)
	}
	var task domain.Task
	if r.labels, task, err = r.table.Labels(r.d.Task); err != nil {
		return err
	}
	if task != r.d.Task {
		return fmt.Errorf("dataset %s was pushed as %s but its labels read as %s: %w", r.d.Ref(), r.d.Task, task, domain.ErrPrecondition)
	}
	for _, col := range append(r.d.Segments, r.d.Sensitive) {
		if col == "" {
			continue
		}
		if n := len(groupsOf(r.table.Text(col))); n > domain.MaxSegmentValues {
			return fmt.Errorf("column %q of dataset %s has %d distinct values; a segment or sensitive column may have at most %d: %w", col, r.d.Ref(), n, domain.MaxSegmentValues, domain.ErrInvalid)
		}
	}
	return nil
}

// featureRows lays the feature columns out row by row, in model order.
func featureRows(t *dataset.Table, columns []string) ([][]float64, error) {
	cols := make([][]float64, len(columns))
	for i, c := range columns {
		var err error
		if cols[i], err = t.Numbers(c); err != nil {
			return nil, fmt.Errorf("feature %w", err)
		}
	}
	rows := make([][]float64, t.Rows())
	for r := range rows {
		rows[r] = make([]float64, len(columns))
		for i := range columns {
			rows[r][i] = cols[i][r]
		}
	}
	return rows, nil
}

// predictAll sends every row, one request each, and scores the answers.
// It returns how many rows were predicted.
func (s *Service) predictAll(ctx context.Context, r *run, id int64) (results, int, error) {
	preds := make([]float64, len(r.rows))
	latencies := make([]time.Duration, len(r.rows))
	var buf bytes.Buffer
	prefix := "eval-" + strconv.FormatInt(id, 10) + "-"
	for i, row := range r.rows {
		if err := ctx.Err(); err != nil {
			return results{}, i, fmt.Errorf("stopped at row %d of %d: %w", i+1, len(r.rows), err)
		}
		body := inferBody(&buf, prefix+strconv.Itoa(i+1), r.input, row)
		p, took, err := r.call.predict(ctx, body, r.d.Task)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = errors.Join(err, ctxErr)
			}
			return results{}, i, fmt.Errorf("row %d (line %d): %w", i+1, r.table.Line[i], err)
		}
		preds[i], latencies[i] = p, took
	}
	res, err := score(r.d, r.table, r.labels, preds, latencies)
	if err != nil {
		return results{}, len(r.rows), fmt.Errorf("scoring the predictions: %w", err)
	}
	return res, len(r.rows), nil
}

// finish records an evaluation's outcome and its audit entry.
func (s *Service) finish(ctx context.Context, actor string, e domain.Evaluation) error {
	now := s.cfg.Clock.Now()
	e.FinishedAt = &now
	return s.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.FinishEvaluation(ctx, e); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{
			Time: now, Actor: actor, Action: "evaluation.finish", Subject: evaluationSubject(e),
			After: audit.Document(map[string]any{"status": e.Status, "error": e.Error, "rows": e.Rows, "metrics": e.Metrics}),
		})
		return err
	})
}
