package xgboost

import (
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

func readTestdata(path string) ([]byte, error) { return os.ReadFile(path) }

func TestPredictShapeErrors(t *testing.T) {
	m, err := loadString(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, 4)
	for _, c := range []struct {
		name     string
		features []float64
		rows     int
		out      []float64
		wantErr  string
	}{
		{"too few features", []float64{1, 2, 3}, 2, out, "is not 2 rows of 2 features"},
		{"too many features", []float64{1, 2, 3, 4, 5, 6}, 2, out, "is not 2 rows of 2 features"},
		{"rows disagree", []float64{1, 2, 3, 4}, 3, out, "is not 3 rows"},
		{"negative rows", nil, -1, out, "-1 rows"},
		{"short output", []float64{1, 2, 3, 4}, 2, out[:1], "room for 1 values"},
	} {
		err := m.Predict(c.features, c.rows, c.out)
		if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want ErrInvalid containing %q", c.name, err, c.wantErr)
		}
	}
	if err := m.Predict(nil, 0, nil); err != nil {
		t.Errorf("zero rows: %v", err)
	}
	if _, err := m.PredictRow([]float64{1, 2, 3}, nil); !errors.Is(err, domain.ErrInvalid) ||
		!strings.Contains(err.Error(), "row has 3 features, the model takes 2") {
		t.Errorf("PredictRow with 3 features: %v", err)
	}
}

func TestPredictRowAppends(t *testing.T) {
	m := loadFile(t, "testdata/multi_softprob.json")
	row := make([]float64, m.NumFeatures())
	out, err := m.PredictRow(row, []float64{42})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1+m.NumOutputs() || out[0] != 42 {
		t.Fatalf("PredictRow appended to [42] gave %v", out)
	}
	var sum float64
	for _, p := range out[1:] {
		sum += p
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Errorf("class probabilities %v sum to %v", out[1:], sum)
	}
}

func TestPredictDoesNotAllocate(t *testing.T) {
	m := loadFile(t, "../../../examples/breast-cancer/v1.json")
	features, rows := holdoutFeatures(t, m)
	out := make([]float64, rows*m.NumOutputs())
	buf := make([]float64, 0, m.NumOutputs())
	allocs := testing.AllocsPerRun(20, func() {
		if err := m.Predict(features, rows, out); err != nil {
			t.Fatal(err)
		}
		if _, err := m.PredictRow(features[:m.NumFeatures()], buf[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Predict+PredictRow, want 0", allocs)
	}
}

// TestConcurrentPredict runs under -race: a Model is shared read-only.
func TestConcurrentPredict(t *testing.T) {
	for _, path := range []string{"../../../examples/breast-cancer/v1.json", "testdata/multi_softprob.json"} {
		m := loadFile(t, path)
		features, rows := holdoutFeatures(t, m)
		want := make([]float64, rows*m.NumOutputs())
		if err := m.Predict(features, rows, want); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := make([]float64, len(want))
				for range 20 {
					if err := m.Predict(features, rows, got); err != nil {
						t.Error(err)
						return
					}
					for i := range got {
						if got[i] != want[i] {
							t.Errorf("%s: concurrent prediction %d = %v, want %v", path, i, got[i], want[i])
							return
						}
					}
				}
			}()
		}
		wg.Wait()
	}
}

// holdoutFeatures returns parity rows for a model with m's feature count:
// the breast-cancer holdout, or the synthetic rows for testdata models.
func holdoutFeatures(t testing.TB, m *Model) ([]float64, int) {
	t.Helper()
	for _, path := range parityFiles {
		for _, c := range readParity(t, path).Cases {
			if len(c.Rows) > 0 && len(c.Rows[0]) == m.NumFeatures() {
				return flatten(c.Rows), len(c.Rows)
			}
		}
	}
	t.Fatalf("no parity rows with %d features", m.NumFeatures())
	return nil, 0
}
