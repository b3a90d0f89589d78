package evalrun

import (
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// R² of one row is undefined (scikit-learn answers nan and warns): a
// one-row segment reports MAE and RMSE without it, rather than 0.
func TestRegressionMetricsOfOneRow(t *testing.T) {
	m, err := taskMetrics(domain.TaskRegression, []float64{5}, []float64{3}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m[domain.MetricR2]; ok || m[domain.MetricMAE] != 2 || m[domain.MetricRMSE] != 2 {
		t.Errorf("one row: %v", m)
	}
	// Two rows of one label: scikit-learn's 0 for an imperfect fit.
	m, err = taskMetrics(domain.TaskRegression, []float64{5, 5}, []float64{3, 5}, true)
	if r2, ok := m[domain.MetricR2]; err != nil || !ok || r2 != 0 {
		t.Errorf("two rows, constant labels: %v %v", m, err)
	}
}
