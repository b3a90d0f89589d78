package analysis

import (
	"math"
	"math/rand/v2"
)

func f64(x float64) *float64 { return &x }

// The gateway's latency layout (internal/metrics): four log buckets per
// octave from 0.05 ms, each reported at its geometric midpoint.
const (
	gwMinMs     = 0.05
	gwPerOctave = 4
	gwBuckets   = 80
)

// gatewayBin is the representative value of the bucket holding ms.
func gatewayBin(ms float64) int {
	if ms < gwMinMs {
		return 0
	}
	j := int(math.Floor(gwPerOctave*math.Log2(ms/gwMinMs))) + 1
	return min(j, gwBuckets-1)
}

func gatewayValue(i int) float64 {
	if i == 0 {
		return gwMinMs
	}
	return gwMinMs * math.Pow(2, (float64(i-1)+0.5)/gwPerOctave)
}

// latencyCounts accumulates latencies in the gateway's layout.
type latencyCounts [gwBuckets]uint64

func (c *latencyCounts) add(ms float64) { c[gatewayBin(ms)]++ }

func (c *latencyCounts) histogram() Histogram {
	var h Histogram
	for i, n := range c {
		if n > 0 {
			h = append(h, Bin{Ms: gatewayValue(i), Count: n})
		}
	}
	return h
}

// lognormalMs draws a latency with the given median and log-scale sigma.
func lognormalMs(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}
