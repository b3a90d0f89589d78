package analysis_test

import (
	"fmt"

	"github.com/slipway-ml/slipway/internal/analysis"
)

func ptr(x float64) *float64 { return &x }

// The issue's analysis block judging a canary that failed 6 of its first
// 30 requests beside a baseline at 0.5 %: the ceiling already fails it,
// though the comparison with the baseline is not yet conclusive.
func ExampleJudge() {
	spec := analysis.Spec{
		MinSamples:        200,
		FalseRollbackRate: 0.01,
		Rules: []analysis.Rule{
			{Metric: analysis.ErrorRate, Max: ptr(0.02), MaxVsBaseline: ptr(0.005)},
			{Metric: analysis.LatencyP99Ms, MaxRatioVsBaseline: ptr(1.25)},
		},
	}
	lat := func(n uint64) analysis.Histogram {
		return analysis.Histogram{{Ms: 18, Count: n / 2}, {Ms: 22, Count: n - n/2}}
	}
	v := analysis.Judge(spec, analysis.Observations{
		Candidate: analysis.Version{Requests: 30, Errors: 6, Latency: lat(30)},
		Baseline:  analysis.Version{Requests: 570, Errors: 3, Latency: lat(570)},
	})
	fmt.Println(v.Outcome)
	for _, c := range v.Checks {
		fmt.Printf("%s %s (%s): %s\n", c.Metric, c.Kind, c.Method, c.Outcome)
	}
	fmt.Println(v.Checks[0].Reason)
	// Output:
	// Fail
	// error_rate max (rate-confidence-sequence): Fail
	// error_rate maxVsBaseline (rate-confidence-sequence): Inconclusive
	// latency_p99_ms maxRatioVsBaseline (mann-whitney): Pass
	// latency_p99_ms maxRatioVsBaseline (quantile-confidence-sequence): Inconclusive
	// candidate error rate 6/30 = 20 % is above the 2 % ceiling (at least 2.51 % at confidence 99.75 %)
}
