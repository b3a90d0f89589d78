// Package evaluation computes the quality metrics gates judge a version by,
// from labels and predictions: classification (accuracy, precision, recall,
// F1, ROC-AUC, log loss, Brier score, expected calibration error),
// regression (MAE, RMSE, R²), and fairness gaps between groups. Values
// equal scikit-learn's on the same predictions (tested against numbers it
// computed). It is pure: standard library and domain only.
package evaluation

import (
	"fmt"
	"math"
	"sort"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Classification holds binary classification metrics. Scores are the
// predicted probability of the positive class (label 1).
type Classification struct {
	Rows      int     `json:"rows"`
	Threshold float64 `json:"threshold"`
	Accuracy  float64 `json:"accuracy"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	ROCAUC    float64 `json:"roc_auc"`
	LogLoss   float64 `json:"log_loss"`
	Brier     float64 `json:"brier"`
	// ECE is the expected calibration error over ten equal-width bins of
	// the score: Σ n_b/N · |mean label − mean score| in each bin.
	ECE float64 `json:"ece"`
}

// logLossEps clips probabilities as scikit-learn's log_loss does.
const logLossEps = 1e-15

// eceBins is the number of equal-width calibration bins.
const eceBins = 10

// Classify computes binary classification metrics. Labels must be 0 or 1,
// scores probabilities in [0, 1]; a score at or above threshold predicts 1.
// Precision, recall and F1 are 0 when undefined (scikit-learn's
// zero_division=0); ROC-AUC needs both classes present.
func Classify(labels, scores []float64, threshold float64) (Classification, error) {
	m, aucErr, err := classify(labels, scores, threshold)
	if err == nil {
		err = aucErr
	}
	if err != nil {
		return Classification{}, err
	}
	return m, nil
}

// ClassifySubset is Classify for a subset of the rows (one segment), which
// may hold one class only: ROC-AUC is then undefined, ROCAUC is left 0 and
// aucDefined is false. Every other metric is defined on any non-empty set.
func ClassifySubset(labels, scores []float64, threshold float64) (m Classification, aucDefined bool, err error) {
	m, aucErr, err := classify(labels, scores, threshold)
	if err != nil {
		return Classification{}, false, err
	}
	return m, aucErr == nil, nil
}

// classify returns the metrics, why ROC-AUC is undefined (nil when it is
// defined), and an error for input it refuses.
func classify(labels, scores []float64, threshold float64) (m Classification, aucErr, err error) {
	if err := checkPairs(labels, scores); err != nil {
		return Classification{}, nil, err
	}
	var tp, fp, fn, tn float64
	var logLoss, brier float64
	for i, y := range labels {
		p := scores[i]
		if y != 0 && y != 1 {
			return Classification{}, nil, fmt.Errorf("row %d: label %v is not 0 or 1: %w", i, y, domain.ErrInvalid)
		}
		if p < 0 || p > 1 || math.IsNaN(p) {
			return Classification{}, nil, fmt.Errorf("row %d: score %v is not a probability in [0, 1]: %w", i, p, domain.ErrInvalid)
		}
		pred := p >= threshold
		switch {
		case pred && y == 1:
			tp++
		case pred:
			fp++
		case y == 1:
			fn++
		default:
			tn++
		}
		c := min(max(p, logLossEps), 1-logLossEps)
		if y == 1 {
			logLoss -= math.Log(c)
		} else {
			logLoss -= math.Log(1 - c)
		}
		brier += (p - y) * (p - y)
	}
	n := float64(len(labels))
	m = Classification{Rows: len(labels), Threshold: threshold,
		Accuracy: (tp + tn) / n, Precision: ratio(tp, tp+fp), Recall: ratio(tp, tp+fn),
		LogLoss: logLoss / n, Brier: brier / n, ECE: ece(labels, scores)}
	if m.Precision+m.Recall > 0 {
		m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
	}
	auc, aucErr := rocAUC(labels, scores)
	m.ROCAUC = auc
	return m, aucErr, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func checkPairs(labels, preds []float64) error {
	if len(labels) != len(preds) {
		return fmt.Errorf("%d labels but %d predictions: %w", len(labels), len(preds), domain.ErrInvalid)
	}
	if len(labels) == 0 {
		return fmt.Errorf("no rows to evaluate: %w", domain.ErrInvalid)
	}
	return nil
}

// rocAUC is the Mann-Whitney U statistic over average ranks, which gives
// tied scores half credit exactly as scikit-learn's trapezoidal ROC does.
func rocAUC(labels, scores []float64) (float64, error) {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSumPos, pos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1 … j averaged
		for k := i; k < j; k++ {
			if labels[idx[k]] == 1 {
				rankSumPos += avg
				pos++
			}
		}
		i = j
	}
	neg := float64(len(labels)) - pos
	if pos == 0 || neg == 0 {
		return 0, fmt.Errorf("ROC-AUC needs both classes among the labels (positives %v, negatives %v): %w", pos, neg, domain.ErrInvalid)
	}
	return (rankSumPos - pos*(pos+1)/2) / (pos * neg), nil
}

func ece(labels, scores []float64) float64 {
	var count, sumY, sumP [eceBins]float64
	for i, p := range scores {
		b := min(int(p*eceBins), eceBins-1)
		count[b]++
		sumY[b] += labels[i]
		sumP[b] += p
	}
	n := float64(len(scores))
	total := 0.0
	for b := range eceBins {
		if count[b] > 0 {
			total += count[b] / n * math.Abs(sumY[b]/count[b]-sumP[b]/count[b])
		}
	}
	return total
}

// Regression holds regression metrics.
type Regression struct {
	Rows int     `json:"rows"`
	MAE  float64 `json:"mae"`
	RMSE float64 `json:"rmse"`
	R2   float64 `json:"r2"`
}

// Regress computes MAE, RMSE and R² (1 − SS_res/SS_tot; scikit-learn's
// convention: 1 for a perfect fit of constant labels, 0 otherwise).
func Regress(labels, preds []float64) (Regression, error) {
	if err := checkPairs(labels, preds); err != nil {
		return Regression{}, err
	}
	n := float64(len(labels))
	var mean float64
	for i, y := range labels {
		if math.IsNaN(y) || math.IsNaN(preds[i]) || math.IsInf(y, 0) || math.IsInf(preds[i], 0) {
			return Regression{}, fmt.Errorf("row %d: label %v or prediction %v is not finite: %w", i, y, preds[i], domain.ErrInvalid)
		}
		mean += y
	}
	mean /= n
	var abs, sq, tot float64
	for i, y := range labels {
		d := preds[i] - y
		abs += math.Abs(d)
		sq += d * d
		tot += (y - mean) * (y - mean)
	}
	r := Regression{Rows: len(labels), MAE: abs / n, RMSE: math.Sqrt(sq / n)}
	switch {
	case tot != 0:
		r.R2 = 1 - sq/tot
	case sq == 0:
		r.R2 = 1
	}
	return r, nil
}
