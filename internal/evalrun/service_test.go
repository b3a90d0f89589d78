package evalrun_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/dataset"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/evalrun"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime/fleet"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

const examples = "../../examples/breast-cancer/"

// env is a real registry, blob folder, fleet (XGBoost in process) and
// evaluation service on a temporary SQLite store.
type env struct {
	t     *testing.T
	dir   string
	st    *sqlstore.Store
	blobs *artifact.Local
	reg   *registry.Registry
	svc   *evalrun.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(dir, "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobs, err := artifact.OpenLocal(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	reg := registry.New(registry.Config{Store: st, Blobs: blobs})
	fl, err := fleet.Open(fleet.Config{Manifests: reg, Blobs: blobs, Dir: filepath.Join(dir, "runtimes"), Log: log,
		Factory: fleet.NewFactory(fleet.FactoryConfig{Log: log})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close(context.Background()) })
	svc := evalrun.New(evalrun.Config{Store: st, Versions: reg, Datasets: reg, Runtimes: fl, Log: log})
	if _, err := reg.CreateModel(t.Context(), "alice", domain.Model{Name: "bc"}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dir: dir, st: st, blobs: blobs, reg: reg, svc: svc}
}

// pushModel registers a model file as the next xgboost-json version.
func (e *env) pushModel(content []byte) domain.Version {
	e.t.Helper()
	digest := artifact.DigestOf(content)
	if _, err := e.blobs.Put(e.t.Context(), digest, int64(len(content)), bytes.NewReader(content)); err != nil {
		e.t.Fatal(err)
	}
	m := &artifact.Manifest{Files: []artifact.File{{Path: "model.json", Size: int64(len(content)), SHA256: strings.TrimPrefix(digest, "sha256:")}}}
	v, err := e.reg.PushVersion(e.t.Context(), "alice", registry.Push{Model: "bc", Format: domain.FormatXGBoostJSON, Manifest: m})
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) pushExample(name string) domain.Version {
	e.t.Helper()
	b, err := os.ReadFile(examples + name)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.pushModel(b)
}

func (e *env) pushDataset(name, content string, roles dataset.Roles) domain.Dataset {
	e.t.Helper()
	res, err := e.reg.PushDataset(e.t.Context(), "alice", registry.DatasetPush{Name: name, Format: dataset.FormatCSV, Roles: roles,
		Body: strings.NewReader(content), MaxBytes: 1 << 20})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Dataset
}

func holdoutEval(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(examples + "holdout-eval.csv")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var evalRoles = dataset.Roles{Label: "label", Segments: []string{"size_band"}, Sensitive: "age_band"}

// reference is examples/breast-cancer/evaluation.json, written once by
// evaluate.py with scikit-learn.
type reference struct {
	Models map[string]struct {
		Predictions []float64          `json:"predictions"`
		Metrics     map[string]float64 `json:"metrics"`
		Segments    map[string]struct {
			Rows    int                `json:"rows"`
			Metrics map[string]float64 `json:"metrics"`
		} `json:"segments"`
	} `json:"models"`
}

func loadReference(t *testing.T) reference {
	t.Helper()
	b, err := os.ReadFile(examples + "evaluation.json")
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// checkAgainstReference compares an evaluation with scikit-learn's numbers
// for the same model: every metric, overall and per segment.
func checkAgainstReference(t *testing.T, e domain.Evaluation, model string) {
	t.Helper()
	ref := loadReference(t).Models[model]
	if e.Status != domain.EvaluationSucceeded || e.Rows != len(ref.Predictions) {
		t.Fatalf("evaluation %+v, want succeeded over %d rows", e, len(ref.Predictions))
	}
	for k, want := range ref.Metrics {
		if got, ok := e.Metrics[k]; !ok || !near(got, want) {
			t.Errorf("%s %s = %.17g (present %v), scikit-learn %.17g", model, k, got, ok, want)
		}
	}
	if len(e.Metrics) != len(ref.Metrics)+2 {
		t.Errorf("%s: %d metrics %v, want scikit-learn's %d and two latencies", model, len(e.Metrics), e.Metrics, len(ref.Metrics))
	}
	if e.Metrics[domain.MetricLatencyP50MS] <= 0 || e.Metrics[domain.MetricLatencyP99MS] < e.Metrics[domain.MetricLatencyP50MS] {
		t.Errorf("latencies p50 %v p99 %v", e.Metrics[domain.MetricLatencyP50MS], e.Metrics[domain.MetricLatencyP99MS])
	}
	if len(e.Segments) != len(ref.Segments) {
		t.Fatalf("%d segments, want %d", len(e.Segments), len(ref.Segments))
	}
	for _, s := range e.Segments {
		want, ok := ref.Segments[s.Column+"="+s.Value]
		if !ok || s.Rows != want.Rows || len(s.Metrics) != len(want.Metrics) {
			t.Errorf("segment %s=%s: %d rows, %v; reference %+v", s.Column, s.Value, s.Rows, s.Metrics, want)
			continue
		}
		for k, w := range want.Metrics {
			if !near(s.Metrics[k], w) {
				t.Errorf("segment %s=%s %s = %.17g, scikit-learn %.17g", s.Column, s.Value, k, s.Metrics[k], w)
			}
		}
	}
	if e.Fairness == nil || e.Fairness.Column != "age_band" || len(e.Fairness.Groups) != 2 ||
		!near(e.Fairness.TPRGap, ref.Metrics["tpr_gap"]) || !near(e.Fairness.PositiveRateGap, ref.Metrics["positive_rate_gap"]) {
		t.Errorf("fairness %+v", e.Fairness)
	}
	if e.Features == nil || e.Features.Rule != domain.MatchByName || len(e.Features.Columns) != 30 {
		t.Errorf("features %+v", e.Features)
	}
}

// TestEvaluateEqualsScikitLearn runs v1 and v2 through the in-process
// XGBoost runtime over the committed evaluation dataset and compares every
// metric with scikit-learn's on XGBoost's own predictions.
func TestEvaluateEqualsScikitLearn(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.pushExample("v1.json")
	e.pushExample("v2.json")
	d := e.pushDataset("bc-holdout", holdoutEval(t), evalRoles)
	if d.Task != domain.TaskClassification || d.Rows != 143 {
		t.Fatalf("dataset %+v", d)
	}
	got, err := e.svc.Evaluate(ctx, "carol", "bc", "1", "bc-holdout")
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstReference(t, got, "v1")
	if got.CreatedBy != "carol" || got.DatasetDigest != d.Digest || got.DatasetVersion != 1 || got.FinishedAt == nil {
		t.Errorf("evaluation record %+v", got)
	}

	// The gate engine's lookup finds it.
	latest, err := e.svc.LatestSucceeded(ctx, "bc", 1, d.Digest)
	if err != nil || latest.ID != got.ID {
		t.Fatalf("LatestSucceeded = %d, %v; want %d", latest.ID, err, got.ID)
	}
	if _, err := e.svc.LatestSucceeded(ctx, "bc", 2, d.Digest); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("LatestSucceeded of an unevaluated version: %v", err)
	}

	// Against the champion: the baseline runs first on the same dataset
	// version, and the candidate records it.
	if _, err := e.reg.SetAlias(ctx, "alice", "bc", "champion", "1", nil); err != nil {
		t.Fatal(err)
	}
	cand, base, err := e.svc.EvaluateAgainst(ctx, "carol", "bc", "2", "bc-holdout@1", "@champion")
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstReference(t, cand, "v2")
	checkAgainstReference(t, base, "v1")
	if cand.Baseline != base.ID || base.Version != 1 || cand.Version != 2 {
		t.Errorf("candidate %d (baseline %d), baseline %d version %d", cand.ID, cand.Baseline, base.ID, base.Version)
	}

	// Every start and finish is in the audit log.
	entries, _, err := e.st.ListAudit(ctx, store.AuditFilter{Subject: "model/bc"}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		if strings.HasPrefix(en.Action, "evaluation.") {
			actions = append(actions, en.Action+" "+en.Subject)
		}
	}
	want := []string{
		"evaluation.start model/bc/version/1/evaluation/1", "evaluation.finish model/bc/version/1/evaluation/1",
		"evaluation.start model/bc/version/1/evaluation/2", "evaluation.finish model/bc/version/1/evaluation/2",
		"evaluation.start model/bc/version/2/evaluation/3", "evaluation.finish model/bc/version/2/evaluation/3",
	}
	if strings.Join(actions, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
}
