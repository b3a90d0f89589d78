package gate_test

import (
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/gate"
)

func f(v float64) *float64 { return &v }

func TestJudge(t *testing.T) {
	p := domain.GatePolicy{Rules: []domain.GateRule{
		{Metric: "roc_auc", Min: f(0.95)},
		{Metric: "f1", MinVsChampion: f(-0.01)},
		{Metric: "latency_p99_ms", Max: f(20)},
		{Metric: "tpr_gap", Group: "age_band", Max: f(0.05)},
		{Metric: "r2", Min: f(0.5)},
	}}
	cand := domain.Evaluation{ID: 7, Task: domain.TaskClassification,
		Metrics: map[string]float64{"roc_auc": 0.96, "f1": 0.93, "latency_p99_ms": 25},
		Segments: []domain.SegmentMetrics{
			{Column: "age_band", Value: "<40", Metrics: map[string]float64{"recall": 0.90}},
			{Column: "age_band", Value: "40+", Metrics: map[string]float64{"recall": 0.93}},
		}}
	champ := domain.Evaluation{ID: 3, Metrics: map[string]float64{"f1": 0.95}}
	res, ok := gate.Judge(p, cand, &champ)
	if ok || len(res) != 5 {
		t.Fatalf("ok %v, %d results", ok, len(res))
	}
	want := []struct {
		kind      string
		verdict   domain.Verdict
		threshold float64
		reason    string
	}{
		{"min", domain.VerdictPass, 0.95, "0.96 ≥ 0.95"},
		{"min_vs_champion", domain.VerdictFail, 0.94, "0.93 < 0.94"},
		{"max", domain.VerdictFail, 20, "25 > 20"},
		{"max", domain.VerdictPass, 0.05, "0.03 ≤ 0.05"},
		{"min", domain.VerdictFail, 0.5, "evaluation 7 (classification) has no r2"},
	}
	for i, w := range want {
		r := res[i]
		if r.Kind != w.kind || r.Verdict != w.verdict || abs(r.Threshold-w.threshold) > 1e-9 || r.Reason != w.reason {
			t.Errorf("result %d = %+v, want %+v", i, r, w)
		}
	}
	if res[1].Champion == nil || *res[1].Champion != 0.95 || *res[1].Observed != 0.93 {
		t.Errorf("champion comparison = %+v", res[1])
	}

	// Without a champion, comparisons are skipped, not failed; at exactly
	// the threshold a rule passes despite float noise.
	p = domain.GatePolicy{Rules: []domain.GateRule{{Metric: "f1", MinVsChampion: f(-0.1), Min: f(0.3)}}}
	res, ok = gate.Judge(p, domain.Evaluation{Metrics: map[string]float64{"f1": 0.3}}, nil)
	if !ok || res[0].Verdict != domain.VerdictPass || res[1].Verdict != domain.VerdictSkipped {
		t.Fatalf("no champion: %+v", res)
	}
	res, ok = gate.Judge(p, domain.Evaluation{Metrics: map[string]float64{"f1": 0.2}}, &domain.Evaluation{Metrics: map[string]float64{"f1": 0.3}})
	if ok || res[1].Verdict != domain.VerdictPass || res[0].Verdict != domain.VerdictFail {
		t.Fatalf("0.2 vs champion 0.3 - 0.1: %+v", res)
	}

	// Fairness over the sensitive column uses its recorded gaps; over a
	// column that is neither, the rule fails naming the fix.
	p = domain.GatePolicy{Rules: []domain.GateRule{
		{Metric: "positive_rate_gap", Group: "sex", Max: f(0.1)},
		{Metric: "positive_rate_gap", Group: "age_band", Max: f(0.1)},
	}}
	e := domain.Evaluation{ID: 9, Fairness: &domain.Fairness{Column: "sex", TPRGap: 0.2, PositiveRateGap: 0.08}}
	res, ok = gate.Judge(p, e, nil)
	if ok || res[0].Verdict != domain.VerdictPass || *res[0].Observed != 0.08 || res[1].Verdict != domain.VerdictFail ||
		res[1].Reason != `evaluation 9 has no positive_rate_gap over column "age_band" (the dataset's sensitive column: "sex"; push the dataset with --sensitive age_band or --segment age_band)` {
		t.Fatalf("fairness: %+v", res)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
