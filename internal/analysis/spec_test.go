package analysis

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

func TestSpecValidate(t *testing.T) {
	ok := []Spec{
		{Rules: []Rule{{Metric: ErrorRate, Max: f64(0.02)}}},
		{MinSamples: 200, FalseRollbackRate: 0.01, Rules: []Rule{
			{Metric: ErrorRate, Max: f64(0.02), MaxVsBaseline: f64(0.005)},
			{Metric: LatencyP99Ms, MaxRatioVsBaseline: f64(1.25)},
			{Prometheus: &PrometheusRule{Query: "sum(rate(x[1m]))", Max: f64(3)}},
		}},
		{Rules: []Rule{{Metric: ErrorRate, Max: f64(0)}}},
		{Rules: []Rule{{Metric: LatencyP50Ms, Max: f64(80)}, {Metric: LatencyP95Ms, MaxRatioVsBaseline: f64(1)}}},
		{Rules: []Rule{{Prometheus: &PrometheusRule{Query: "up", Min: f64(1), Max: f64(1)}}}},
	}
	for i, s := range ok {
		if err := s.Validate(); err != nil {
			t.Errorf("spec %d: %v", i, err)
		}
	}

	bad := []struct {
		name  string
		spec  Spec
		rule  int
		field string
		says  string
	}{
		{"no rules", Spec{}, -1, "rules", "no rules"},
		{"negative minSamples", Spec{MinSamples: -1, Rules: []Rule{{Metric: ErrorRate, Max: f64(0.1)}}}, -1, "minSamples", "from 0"},
		{"rate too high", Spec{FalseRollbackRate: 0.5, Rules: []Rule{{Metric: ErrorRate, Max: f64(0.1)}}}, -1, "falseRollbackRate", "at most 0.2"},
		{"rate negative", Spec{FalseRollbackRate: -0.01, Rules: []Rule{{Metric: ErrorRate, Max: f64(0.1)}}}, -1, "falseRollbackRate", "probability"},
		{"rate NaN", Spec{FalseRollbackRate: math.NaN(), Rules: []Rule{{Metric: ErrorRate, Max: f64(0.1)}}}, -1, "falseRollbackRate", "probability"},
		{"unknown metric", Spec{Rules: []Rule{{Metric: "error_ratio", Max: f64(0.1)}}}, 0, "metric", "not one of"},
		{"no metric", Spec{Rules: []Rule{{Max: f64(0.1)}}}, 0, "metric", "missing"},
		{"no threshold", Spec{Rules: []Rule{{Metric: ErrorRate}}}, 0, "", "no threshold"},
		{"error max percent", Spec{Rules: []Rule{{Metric: ErrorRate, Max: f64(2)}}}, 0, "max", "fraction"},
		{"error max negative", Spec{Rules: []Rule{{Metric: ErrorRate, Max: f64(-0.1)}}}, 0, "max", "fraction"},
		{"error ratio", Spec{Rules: []Rule{{Metric: ErrorRate, MaxRatioVsBaseline: f64(1.2)}}}, 0, "maxRatioVsBaseline", "maxVsBaseline"},
		{"error vs baseline", Spec{Rules: []Rule{{Metric: ErrorRate, MaxVsBaseline: f64(1)}}}, 0, "maxVsBaseline", "difference"},
		{"latency vs baseline", Spec{Rules: []Rule{{Metric: LatencyP99Ms, MaxVsBaseline: f64(10)}}}, 0, "maxVsBaseline", "maxRatioVsBaseline"},
		{"latency ratio below 1", Spec{Rules: []Rule{{Metric: LatencyP99Ms, MaxRatioVsBaseline: f64(0.8)}}}, 0, "maxRatioVsBaseline", "from 1"},
		{"latency max zero", Spec{Rules: []Rule{{Metric: LatencyP99Ms, Max: f64(0)}}}, 0, "max", "above 0"},
		{"latency max inf", Spec{Rules: []Rule{{Metric: LatencyP99Ms, Max: f64(math.Inf(1))}}}, 0, "max", "finite"},
		{"twice", Spec{Rules: []Rule{{Metric: ErrorRate, Max: f64(0.1)}, {Metric: ErrorRate, MaxVsBaseline: f64(0.01)}}}, 1, "metric", "already judged by rules[0]"},
		{"both kinds", Spec{Rules: []Rule{{Metric: ErrorRate, Prometheus: &PrometheusRule{Query: "x", Max: f64(1)}}}}, 0, "prometheus", "either"},
		{"no query", Spec{Rules: []Rule{{Prometheus: &PrometheusRule{Query: " ", Max: f64(1)}}}}, 0, "prometheus.query", "missing"},
		{"long query", Spec{Rules: []Rule{{Prometheus: &PrometheusRule{Query: strings.Repeat("x", 5000), Max: f64(1)}}}}, 0, "prometheus.query", "bytes"},
		{"no bound", Spec{Rules: []Rule{{Prometheus: &PrometheusRule{Query: "x"}}}}, 0, "prometheus", "no bound"},
		{"min above max", Spec{Rules: []Rule{{Prometheus: &PrometheusRule{Query: "x", Min: f64(2), Max: f64(1)}}}}, 0, "prometheus", "no value could pass"},
		{"NaN bound", Spec{Rules: []Rule{{Prometheus: &PrometheusRule{Query: "x", Min: f64(math.NaN())}}}}, 0, "prometheus.min", "finite"},
		{"too many rules", Spec{Rules: make([]Rule, maxRules+1)}, -1, "rules", "at most"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
			se, ok := errors.AsType[*SpecError](err)
			if !ok {
				t.Fatalf("%T is not a *SpecError", err)
			}
			if se.Rule != tc.rule || se.Field != tc.field {
				t.Errorf("names rule %d field %q, want rule %d field %q (%v)", se.Rule, se.Field, tc.rule, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%q does not say %q", err, tc.says)
			}
		})
	}
}

func TestSpecErrorText(t *testing.T) {
	err := Spec{Rules: []Rule{{Metric: ErrorRate, Max: f64(0.1)}, {Metric: LatencyP99Ms, MaxVsBaseline: f64(3)}}}.Validate()
	want := "analysis.rules[1].maxVsBaseline: applies to error_rate; latency compares with the baseline by maxRatioVsBaseline, such as 1.25"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestSpecDefaults(t *testing.T) {
	v := Judge(Spec{Rules: []Rule{{Metric: ErrorRate, Max: f64(0.1)}}}, Observations{})
	if v.MinSamples != DefaultMinSamples || v.FalseRollbackRate != DefaultFalseRollbackRate {
		t.Errorf("defaults %d, %g", v.MinSamples, v.FalseRollbackRate)
	}
}

// FuzzSpecValidate: whatever a document holds, Validate answers without
// panicking, refusals are SpecErrors, and an accepted spec can be judged.
func FuzzSpecValidate(f *testing.F) {
	f.Add("error_rate", 0.02, 0.005, 0.0, "", 200, 0.01)
	f.Add("latency_p99_ms", 250.0, 0.0, 1.25, "", 0, 0.0)
	f.Add("", 3.0, 0.0, 0.0, "sum(rate(x[1m]))", 10, 0.05)
	f.Add("latency_p50_ms", -1.0, 2.0, 0.5, "q", -5, 2.0)
	f.Fuzz(func(t *testing.T, metric string, mx, vs, ratio float64, query string, minSamples int, rate float64) {
		r := Rule{Metric: Metric(metric)}
		if query != "" {
			r = Rule{Prometheus: &PrometheusRule{Query: query, Max: &mx}}
		} else {
			if mx != 0 {
				r.Max = &mx
			}
			if vs != 0 {
				r.MaxVsBaseline = &vs
			}
			if ratio != 0 {
				r.MaxRatioVsBaseline = &ratio
			}
		}
		s := Spec{MinSamples: minSamples, FalseRollbackRate: rate, Rules: []Rule{r}}
		err := s.Validate()
		if err != nil {
			if _, ok := errors.AsType[*SpecError](err); !ok {
				t.Fatalf("%T: %v", err, err)
			}
			if v := Judge(s, Observations{}); v.Outcome != Error {
				t.Fatalf("invalid spec judged %s", v.Outcome)
			}
			return
		}
		obs := Observations{
			Candidate:  Version{Requests: 50, Errors: 5, Latency: Histogram{{Ms: 10, Count: 50}}},
			Baseline:   Version{Requests: 500, Errors: 5, Latency: Histogram{{Ms: 10, Count: 500}}},
			Prometheus: map[string]PromResult{query: {Value: 1}},
		}
		if v := Judge(s, obs); v.Outcome == Error {
			t.Fatalf("valid spec: %s", v.Reason)
		}
	})
}
