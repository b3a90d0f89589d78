package evalrun

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/slipway-ml/slipway/internal/dataset"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/evaluation"
)

// threshold turns a classifier's score into the positive class (score >=
// threshold), as scikit-learn's default predict does for probabilities.
const threshold = 0.5

// missingGroup names the rows of a segment or sensitive column without a
// value.
const missingGroup = "(missing)"

// results is everything an evaluation found.
type results struct {
	metrics  map[string]float64
	segments []domain.SegmentMetrics
	fairness *domain.Fairness
}

// score computes the metrics of predictions against labels: over every
// row, per value of each segment column, and the fairness gaps over the
// sensitive column (classification only: the gaps are of true-positive
// and positive rates).
func score(d domain.Dataset, t *dataset.Table, labels, preds []float64, latencies []time.Duration) (results, error) {
	m, err := taskMetrics(d.Task, labels, preds, false)
	if err != nil {
		return results{}, err
	}
	p50, p99 := percentile(latencies, 50), percentile(latencies, 99)
	m[domain.MetricLatencyP50MS], m[domain.MetricLatencyP99MS] = p50, p99
	r := results{metrics: m}
	for _, col := range d.Segments {
		groups := groupsOf(t.Text(col))
		for _, value := range sortedKeys(groups) {
			rows := groups[value]
			sm, err := taskMetrics(d.Task, pick(labels, rows), pick(preds, rows), true)
			if err != nil {
				return results{}, fmt.Errorf("segment %s=%s: %w", col, value, err)
			}
			r.segments = append(r.segments, domain.SegmentMetrics{Column: col, Value: value, Rows: len(rows), Metrics: sm})
		}
	}
	if d.Sensitive != "" && d.Task == domain.TaskClassification {
		cells := t.Text(d.Sensitive)
		groups := make([]string, len(cells))
		for i, c := range cells {
			groups[i] = groupName(c)
		}
		f, err := evaluation.Compare(labels, preds, groups, threshold)
		if err != nil {
			return results{}, fmt.Errorf("fairness over %q: %w", d.Sensitive, err)
		}
		r.fairness = &domain.Fairness{Column: d.Sensitive, TPRGap: f.TPRGap, PositiveRateGap: f.PositiveRateGap}
		for _, g := range f.Groups {
			r.fairness.Groups = append(r.fairness.Groups, domain.GroupRates{Group: g.Group, Rows: g.Rows, TPR: g.TPR, PositiveRate: g.PositiveRate})
		}
		m[domain.MetricTPRGap], m[domain.MetricPositiveRateGap] = f.TPRGap, f.PositiveRateGap
	}
	return r, nil
}

// taskMetrics computes one task's metrics by their names. On a subset (a
// segment) ROC-AUC is left out where it is undefined (one class only);
// R² is left out of fewer than two rows, where it is undefined.
func taskMetrics(task domain.Task, labels, preds []float64, subset bool) (map[string]float64, error) {
	switch task {
	case domain.TaskClassification:
		var c evaluation.Classification
		aucDefined := true
		var err error
		if subset {
			c, aucDefined, err = evaluation.ClassifySubset(labels, preds, threshold)
		} else {
			c, err = evaluation.Classify(labels, preds, threshold)
		}
		if err != nil {
			return nil, err
		}
		m := map[string]float64{
			domain.MetricAccuracy: c.Accuracy, domain.MetricPrecision: c.Precision, domain.MetricRecall: c.Recall,
			domain.MetricF1: c.F1, domain.MetricLogLoss: c.LogLoss, domain.MetricBrier: c.Brier, domain.MetricECE: c.ECE,
		}
		if aucDefined {
			m[domain.MetricROCAUC] = c.ROCAUC
		}
		return m, nil
	case domain.TaskRegression:
		r, err := evaluation.Regress(labels, preds)
		if err != nil {
			return nil, err
		}
		m := map[string]float64{domain.MetricMAE: r.MAE, domain.MetricRMSE: r.RMSE, domain.MetricR2: r.R2}
		if r.Rows < 2 {
			delete(m, domain.MetricR2) // undefined on one row (scikit-learn: nan)
		}
		return m, nil
	}
	return nil, fmt.Errorf("task %q is not classification or regression: %w", task, domain.ErrInvalid)
}

// percentile is the nearest-rank percentile of the latencies in
// milliseconds: the smallest latency at least p % of requests did not
// exceed.
func percentile(latencies []time.Duration, p float64) float64 {
	if len(latencies) == 0 {
		return 0
	}
	s := slices.Clone(latencies)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return float64(s[rank-1]) / float64(time.Millisecond)
}

func groupName(cell string) string {
	if cell == "" {
		return missingGroup
	}
	return cell
}

// groupsOf maps each value of a column to the rows holding it.
func groupsOf(cells []string) map[string][]int {
	g := map[string][]int{}
	for i, c := range cells {
		name := groupName(c)
		g[name] = append(g[name], i)
	}
	return g
}

func sortedKeys(m map[string][]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func pick(v []float64, rows []int) []float64 {
	out := make([]float64, len(rows))
	for i, r := range rows {
		out[i] = v[r]
	}
	return out
}
