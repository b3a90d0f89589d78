package xgboost

import (
	"bytes"
	"errors"
	"math"
	"os"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// FuzzLoad: no input makes Load panic or hang, every refusal wraps
// domain.ErrInvalid, and a model that loads predicts on any row without
// panicking. The committed corpus (testdata/fuzz/FuzzLoad) holds small valid
// models and corrupted variants of them.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(tinyModel))
	for _, path := range []string{"testdata/dart.json", "testdata/gblinear.json", "testdata/categorical.json"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("error %v does not wrap domain.ErrInvalid", err)
			}
			return
		}
		nf, no := m.NumFeatures(), m.NumOutputs()
		if nf > 1<<12 || no > 1<<12 {
			return // valid, but too wide to feed rows to cheaply
		}
		const rows = 3
		features := make([]float64, rows*nf)
		for j := range nf {
			features[nf+j] = math.NaN()
			features[2*nf+j] = math.Inf(1 - 2*(j%2))
		}
		out := make([]float64, rows*no)
		if err := m.Predict(features, rows, out); err != nil {
			t.Fatalf("Predict on a loaded model: %v", err)
		}
	})
}
