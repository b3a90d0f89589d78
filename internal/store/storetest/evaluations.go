package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func createEvaluation(t *testing.T, s store.Store, e domain.Evaluation) domain.Evaluation {
	t.Helper()
	var got domain.Evaluation
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		got, err = tx.CreateEvaluation(ctx, e)
		return err
	})
	return got
}

func finish(ctx context.Context, s store.Store, e domain.Evaluation) error {
	return s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.FinishEvaluation(ctx, e) })
}

// testEvaluations: a running evaluation round trips, finishes once with its
// whole result, never changes after, and the latest succeeded one of a
// version on a dataset digest is found; references must exist.
func testEvaluations(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "m")
	createVersion(t, s, domain.Version{Model: "m"})
	createVersion(t, s, domain.Version{Model: "m"})
	ds := createDataset(t, s, newDataset("holdout", "sha256:"+hex64('a')))

	running := domain.Evaluation{Model: "m", Version: 1, Dataset: "holdout", DatasetVersion: ds.Number, DatasetDigest: ds.Digest,
		Status: domain.EvaluationRunning, Task: domain.TaskClassification, Threshold: 0.5, CreatedBy: "carol", StartedAt: t0}
	e1 := createEvaluation(t, s, running)
	if e1.ID != 1 {
		t.Fatalf("first evaluation has ID %d", e1.ID)
	}
	got, err := s.GetEvaluation(ctx, 1)
	must(t, "GetEvaluation", err)
	checkTime(t, "started at", got.StartedAt, t0)
	want := running
	want.ID = 1
	got.StartedAt, want.StartedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("running evaluation round trip:\n got %+v\nwant %+v", got, want)
	}

	// Finishing records everything found.
	tpr := 0.75
	done := e1
	done.Status, done.Rows = domain.EvaluationSucceeded, 3
	done.Metrics = map[string]float64{"accuracy": 0.5, "roc_auc": 0.625}
	done.Segments = []domain.SegmentMetrics{{Column: "seg", Value: "a", Rows: 2, Metrics: map[string]float64{"accuracy": 1}}}
	done.Fairness = &domain.Fairness{Column: "seg", TPRGap: 0.25, PositiveRateGap: 0.5,
		Groups: []domain.GroupRates{{Group: "a", Rows: 2, TPR: &tpr, PositiveRate: 0.5}, {Group: "b", Rows: 1, PositiveRate: 1}}}
	done.Features = &domain.FeatureMatch{Rule: domain.MatchByName, Columns: []string{"x"}}
	at := t0.Add(time.Minute)
	done.FinishedAt = &at
	must(t, "FinishEvaluation", finish(ctx, s, done))
	got, err = s.GetEvaluation(ctx, 1)
	must(t, "GetEvaluation", err)
	if got.FinishedAt == nil || !sameTime(*got.FinishedAt, at) {
		t.Errorf("finished at %v, want %v in UTC", got.FinishedAt, at)
	}
	got.FinishedAt, done.FinishedAt = nil, nil
	got.StartedAt, done.StartedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, done) {
		t.Fatalf("finished evaluation round trip:\n got %+v\nwant %+v", got, done)
	}

	// Finished is final.
	again := done
	again.Status, again.Error, again.FinishedAt = domain.EvaluationFailed, "late", &at
	if err := finish(ctx, s, again); !errors.Is(err, domain.ErrPrecondition) {
		t.Errorf("finishing a finished evaluation: %v, want ErrPrecondition", err)
	}
	if after, _ := s.GetEvaluation(ctx, 1); after.Status != domain.EvaluationSucceeded || after.Error != "" {
		t.Errorf("a refused finish changed the evaluation: %+v", after)
	}
	missing := again
	missing.ID = 99
	if err := finish(ctx, s, missing); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("finishing evaluation 99: %v, want ErrNotFound", err)
	}
	badStatus := e1
	badStatus.Status, badStatus.FinishedAt = domain.EvaluationRunning, &at
	if err := finish(ctx, s, badStatus); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("finishing as running: %v, want ErrInvalid", err)
	}

	// References must exist; a refused create leaves nothing.
	for _, bad := range []domain.Evaluation{
		func() domain.Evaluation { e := running; e.Version = 7; return e }(),
		func() domain.Evaluation { e := running; e.DatasetVersion = 5; return e }(),
	} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { _, err := tx.CreateEvaluation(ctx, bad); return err })
		if !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("evaluation of %+v: %v, want ErrNotFound", bad, err)
		}
	}
	notRunning := running
	notRunning.Status = domain.EvaluationSucceeded
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.CreateEvaluation(ctx, notRunning)
		return err
	}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("creating a succeeded evaluation: %v, want ErrInvalid", err)
	}

	// More runs: version 1 failed, version 2 succeeded, version 1 succeeded
	// again (the latest), and one still running.
	e2 := createEvaluation(t, s, running)
	failed := e2
	failed.Status, failed.Error, failed.FinishedAt = domain.EvaluationFailed, "interrupted", &at
	must(t, "FinishEvaluation failed", finish(ctx, s, failed))
	v2 := running
	v2.Version = 2
	e3 := createEvaluation(t, s, v2)
	e3.Status, e3.FinishedAt = domain.EvaluationSucceeded, &at
	must(t, "FinishEvaluation v2", finish(ctx, s, e3))
	e4 := createEvaluation(t, s, running)
	e4.Status, e4.FinishedAt = domain.EvaluationSucceeded, &at
	must(t, "FinishEvaluation e4", finish(ctx, s, e4))
	e5 := createEvaluation(t, s, running)

	latest, err := s.LatestEvaluation(ctx, store.EvaluationFilter{Model: "m", Version: 1, DatasetDigest: ds.Digest, Status: domain.EvaluationSucceeded})
	must(t, "LatestEvaluation", err)
	if latest.ID != e4.ID {
		t.Errorf("latest succeeded of version 1 = %d, want %d", latest.ID, e4.ID)
	}
	if _, err := s.LatestEvaluation(ctx, store.EvaluationFilter{Model: "m", Version: 1, DatasetDigest: "sha256:" + hex64('f'), Status: domain.EvaluationSucceeded}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("latest on another digest: %v, want ErrNotFound", err)
	}
	// The same bytes as another dataset version (other roles) are not the
	// dataset version the evaluations ran on.
	sameVersion := store.EvaluationFilter{Model: "m", Version: 1, DatasetDigest: ds.Digest, Dataset: running.Dataset, DatasetVersion: running.DatasetVersion, Status: domain.EvaluationSucceeded}
	if latest, err := s.LatestEvaluation(ctx, sameVersion); err != nil || latest.ID != e4.ID {
		t.Errorf("latest succeeded of version 1 on %s@%d = %d %v, want %d", running.Dataset, running.DatasetVersion, latest.ID, err, e4.ID)
	}
	for _, f := range []store.EvaluationFilter{
		func() store.EvaluationFilter { f := sameVersion; f.DatasetVersion++; return f }(),
		func() store.EvaluationFilter { f := sameVersion; f.Dataset += "-other"; return f }(),
	} {
		if _, err := s.LatestEvaluation(ctx, f); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("latest on %s@%d: %v, want ErrNotFound", f.Dataset, f.DatasetVersion, err)
		}
	}
	ids := func(f store.EvaluationFilter, limit int) []int64 {
		t.Helper()
		var out []int64
		cursor := ""
		for range 20 {
			es, next, err := s.ListEvaluations(ctx, f, store.Page{Limit: limit, Cursor: cursor})
			must(t, "ListEvaluations", err)
			for _, e := range es {
				out = append(out, e.ID)
			}
			if next == "" {
				return out
			}
			cursor = next
		}
		t.Fatal("ListEvaluations: the cursor does not advance")
		return nil
	}
	if got := ids(store.EvaluationFilter{}, 2); !reflect.DeepEqual(got, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("all evaluations = %v", got)
	}
	if got := ids(store.EvaluationFilter{Model: "m", Version: 1}, 100); !reflect.DeepEqual(got, []int64{1, 2, 4, 5}) {
		t.Errorf("evaluations of version 1 = %v", got)
	}
	if got := ids(store.EvaluationFilter{Status: domain.EvaluationRunning}, 100); !reflect.DeepEqual(got, []int64{e5.ID}) {
		t.Errorf("running evaluations = %v", got)
	}
	if _, _, err := s.ListEvaluations(ctx, store.EvaluationFilter{}, store.Page{Cursor: "bogus"}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("bogus cursor: %v, want ErrInvalid", err)
	}
}
