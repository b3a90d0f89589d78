package xgboost

import (
	"encoding/csv"
	"os"
	"strconv"
	"testing"
)

// benchBatch is the batch size BenchmarkPredict and bench/xgboost.sh use.
const benchBatch = 1000

// holdoutRows reads the breast-cancer holdout (dropping the label) and
// repeats it to n rows, row-major — the same rows bench/xgboost_native.py feeds
// to XGBoost.
func holdoutRows(b *testing.B, n int) []float64 {
	b.Helper()
	f, err := os.Open("../../../examples/breast-cancer/holdout.csv")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		b.Fatal(err)
	}
	var table [][]float64
	for _, rec := range records[1:] {
		row := make([]float64, len(rec)-1)
		for i := range row {
			if row[i], err = strconv.ParseFloat(rec[i], 64); err != nil {
				b.Fatal(err)
			}
		}
		table = append(table, row)
	}
	out := make([]float64, 0, n*len(table[0]))
	for i := 0; i < n; i++ {
		out = append(out, table[i%len(table)]...)
	}
	return out
}

// BenchmarkPredict measures the breast-cancer models (v1: 100 trees of depth
// 4; v3: 400 trees) on a batch of 1,000 rows and one row at a time.
func BenchmarkPredict(b *testing.B) {
	for _, version := range []string{"v1", "v3"} {
		m := loadFile(b, "../../../examples/breast-cancer/"+version+".json")
		features := holdoutRows(b, benchBatch)
		nf := m.NumFeatures()
		b.Run(version+"/batch=1000", func(b *testing.B) {
			out := make([]float64, benchBatch*m.NumOutputs())
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Predict(features, benchBatch, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*benchBatch/b.Elapsed().Seconds(), "rows/s")
		})
		b.Run(version+"/row", func(b *testing.B) {
			out := make([]float64, 0, m.NumOutputs())
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := i % benchBatch
				if _, err := m.PredictRow(features[r*nf:(r+1)*nf], out[:0]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
