package analysis

import (
	"encoding/json"
	"math"
	"testing"
)

// histogramFrom reads bins from bytes: each pair is a value step and a
// count, so any input gives an increasing histogram.
func histogramFrom(b []byte, scale float64) Histogram {
	var h Histogram
	v := 0.0
	for i := 0; i+1 < len(b); i += 2 {
		v += float64(b[i])*scale + 0.001
		h = append(h, Bin{Ms: v, Count: uint64(b[i+1])})
	}
	return h
}

// FuzzJudge: whatever the observations, Judge answers without panicking,
// its verdict encodes as JSON (no NaN or infinity in the evidence), a
// Pass has minSamples on both versions, and a Fail names a failing check.
func FuzzJudge(f *testing.F) {
	f.Add(uint64(30), uint64(6), uint64(570), uint64(3), []byte{10, 5, 3, 20}, []byte{10, 50, 3, 200}, 1.25)
	f.Add(uint64(0), uint64(0), uint64(0), uint64(0), []byte{}, []byte{}, 1.0)
	f.Add(uint64(5000), uint64(0), uint64(5000), uint64(5000), []byte{0, 255}, []byte{0, 255, 0, 1}, 1000.0)
	f.Add(uint64(3), uint64(5), uint64(1), uint64(0), []byte{255, 255, 255, 255}, []byte{1, 0}, 3.5)
	f.Fuzz(func(t *testing.T, cr, ce, br, be uint64, cl, bl []byte, ratio float64) {
		if math.IsNaN(ratio) || ratio < 1 || ratio > maxLatencyRatio {
			ratio = 1.25
		}
		s := Spec{MinSamples: 50, Rules: []Rule{
			{Metric: ErrorRate, Max: f64(0.02), MaxVsBaseline: f64(0.005)},
			{Metric: LatencyP95Ms, Max: f64(300), MaxRatioVsBaseline: &ratio},
		}}
		obs := Observations{
			Candidate: Version{Requests: cr % 1e7, Errors: ce % 1e7, Latency: histogramFrom(cl, 7)},
			Baseline:  Version{Requests: br % 1e7, Errors: be % 1e7, Latency: histogramFrom(bl, 5)},
		}
		v := Judge(s, obs)
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("verdict does not encode: %v", err)
		}
		switch v.Outcome {
		case Pass:
			if obs.Candidate.Requests < 50 || obs.Baseline.Requests < 50 {
				t.Fatalf("Pass on %d and %d requests", obs.Candidate.Requests, obs.Baseline.Requests)
			}
		case Fail:
			failing := false
			for _, c := range v.Checks {
				failing = failing || c.Outcome == Fail
			}
			if !failing {
				t.Fatal("Fail without a failing check")
			}
		case Error:
			if obs.Candidate.Errors <= obs.Candidate.Requests && obs.Baseline.Errors <= obs.Baseline.Requests {
				t.Fatalf("Error on consistent observations: %s", v.Reason)
			}
		case Inconclusive:
		default:
			t.Fatalf("outcome %q", v.Outcome)
		}
		if v.Reason == "" {
			t.Fatal("no reason")
		}
	})
}
