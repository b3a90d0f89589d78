package xgboost

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// parityTolerance is how far a prediction may be from XGBoost's own.
const parityTolerance = 1e-6

// parityFiles hold input rows and XGBoost's predictions for them, written by
// testdata/generate.py and examples/breast-cancer/train.py.
var parityFiles = []string{
	"testdata/parity.json",
	"../../../examples/breast-cancer/parity.json",
}

type parityFile struct {
	XGBoostVersion string `json:"xgboost_version"`
	Cases          []struct {
		Model       string       `json:"model"`
		Objective   string       `json:"objective"`
		NumOutputs  int          `json:"num_outputs"`
		Rows        [][]*float64 `json:"rows"` // null = missing
		Predictions [][]float64  `json:"predictions"`
	} `json:"cases"`
}

func readParity(t testing.TB, path string) parityFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pf parityFile
	if err := json.Unmarshal(data, &pf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(pf.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return pf
}

func loadFile(t testing.TB, path string) *Model {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Load(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// flatten turns parity rows into row-major features with NaN for missing.
func flatten(rows [][]*float64) []float64 {
	var out []float64
	for _, row := range rows {
		for _, v := range row {
			if v == nil {
				out = append(out, math.NaN())
			} else {
				out = append(out, *v)
			}
		}
	}
	return out
}

func TestParity(t *testing.T) {
	for _, path := range parityFiles {
		pf := readParity(t, path)
		for _, c := range pf.Cases {
			name := filepath.Join(filepath.Dir(path), c.Model)
			t.Run(name, func(t *testing.T) {
				m := loadFile(t, name)
				if m.Objective() != c.Objective || m.NumOutputs() != c.NumOutputs {
					t.Fatalf("objective %q with %d outputs, want %q with %d",
						m.Objective(), m.NumOutputs(), c.Objective, c.NumOutputs)
				}
				rows := len(c.Rows)
				features := flatten(c.Rows)
				out := make([]float64, rows*m.NumOutputs())
				if err := m.Predict(features, rows, out); err != nil {
					t.Fatal(err)
				}
				var maxDiff float64
				buf := make([]float64, 0, m.NumOutputs())
				for r, want := range c.Predictions {
					got, err := m.PredictRow(features[r*m.NumFeatures():(r+1)*m.NumFeatures()], buf[:0])
					if err != nil {
						t.Fatal(err)
					}
					for k, w := range want {
						batch := out[r*m.NumOutputs()+k]
						if batch != got[k] {
							t.Fatalf("row %d output %d: Predict %v, PredictRow %v", r, k, batch, got[k])
						}
						d := math.Abs(batch - w)
						if !(d <= parityTolerance) {
							t.Errorf("row %d output %d: got %.9g, XGBoost %.9g (diff %.3g)", r, k, batch, w, d)
						}
						maxDiff = max(maxDiff, d)
					}
				}
				t.Logf("%s (%s, xgboost %s), %d rows: max abs diff %.3g", c.Model, c.Objective, pf.XGBoostVersion, rows, maxDiff)
			})
		}
	}
}
