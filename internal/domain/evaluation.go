package domain

import (
	"fmt"
	"time"
)

// EvaluationStatus is where an evaluation run is. An evaluation is created
// running and finishes once, as succeeded or failed; a finished evaluation
// never changes.
type EvaluationStatus string

// Evaluation statuses.
const (
	EvaluationRunning   EvaluationStatus = "running"
	EvaluationSucceeded EvaluationStatus = "succeeded"
	EvaluationFailed    EvaluationStatus = "failed"
)

// ParseEvaluationStatus checks a status given from outside.
func ParseEvaluationStatus(s string) (EvaluationStatus, error) {
	switch st := EvaluationStatus(s); st {
	case EvaluationRunning, EvaluationSucceeded, EvaluationFailed:
		return st, nil
	}
	return "", fmt.Errorf("evaluation status %q is not running, succeeded or failed: %w", truncate(s, 40), ErrInvalid)
}

// Metric names an evaluation records; gates refer to them by these names.
const (
	MetricAccuracy     = "accuracy"
	MetricPrecision    = "precision"
	MetricRecall       = "recall"
	MetricF1           = "f1"
	MetricROCAUC       = "roc_auc"
	MetricLogLoss      = "log_loss"
	MetricBrier        = "brier"
	MetricECE          = "ece"
	MetricMAE          = "mae"
	MetricRMSE         = "rmse"
	MetricR2           = "r2"
	MetricLatencyP50MS = "latency_p50_ms"
	MetricLatencyP99MS = "latency_p99_ms"
	// Fairness over the sensitive column.
	MetricTPRGap          = "tpr_gap"
	MetricPositiveRateGap = "positive_rate_gap"
)

// EvaluationMetrics lists the metric names of each task (latency and
// fairness included), for gates that must refuse an unknown metric.
var EvaluationMetrics = map[Task][]string{
	TaskClassification: {MetricAccuracy, MetricPrecision, MetricRecall, MetricF1, MetricROCAUC, MetricLogLoss,
		MetricBrier, MetricECE, MetricLatencyP50MS, MetricLatencyP99MS, MetricTPRGap, MetricPositiveRateGap},
	TaskRegression: {MetricMAE, MetricRMSE, MetricR2, MetricLatencyP50MS, MetricLatencyP99MS},
}

// Evaluation is one recorded run of a model version over every row of one
// dataset version.
type Evaluation struct {
	ID             int64            `json:"id"`
	Model          string           `json:"model"`
	Version        int              `json:"version"`
	Dataset        string           `json:"dataset"`
	DatasetVersion int              `json:"dataset_version"`
	DatasetDigest  string           `json:"dataset_digest"`
	Status         EvaluationStatus `json:"status"`
	// Error says why a failed evaluation failed.
	Error string `json:"error,omitempty"`
	Task  Task   `json:"task"`
	// Rows is how many rows were predicted (every row of the dataset on
	// success).
	Rows int `json:"rows"`
	// Threshold turns a classification score into a predicted class.
	Threshold float64 `json:"threshold,omitempty"`
	// Metrics over every row, by the names above.
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Segments []SegmentMetrics   `json:"segments,omitempty"`
	Fairness *Fairness          `json:"fairness,omitempty"`
	// Features says how dataset columns were matched to model inputs.
	Features *FeatureMatch `json:"features,omitempty"`
	// Baseline is the ID of the evaluation this one was compared with
	// (the champion's, run on the same dataset), 0 for none.
	Baseline   int64      `json:"baseline,omitempty"`
	CreatedBy  string     `json:"created_by"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// SegmentMetrics are the metrics of the rows holding one value of a
// segment column. A metric that is undefined on the segment (ROC-AUC of a
// segment with one class) is left out.
type SegmentMetrics struct {
	Column  string             `json:"column"`
	Value   string             `json:"value"`
	Rows    int                `json:"rows"`
	Metrics map[string]float64 `json:"metrics"`
}

// Fairness compares the groups of the sensitive column.
type Fairness struct {
	Column string `json:"column"`
	// TPRGap is the largest difference in true-positive rate between two
	// groups that have positive labels; PositiveRateGap the largest in the
	// share predicted positive.
	TPRGap          float64      `json:"tpr_gap"`
	PositiveRateGap float64      `json:"positive_rate_gap"`
	Groups          []GroupRates `json:"groups"`
}

// GroupRates are one group's rates.
type GroupRates struct {
	Group        string   `json:"group"`
	Rows         int      `json:"rows"`
	TPR          *float64 `json:"tpr,omitempty"`
	PositiveRate float64  `json:"positive_rate"`
}

// Feature matching rules.
const (
	// MatchByName: the model declares feature names; each is read from the
	// dataset column of that name.
	MatchByName = "name"
	// MatchByCount: the model declares only how many features it takes;
	// the dataset's columns other than label, segments and sensitive are
	// sent in file order and must be that many.
	MatchByCount = "count"
	// MatchUnchecked: the model declares neither names nor a count (its
	// metadata has no fixed input width); the columns other than label,
	// segments and sensitive are sent in file order, unchecked.
	MatchUnchecked = "unchecked"
)

// FeatureMatch records which dataset columns fed which model inputs.
type FeatureMatch struct {
	Rule    string   `json:"rule"`
	Columns []string `json:"columns"`
}
