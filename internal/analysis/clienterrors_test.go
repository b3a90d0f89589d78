package analysis

import (
	"strings"
	"testing"
)

// A candidate that answers 400 to what the baseline answers is caught by
// client_error_rate, and error_rate still ignores 4xx.
func TestJudgeClientErrorRate(t *testing.T) {
	margin := 0.01
	base := Version{Requests: 2000, ClientErrors: 4, Latency: Histogram{{Ms: 20, Count: 2000}}}
	broken := Version{Requests: 100, ClientErrors: 100, Latency: Histogram{{Ms: 20, Count: 100}}}
	s := Spec{MinSamples: 50, Rules: []Rule{{Metric: ClientErrorRate, MaxVsBaseline: &margin}}}
	v := Judge(s, Observations{Baseline: base, Candidate: broken})
	if v.Outcome != Fail || !strings.Contains(v.Reason, "client error rate 100/100") {
		t.Errorf("a candidate answering only 400: %s (%s)", v.Outcome, v.Reason)
	}
	healthy := Version{Requests: 2000, ClientErrors: 3, Latency: Histogram{{Ms: 20, Count: 2000}}}
	if v := Judge(s, Observations{Baseline: base, Candidate: healthy}); v.Outcome != Pass {
		t.Errorf("a candidate with the baseline's 4xx rate: %s (%s)", v.Outcome, v.Reason)
	}
	ceiling := 0.02
	s = Spec{MinSamples: 50, Rules: []Rule{{Metric: ErrorRate, Max: &ceiling}}}
	if v := Judge(s, Observations{Baseline: base, Candidate: Version{Requests: 2000, ClientErrors: 2000, Latency: healthy.Latency}}); v.Outcome != Pass {
		t.Errorf("error_rate counted 4xx: %s (%s)", v.Outcome, v.Reason)
	}
	if err := (Spec{Rules: []Rule{{Metric: ClientErrorRate, MaxRatioVsBaseline: &margin}}}).Validate(); err == nil {
		t.Error("client_error_rate took maxRatioVsBaseline")
	}
}
