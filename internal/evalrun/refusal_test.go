package evalrun_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/dataset"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/evalrun"
	"github.com/slipway-ml/slipway/internal/store"
)

// editColumns rewrites the CSV header of the evaluation dataset.
func editColumns(t *testing.T, edit func(header []string) []string) string {
	t.Helper()
	lines := strings.SplitAfterN(holdoutEval(t), "\n", 2)
	header := strings.Split(strings.TrimSuffix(lines[0], "\n"), ",")
	return strings.Join(edit(header), ",") + "\n" + lines[1]
}

// exampleModel returns v1.json changed by edit.
func exampleModel(t *testing.T, edit func(learner map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(examples + "v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m["learner"].(map[string]any))
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nothingRecorded fails unless the store holds no evaluation and the audit
// log no evaluation entry.
func (e *env) nothingRecorded() {
	e.t.Helper()
	es, _, err := e.st.ListEvaluations(e.t.Context(), store.EvaluationFilter{}, store.Page{})
	if err != nil || len(es) != 0 {
		e.t.Fatalf("evaluations recorded: %+v, %v", es, err)
	}
	entries, _, err := e.st.ListAudit(e.t.Context(), store.AuditFilter{}, store.Page{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, en := range entries {
		if strings.HasPrefix(en.Action, "evaluation.") {
			e.t.Fatalf("audit entry %s %s for a refused evaluation", en.Action, en.Subject)
		}
	}
}

// TestColumnsMustMatchFeatures: a dataset that lacks a feature or has a
// column that is neither feature nor role is refused before any row runs,
// naming the columns, and nothing is recorded.
func TestColumnsMustMatchFeatures(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.pushExample("v1.json")
	renamed := editColumns(t, func(h []string) []string {
		for i, c := range h {
			switch c {
			case "mean_texture":
				h[i] = "texture_mean"
			case "worst_symmetry":
				h[i] = "hospital"
			}
		}
		return h
	})
	e.pushDataset("renamed", renamed, evalRoles)
	_, err := e.svc.Evaluate(ctx, "carol", "bc", "1", "renamed")
	if !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("mismatched columns: %v, want ErrInvalid", err)
	}
	for _, want := range []string{`missing columns ["mean_texture", "worst_symmetry"]`, `extra columns ["texture_mean", "hospital"]`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
	// The label is never a feature, even when the model names it.
	e.pushDataset("label-is-feature", holdoutEval(t), dataset.Roles{Label: "mean_radius", Segments: []string{"size_band", "age_band"}})
	if _, err := e.svc.Evaluate(ctx, "carol", "bc", "1", "label-is-feature"); err == nil || !strings.Contains(err.Error(), "label column \"mean_radius\" as a feature") {
		t.Errorf("label named as a feature: %v", err)
	}
	// Bad references.
	for _, c := range []struct{ version, dataset string }{{"9", "renamed"}, {"1", "nope"}, {"@champion", "renamed"}, {"1", "renamed@7"}} {
		if _, err := e.svc.Evaluate(ctx, "carol", "bc", c.version, c.dataset); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("evaluate %s on %s: %v, want ErrNotFound", c.version, c.dataset, err)
		}
	}
	if _, err := e.svc.Evaluate(ctx, "carol", "bc", "one", "renamed"); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("version one: %v, want ErrInvalid", err)
	}
	e.nothingRecorded()
}

// TestCorruptDatasetIsRefused: dataset bytes that no longer hash to their
// digest are refused before anything runs or is recorded.
func TestCorruptDatasetIsRefused(t *testing.T) {
	e := newEnv(t)
	e.pushExample("v1.json")
	d := e.pushDataset("bc-holdout", holdoutEval(t), evalRoles)
	hexsum := strings.TrimPrefix(d.Digest, "sha256:")
	path := filepath.Join(e.dir, "artifacts", "blobs", "sha256", hexsum[:2], hexsum)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-2] ^= 1 // the last label, 0 <-> 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Evaluate(t.Context(), "carol", "bc", "1", "bc-holdout")
	if !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("evaluating a corrupt dataset: %v, want ErrPrecondition naming the corruption", err)
	}
	e.nothingRecorded()
}

// TestModelWithoutFeatureNames: columns are matched by count, in file
// order, and a count that differs is refused naming both counts.
func TestModelWithoutFeatureNames(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.pushModel(exampleModel(t, func(l map[string]any) {
		delete(l, "feature_names")
		delete(l, "feature_types")
	}))
	e.pushDataset("bc-holdout", holdoutEval(t), evalRoles)
	got, err := e.svc.Evaluate(ctx, "carol", "bc", "1", "bc-holdout")
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstReferenceByCount(t, got)

	oneLess := editColumns(t, func(h []string) []string { return h })
	oneLess = strings.ReplaceAll(oneLess, ",size_band,", ",size,")
	e.pushDataset("one-more", oneLess, dataset.Roles{Label: "label", Sensitive: "age_band"})
	_, err = e.svc.Evaluate(ctx, "carol", "bc", "1", "one-more")
	if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), "takes 30 features and does not name them") ||
		!strings.Contains(err.Error(), "has 31 columns") {
		t.Fatalf("count mismatch: %v", err)
	}
}

func checkAgainstReferenceByCount(t *testing.T, e domain.Evaluation) {
	t.Helper()
	if e.Features == nil || e.Features.Rule != domain.MatchByCount || len(e.Features.Columns) != 30 || e.Features.Columns[0] != "mean_radius" {
		t.Fatalf("features %+v", e.Features)
	}
	e.Features.Rule = domain.MatchByName
	checkAgainstReference(t, e, "v1")
}

// TestFailureIsRecorded: a model whose answers are not probabilities runs
// every row and is recorded as failed, with the reason; it never counts as
// the latest succeeded evaluation.
func TestFailureIsRecorded(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.pushModel(exampleModel(t, func(l map[string]any) {
		l["objective"].(map[string]any)["name"] = "binary:logitraw"
	}))
	d := e.pushDataset("bc-holdout", holdoutEval(t), evalRoles)
	got, err := e.svc.Evaluate(ctx, "carol", "bc", "1", "bc-holdout")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != domain.EvaluationFailed || !strings.Contains(got.Error, "not a probability") || got.Metrics != nil || got.FinishedAt == nil {
		t.Fatalf("evaluation of raw margins: %+v", got)
	}
	// The row is named as the dataset names rows (from 1, with its line),
	// and the likely cause is said.
	if !regexp.MustCompile(`^row [1-9][0-9]* \(line [2-9][0-9]*\): the model answered -?[0-9.e+-]+, not a probability in \[0, 1\]: .*is this a regression model`).MatchString(got.Error) {
		t.Errorf("error of raw margins: %s", got.Error)
	}
	if _, err := e.svc.LatestSucceeded(ctx, "bc", 1, d.Digest); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("LatestSucceeded after a failure: %v", err)
	}
}

// TestRecoverFailsWhatACrashLeftRunning: an evaluation left running (the
// process died mid-run) is failed at the next start, with the reason and
// an audit entry, and is then final.
func TestRecoverFailsWhatACrashLeftRunning(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.pushExample("v1.json")
	d := e.pushDataset("bc-holdout", holdoutEval(t), evalRoles)
	var left domain.Evaluation
	err := e.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		left, err = tx.CreateEvaluation(ctx, domain.Evaluation{Model: "bc", Version: 1, Dataset: d.Name, DatasetVersion: d.Number,
			DatasetDigest: d.Digest, Status: domain.EvaluationRunning, Task: d.Task, CreatedBy: "carol", StartedAt: time.Now()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.svc.Recover(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	got, err := e.svc.Get(ctx, left.ID)
	if err != nil || got.Status != domain.EvaluationFailed || got.Error != evalrun.InterruptedByRestart {
		t.Fatalf("after Recover: %+v, %v", got, err)
	}
	if n, err := e.svc.Recover(ctx); err != nil || n != 0 {
		t.Fatalf("second Recover = %d, %v; want 0", n, err)
	}
	entries, _, _ := e.st.ListAudit(ctx, store.AuditFilter{Subject: "model/bc/version/1/evaluation/1"}, store.Page{})
	if len(entries) != 1 || entries[0].Action != "evaluation.finish" || entries[0].Actor != "slipway" {
		t.Fatalf("audit of the recovery: %+v", entries)
	}
}
