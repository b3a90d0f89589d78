// Package xgboost owns slipway's in-process XGBoost evaluator: it parses the
// JSON model format written by XGBoost's Booster.save_model("model.json"),
// refuses what it cannot evaluate exactly (gblinear, dart, categorical
// splits, multi-target trees, other objectives) with an error that names the
// feature, and predicts as XGBoost's own CPU predictor does — float32
// comparisons and float32 accumulation — so results match XGBoost to within
// 1e-6. There is no Python and no cgo at serving time.
//
// The evaluator (Load, Model, Predict) imports only internal/domain (for
// ErrInvalid) and the standard library, so it can be tested and fuzzed on
// its own; it must not import the gateway, stores or anything that does I/O
// beyond the io.Reader handed to Load.
package xgboost

import (
	"fmt"
	"math"

	"github.com/slipway-ml/slipway/internal/domain"
)

// The objectives the evaluator supports, as XGBoost names them.
const (
	ObjectiveBinaryLogistic = "binary:logistic"
	ObjectiveBinaryLogitRaw = "binary:logitraw"
	ObjectiveSquaredError   = "reg:squarederror"
	ObjectiveRegLogistic    = "reg:logistic"
	ObjectiveMultiSoftprob  = "multi:softprob"
	ObjectiveMultiSoftmax   = "multi:softmax"
)

// transform is how an objective turns margins into predictions.
type transform uint8

const (
	transformIdentity transform = iota // margin as is
	transformSigmoid                   // 1 / (1 + exp(-margin))
	transformSoftmax                   // probabilities over the classes
	transformArgmax                    // index of the largest class margin
)

// objectives maps every supported objective to its output transform and to
// whether base_score is a probability that must be turned into a logit.
var objectives = map[string]struct {
	transform transform
	logitBase bool
	multi     bool
}{
	ObjectiveBinaryLogistic: {transformSigmoid, true, false},
	ObjectiveRegLogistic:    {transformSigmoid, true, false},
	// XGBoost's LogisticRaw keeps base_score as a margin (ProbToMargin is
	// the identity), so logitraw adds it untransformed.
	ObjectiveBinaryLogitRaw: {transformIdentity, false, false},
	ObjectiveSquaredError:   {transformIdentity, false, false},
	ObjectiveMultiSoftprob:  {transformSoftmax, false, true},
	ObjectiveMultiSoftmax:   {transformArgmax, false, true},
}

// node is one tree node, packed into 12 bytes. Trees are renumbered at load
// so that children follow their parent and the right child sits right after
// the left one, and a leaf points at itself with a NaN threshold: one step,
// next = left + (float32(x) >= cond), walks inner nodes the XGBoost way and
// leaves a leaf where it is. That lets the evaluator walk several trees in
// lockstep for a fixed number of steps, without a data-dependent branch:
// the CPU overlaps the independent walks instead of mispredicting splits.
type node struct {
	// cond is the split threshold (go left when float32(x) < cond); NaN
	// for a leaf, so that no comparison moves off it.
	cond float32
	// feat is the feature index the node splits on; 0 for a leaf.
	feat uint32
	// left is the index of the left child in Model.nodes (the right child
	// is left+1); a leaf's own index.
	left uint32
}

// lanes is how many trees are walked in lockstep: their steps do not depend
// on each other, so the CPU overlaps them.
const lanes = 8

// treeBatch is up to lanes consecutive trees of one output group, walked
// together for the depth of the deepest. Missing lanes in a group's last
// batch hold zeroLeaf, which adds exactly 0.
type treeBatch struct {
	roots [lanes]uint32
	depth int
}

// zeroLeaf is the index of the leaf with value 0 that pads a group's last
// batch; Load puts it first in Model.nodes.
const zeroLeaf = 0

// Model is a loaded XGBoost tree ensemble. It is immutable after Load and
// safe for concurrent use by any number of goroutines.
type Model struct {
	objective    string
	transform    transform
	numFeature   int
	numClass     int // 0 for single-output objectives
	featureNames []string

	nodes []node
	// leaf holds each leaf's value at the leaf's node index.
	leaf []float32
	// missingRight says, per node, that a missing value goes right (the
	// inverse of XGBoost's default_left); read only for missing values.
	missingRight []bool
	// batches holds, per output group (one per class for multi-class,
	// else one), the group's trees in training order: XGBoost sums a
	// group's leaves in that order, in float32, and so does margin.
	batches [][]treeBatch
	// base is the per-group starting margin, already in margin space.
	base []float32
	// numTrees counts trees across groups.
	numTrees int
}

// NumFeatures is the number of columns every input row must have.
func (m *Model) NumFeatures() int { return m.numFeature }

// NumOutputs is the number of values Predict writes per row: the number of
// classes for multi:softprob, otherwise 1.
func (m *Model) NumOutputs() int {
	if m.transform == transformSoftmax {
		return m.numClass
	}
	return 1
}

// Objective is the XGBoost objective the model was trained with; it decides
// what the outputs mean (a probability, a margin, a class index).
func (m *Model) Objective() string { return m.objective }

// NumTrees is the number of trees in the ensemble.
func (m *Model) NumTrees() int { return m.numTrees }

// FeatureNames returns the feature names saved with the model, or nil when
// it was trained without them. Callers may map named inputs to columns with
// them; the slice is a copy.
func (m *Model) FeatureNames() []string {
	if len(m.featureNames) == 0 {
		return nil
	}
	return append([]string(nil), m.featureNames...)
}

// baseMargin turns base_score into the margin every prediction starts from,
// in float32 as XGBoost's ProbToMargin does.
func baseMargin(objective string, score float32) (float32, error) {
	if !objectives[objective].logitBase {
		return score, nil
	}
	if !(score > 0 && score < 1) {
		return 0, fmt.Errorf("xgboost model: base_score %v must be in (0, 1) for objective %q: %w",
			score, objective, domain.ErrInvalid)
	}
	t := float32(1)/score - 1
	return float32(-math.Log(float64(t))), nil
}
