package evaluation

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

type refCase struct {
	Name      string             `json:"name"`
	Kind      string             `json:"kind"`
	Threshold float64            `json:"threshold"`
	Labels    []float64          `json:"labels"`
	Scores    []float64          `json:"scores"`
	Groups    []string           `json:"groups"`
	Want      map[string]float64 `json:"want"`
}

// TestAgainstScikitLearn compares every metric with the value scikit-learn
// computed on the same labels and predictions (testdata/generate.py).
func TestAgainstScikitLearn(t *testing.T) {
	b, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []refCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	for _, c := range ref.Cases {
		t.Run(c.Name, func(t *testing.T) {
			got := map[string]float64{}
			switch c.Kind {
			case "classification":
				m, err := Classify(c.Labels, c.Scores, c.Threshold)
				if err != nil {
					t.Fatal(err)
				}
				got = map[string]float64{"accuracy": m.Accuracy, "precision": m.Precision, "recall": m.Recall, "f1": m.F1,
					"roc_auc": m.ROCAUC, "log_loss": m.LogLoss, "brier": m.Brier, "ece": m.ECE}
			case "regression":
				m, err := Regress(c.Labels, c.Scores)
				if err != nil {
					t.Fatal(err)
				}
				got = map[string]float64{"mae": m.MAE, "rmse": m.RMSE, "r2": m.R2}
			case "fairness":
				f, err := Compare(c.Labels, c.Scores, c.Groups, c.Threshold)
				if err != nil {
					t.Fatal(err)
				}
				got = map[string]float64{"tpr_gap": f.TPRGap, "positive_rate_gap": f.PositiveRateGap}
			}
			if len(got) != len(c.Want) {
				t.Fatalf("computed %d metrics, reference has %d", len(got), len(c.Want))
			}
			for k, want := range c.Want {
				if math.Abs(got[k]-want) > 1e-12*math.Max(1, math.Abs(want)) {
					t.Errorf("%s = %.17g, scikit-learn %.17g", k, got[k], want)
				}
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name string
		err  error
	}{
		{"length mismatch", func() error { _, err := Classify([]float64{1}, []float64{0.5, 0.5}, 0.5); return err }()},
		{"empty", func() error { _, err := Classify(nil, nil, 0.5); return err }()},
		{"label 2", func() error { _, err := Classify([]float64{2, 0}, []float64{0.5, 0.5}, 0.5); return err }()},
		{"score out of range", func() error { _, err := Classify([]float64{1, 0}, []float64{1.5, 0.5}, 0.5); return err }()},
		{"one class", func() error { _, err := Classify([]float64{1, 1}, []float64{0.2, 0.9}, 0.5); return err }()},
		{"NaN regression", func() error { _, err := Regress([]float64{1, math.NaN()}, []float64{1, 2}); return err }()},
		{"groups mismatch", func() error { _, err := Compare([]float64{1, 0}, []float64{0.5, 0.5}, []string{"a"}, 0.5); return err }()},
	}
	for _, c := range cases {
		if !errors.Is(c.err, domain.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, c.err)
		}
	}
	if m, auc, err := ClassifySubset([]float64{1, 1}, []float64{0.2, 0.9}, 0.5); err != nil || auc || m.Recall != 0.5 || m.Accuracy != 0.5 {
		t.Errorf("one-class subset: %+v, roc_auc defined %v, %v; want recall 0.5 and no ROC-AUC", m, auc, err)
	}
	if _, _, err := ClassifySubset([]float64{2}, []float64{0.5}, 0.5); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("subset with label 2: %v, want ErrInvalid", err)
	}
	if r, _ := Regress([]float64{3, 3}, []float64{3, 3}); r.R2 != 1 {
		t.Errorf("perfect fit of constant labels: R² = %v, want 1", r.R2)
	}
}
