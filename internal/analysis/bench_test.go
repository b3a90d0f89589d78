package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
)

// benchObservations is a typical analysis a few minutes into a canary:
// tens of thousands of baseline requests, a few thousand candidate ones,
// latency histograms in the gateway's bucket layout.
func benchObservations() Observations {
	r := rand.New(rand.NewPCG(7, 7))
	var c, b latencyCounts
	var obs Observations
	for range 3000 {
		obs.Candidate.Requests++
		if r.Float64() < 0.012 {
			obs.Candidate.Errors++
		}
		c.add(lognormalMs(r, 20, 0.5))
	}
	for range 57000 {
		obs.Baseline.Requests++
		if r.Float64() < 0.01 {
			obs.Baseline.Errors++
		}
		b.add(lognormalMs(r, 20, 0.5))
	}
	obs.Candidate.Latency, obs.Baseline.Latency = c.histogram(), b.histogram()
	return obs
}

func typicalSpec() Spec {
	return Spec{MinSamples: 200, FalseRollbackRate: 0.01, Rules: []Rule{
		{Metric: ErrorRate, Max: f64(0.02), MaxVsBaseline: f64(0.005)},
		{Metric: LatencyP99Ms, Max: f64(500), MaxRatioVsBaseline: f64(1.25)},
	}}
}

func BenchmarkJudge(b *testing.B) {
	spec, obs := typicalSpec(), benchObservations()
	b.ReportAllocs()
	for b.Loop() {
		if v := Judge(spec, obs); v.Outcome == Error {
			b.Fatal(v.Reason)
		}
	}
}

func BenchmarkJudgeRawSamples(b *testing.B) {
	r := rand.New(rand.NewPCG(8, 8))
	spec := typicalSpec()
	var obs Observations
	c := make([]float64, 2000)
	for i := range c {
		c[i] = lognormalMs(r, 20, 0.5)
	}
	bl := make([]float64, 20000)
	for i := range bl {
		bl[i] = lognormalMs(r, 20, 0.5)
	}
	obs.Candidate = Version{Requests: 2000, Errors: 20, Latency: FromSamples(c)}
	obs.Baseline = Version{Requests: 20000, Errors: 200, Latency: FromSamples(bl)}
	b.ReportAllocs()
	for b.Loop() {
		Judge(spec, obs)
	}
}

func BenchmarkRateBounds(b *testing.B) {
	for b.Loop() {
		rateBounds(37, 3000, 0.0025)
	}
}

var sinkLog float64

func BenchmarkLogMixture(b *testing.B) {
	for b.Loop() {
		sinkLog += logMixture(37, 3000, 0.02)
	}
	_ = math.Abs(sinkLog)
}
