package xgboost

import (
	"fmt"
	"math"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Predict evaluates rows of row-major features (rows × NumFeatures values,
// NaN for a missing value) and writes rows × NumOutputs predictions to the
// start of out: a probability for the logistic objectives, the raw margin
// for binary:logitraw and reg:squarederror, NumOutputs class probabilities
// for multi:softprob and the class index for multi:softmax.
//
// It does not allocate and may be called concurrently. All trees are used,
// as Booster.predict does without an iteration_range.
func (m *Model) Predict(features []float64, rows int, out []float64) error {
	nf, no := m.numFeature, m.NumOutputs()
	if rows < 0 {
		return fmt.Errorf("xgboost predict: %d rows: %w", rows, domain.ErrInvalid)
	}
	if (nf == 0 && len(features) != 0) || (nf > 0 && (len(features)%nf != 0 || len(features)/nf != rows)) {
		return fmt.Errorf("xgboost predict: %d feature values is not %d rows of %d features: %w",
			len(features), rows, nf, domain.ErrInvalid)
	}
	if len(out)/no < rows {
		return fmt.Errorf("xgboost predict: output has room for %d values, %d rows need %d: %w",
			len(out), rows, rows*no, domain.ErrInvalid)
	}
	for r := 0; r < rows; r++ {
		m.predictRow(features[r*nf:r*nf+nf:r*nf+nf], out[r*no:r*no+no:r*no+no])
	}
	return nil
}

// PredictRow evaluates one row and appends its NumOutputs predictions to
// out, returning the extended slice: pass a reused buffer's out[:0] to
// predict without allocating, or nil for a fresh slice.
func (m *Model) PredictRow(row []float64, out []float64) ([]float64, error) {
	if len(row) != m.numFeature {
		return out, fmt.Errorf("xgboost predict: row has %d features, the model takes %d: %w",
			len(row), m.numFeature, domain.ErrInvalid)
	}
	no := m.NumOutputs()
	n := len(out)
	out = grow(out, no)
	m.predictRow(row, out[n:n+no])
	return out, nil
}

func grow(s []float64, k int) []float64 {
	if cap(s)-len(s) >= k {
		return s[:len(s)+k]
	}
	return append(s, make([]float64, k)...)
}

// predictRow writes one row's predictions; len(row) == numFeature and
// len(out) == NumOutputs.
func (m *Model) predictRow(row, out []float64) {
	missing := false
	for _, v := range row {
		if v != v {
			missing = true
			break
		}
	}
	switch m.transform {
	case transformIdentity:
		out[0] = float64(m.margin(0, row, missing))
	case transformSigmoid:
		out[0] = float64(sigmoid(m.margin(0, row, missing)))
	case transformArgmax:
		best, bestMargin := 0, m.margin(0, row, missing)
		for g := 1; g < len(m.batches); g++ {
			if v := m.margin(g, row, missing); v > bestMargin {
				best, bestMargin = g, v
			}
		}
		out[0] = float64(best)
	case transformSoftmax:
		for g := range m.batches {
			out[g] = float64(m.margin(g, row, missing))
		}
		softmax(out)
	}
}

// margin is output group g's raw score for one row: the base margin plus
// one leaf per tree, summed in float32 in training order as XGBoost does.
// Each batch's trees are walked in lockstep (see node); rows without a
// missing value take the shorter step.
func (m *Model) margin(g int, row []float64, missing bool) float32 {
	nodes, ms := m.nodes, m.missingRight
	acc := m.base[g]
	for b := range m.batches[g] {
		tb := &m.batches[g][b]
		i0, i1, i2, i3 := tb.roots[0], tb.roots[1], tb.roots[2], tb.roots[3]
		i4, i5, i6, i7 := tb.roots[4], tb.roots[5], tb.roots[6], tb.roots[7]
		if missing {
			for range tb.depth {
				i0 = stepMissing(nodes, ms, i0, row)
				i1 = stepMissing(nodes, ms, i1, row)
				i2 = stepMissing(nodes, ms, i2, row)
				i3 = stepMissing(nodes, ms, i3, row)
				i4 = stepMissing(nodes, ms, i4, row)
				i5 = stepMissing(nodes, ms, i5, row)
				i6 = stepMissing(nodes, ms, i6, row)
				i7 = stepMissing(nodes, ms, i7, row)
			}
		} else {
			for range tb.depth {
				i0 = step(nodes, i0, row)
				i1 = step(nodes, i1, row)
				i2 = step(nodes, i2, row)
				i3 = step(nodes, i3, row)
				i4 = step(nodes, i4, row)
				i5 = step(nodes, i5, row)
				i6 = step(nodes, i6, row)
				i7 = step(nodes, i7, row)
			}
		}
		leaf := m.leaf
		acc += leaf[i0]
		acc += leaf[i1]
		acc += leaf[i2]
		acc += leaf[i3]
		acc += leaf[i4]
		acc += leaf[i5]
		acc += leaf[i6]
		acc += leaf[i7]
	}
	return acc
}

// step moves from node i to the child row selects, or stays on a leaf.
// XGBoost goes left when float32(x) < cond, comparing in float32.
func step(nodes []node, i uint32, row []float64) uint32 {
	n := nodes[i]
	return n.left + b2u(float32(row[n.feat]) >= n.cond)
}

// stepMissing is step for rows with missing values: a NaN, for which the
// comparison is false, follows the node's default direction instead.
func stepMissing(nodes []node, missingRight []bool, i uint32, row []float64) uint32 {
	n := nodes[i]
	v := row[n.feat]
	right := b2u(float32(v) >= n.cond)
	if v != v {
		right = b2u(missingRight[i])
	}
	return n.left + right
}

// b2u is written so that the compiler turns it into a flag read, not a
// branch.
func b2u(b bool) uint32 {
	var u uint32
	if b {
		u = 1
	}
	return u
}

// sigmoid matches XGBoost's float32 common::Sigmoid, including its clamp
// that keeps exp from overflowing.
func sigmoid(x float32) float32 {
	e := float32(math.Exp(float64(min(-x, 88.7))))
	return 1 / (1 + e)
}

// softmax turns margins (float32 values held in float64) into probabilities
// in place, as XGBoost's common::Softmax: float32 exponentials of the
// max-shifted margins, normalised by their float64 sum.
func softmax(v []float64) {
	wmax := float32(v[0])
	for _, x := range v[1:] {
		wmax = max(wmax, float32(x))
	}
	var sum float64
	for i, x := range v {
		e := float32(math.Exp(float64(float32(x) - wmax)))
		v[i] = float64(e)
		sum += float64(e)
	}
	for i, x := range v {
		v[i] = float64(float32(x) / float32(sum))
	}
}
