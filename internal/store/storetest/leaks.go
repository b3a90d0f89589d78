package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// testReadsReleaseConnections repeats every "latest" read and every
// not-found read many more times than any pool has connections: a read
// that leaves a row unscanned holds its connection and soon hangs the
// store.
func testReadsReleaseConnections(t *testing.T, s store.Store) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	createModel(t, s, "m")
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.CreateDataset(ctx, domain.Dataset{Name: "d", Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
			Format: "csv", Rows: 1, Columns: []domain.DatasetColumn{{Name: "y", Type: "int"}}, Task: domain.TaskClassification, Label: "y", CreatedBy: "a", CreatedAt: t0})
		return err
	})
	for i := range 200 {
		if _, err := s.GetDataset(ctx, "d", 0); err != nil {
			t.Fatalf("latest dataset, read %d: %v", i, err)
		}
		if _, err := s.GetDataset(ctx, "nope", 0); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("missing dataset, read %d: %v", i, err)
		}
		if _, err := s.GetGatePolicy(ctx, "m", "production"); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("missing policy, read %d: %v", i, err)
		}
		if _, err := s.LatestEvaluation(ctx, store.EvaluationFilter{Model: "m"}); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("missing evaluation, read %d: %v", i, err)
		}
	}
}
