package analysis

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

func TestJudgeDisagreementRate(t *testing.T) {
	ceiling := 0.02
	s := Spec{MinSamples: 100, Rules: []Rule{{Metric: DisagreementRate, Max: &ceiling}}}
	healthy := Version{Requests: 500, Latency: Histogram{{Ms: 20, Count: 500}}}
	cases := []struct {
		name string
		cmp  *Comparison
		want Outcome
	}{
		{"a mirror that disagrees 30 % of the time fails", &Comparison{Compared: 100, Disagreed: 30}, Fail},
		{"one disagreement in 500 passes", &Comparison{Compared: 500, Disagreed: 1}, Pass},
		{"nothing compared yet is inconclusive", &Comparison{}, Inconclusive},
		{"not mirrored: the rule makes no check, so nothing passes", nil, Inconclusive},
	}
	for _, c := range cases {
		v := Judge(s, Observations{Baseline: healthyBaseline(), Candidate: healthy, Comparison: c.cmp})
		if v.Outcome != c.want {
			t.Errorf("%s: %s (%s)", c.name, v.Outcome, v.Reason)
		}
		if c.cmp == nil && len(v.Checks) != 0 {
			t.Errorf("%s: checks %+v", c.name, v.Checks)
		}
		if c.want == Fail && !strings.Contains(v.Reason, "disagreement rate 30/100") {
			t.Errorf("%s: reason %q", c.name, v.Reason)
		}
	}
	bad := Judge(s, Observations{Baseline: healthyBaseline(), Candidate: healthy, Comparison: &Comparison{Compared: 1, Disagreed: 2}})
	if bad.Outcome != Error {
		t.Errorf("more disagreements than comparisons: %s", bad.Outcome)
	}
}

func TestDisagreementRateTakesMaxOnly(t *testing.T) {
	one, half := 1.0, 0.5
	for name, r := range map[string]Rule{
		"vs baseline": {Metric: DisagreementRate, Max: &half, MaxVsBaseline: &half},
		"ratio":       {Metric: DisagreementRate, MaxRatioVsBaseline: &one},
		"ceiling 1":   {Metric: DisagreementRate, Max: &one},
		"none":        {Metric: DisagreementRate},
	} {
		if err := (Spec{Rules: []Rule{r}}).Validate(); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A Prometheus value read too early to reflect the run may fail a
// candidate but never pass one.
func TestPrometheusEarlyValueCannotPass(t *testing.T) {
	ceiling := 1.0
	s := Spec{MinSamples: 1, Rules: []Rule{{Prometheus: &PrometheusRule{Query: "errors", Max: &ceiling}}}}
	healthy := Version{Requests: 500, Latency: Histogram{{Ms: 20, Count: 500}}}
	judge := func(r PromResult) Outcome {
		return Judge(s, Observations{Baseline: healthyBaseline(), Candidate: healthy, Prometheus: map[string]PromResult{"errors": r}}).Outcome
	}
	if o := judge(PromResult{Value: 0, Early: true}); o != Inconclusive {
		t.Errorf("an early value within bounds: %s", o)
	}
	if o := judge(PromResult{Value: 5, Early: true}); o != Fail {
		t.Errorf("an early value out of bounds: %s", o)
	}
	if o := judge(PromResult{Value: 0}); o != Pass {
		t.Errorf("a settled value within bounds: %s", o)
	}
}
