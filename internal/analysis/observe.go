package analysis

import (
	"fmt"
	"math"
	"slices"
)

// Observations are what the judge sees: each version's traffic since the
// analysis started, and the value of every Prometheus rule's query.
type Observations struct {
	Baseline  Version `json:"baseline"`
	Candidate Version `json:"candidate"`
	// Prometheus holds one result per query (PrometheusRule.Query), as
	// QueryPrometheus gathers them.
	Prometheus map[string]PromResult `json:"prometheus,omitempty"`
	// Comparison is how the candidate's mirrored answers compared with
	// the primary's answers to the same requests; nil when the candidate
	// is not mirrored, and then disagreement_rate rules are not judged.
	Comparison *Comparison `json:"comparison,omitempty"`
}

// Comparison counts mirrored answers compared with the primary's:
// Compared could be compared, Disagreed of them differed (a label
// differed, a score beyond the gateway's tolerance). Answers that could
// not be compared (errors, unknown shapes) count in neither.
type Comparison struct {
	Compared  uint64 `json:"compared"`
	Disagreed uint64 `json:"disagreed"`
}

// Version is one version's traffic, cumulative since the analysis
// started: every answered request counts once.
type Version struct {
	Requests uint64 `json:"requests"`
	// Errors are the requests that failed (5xx or no answer), as
	// metrics.IsError counts them; never more than Requests.
	Errors uint64 `json:"errors"`
	// ClientErrors are the requests answered 4xx (client_error_rate);
	// never more than Requests.
	ClientErrors uint64 `json:"client_errors,omitempty"`
	// Latency is the distribution of the requests' latencies. It need not
	// hold every request (a sample is fine) but must not be biased
	// towards fast or slow ones.
	Latency Histogram `json:"latency,omitempty"`
}

// Histogram is a latency distribution as counts at values, in increasing
// order of value. Raw samples are bins of count one (FromSamples); a
// bucketed histogram gives each bucket at its representative value (the
// gateway's log buckets at their geometric midpoints, so values are
// within 9 % of the latencies they stand for). Two histograms compared
// with each other should use the same bucket layout.
type Histogram []Bin

// Bin is Count latencies of Ms milliseconds.
type Bin struct {
	Ms    float64 `json:"ms"`
	Count uint64  `json:"count"`
}

// FromSamples builds a histogram of raw latencies in milliseconds;
// equal values share a bin. The input is not modified.
func FromSamples(ms []float64) Histogram {
	s := slices.Clone(ms)
	slices.Sort(s)
	var h Histogram
	for _, v := range s {
		if n := len(h); n > 0 && h[n-1].Ms == v {
			h[n-1].Count++
			continue
		}
		h = append(h, Bin{Ms: v, Count: 1})
	}
	return h
}

// Total is the number of latencies in h.
func (h Histogram) Total() uint64 {
	var n uint64
	for _, b := range h {
		n += b.Count
	}
	return n
}

// check reports why h cannot be judged: values out of order, repeated,
// negative or not finite.
func (h Histogram) check() error {
	for i, b := range h {
		if math.IsNaN(b.Ms) || math.IsInf(b.Ms, 0) || b.Ms < 0 {
			return fmt.Errorf("latency bin %d has value %g ms; values are finite and not negative", i, b.Ms)
		}
		if i > 0 && h[i-1].Ms >= b.Ms {
			return fmt.Errorf("latency bins %d and %d are not in increasing order of value (%g, %g ms)", i-1, i, h[i-1].Ms, b.Ms)
		}
	}
	return nil
}

// Since is the traffic between start and v, two readings of the same
// cumulative counters (start taken when the analysis began), so a
// controller can judge counters that began before the analysis. Every bin
// of start must be in v with at least its count.
func (v Version) Since(start Version) (Version, error) {
	if start.Requests > v.Requests || start.Errors > v.Errors || start.ClientErrors > v.ClientErrors {
		return Version{}, fmt.Errorf("counters went backwards: %d requests, %d errors and %d client errors at the start, %d, %d and %d now",
			start.Requests, start.Errors, start.ClientErrors, v.Requests, v.Errors, v.ClientErrors)
	}
	out := Version{Requests: v.Requests - start.Requests, Errors: v.Errors - start.Errors, ClientErrors: v.ClientErrors - start.ClientErrors}
	j := 0
	for _, b := range v.Latency {
		n := b.Count
		if j < len(start.Latency) && start.Latency[j].Ms < b.Ms {
			return Version{}, fmt.Errorf("latency bin at %g ms of the start reading is missing now", start.Latency[j].Ms)
		}
		if j < len(start.Latency) && start.Latency[j].Ms == b.Ms {
			if start.Latency[j].Count > n {
				return Version{}, fmt.Errorf("latency bin at %g ms went backwards: %d at the start, %d now", b.Ms, start.Latency[j].Count, n)
			}
			n -= start.Latency[j].Count
			j++
		}
		if n > 0 {
			out.Latency = append(out.Latency, Bin{Ms: b.Ms, Count: n})
		}
	}
	if j < len(start.Latency) {
		return Version{}, fmt.Errorf("latency bin at %g ms of the start reading is missing now", start.Latency[j].Ms)
	}
	return out, nil
}

// check reports why v cannot be judged.
func (v Version) check() error {
	if v.Errors > v.Requests {
		return fmt.Errorf("%d errors out of %d requests", v.Errors, v.Requests)
	}
	if v.ClientErrors > v.Requests {
		return fmt.Errorf("%d client errors out of %d requests", v.ClientErrors, v.Requests)
	}
	return v.Latency.check()
}

// quantile returns the nearest-rank q-quantile of h (the value of the
// ⌈q·n⌉-th smallest latency), and false when h is empty.
func (h Histogram) quantile(q float64) (float64, bool) {
	n := h.Total()
	if n == 0 {
		return 0, false
	}
	rank := max(uint64(math.Ceil(q*float64(n))), 1)
	return h.orderStat(rank), true
}

// orderStat returns the value of the r-th smallest latency, 1 ≤ r ≤ n.
func (h Histogram) orderStat(r uint64) float64 {
	var cum uint64
	for _, b := range h {
		cum += b.Count
		if cum >= r {
			return b.Ms
		}
	}
	return h[len(h)-1].Ms
}

// countAbove is the number of latencies strictly above ms.
func (h Histogram) countAbove(ms float64) uint64 {
	i, _ := slices.BinarySearchFunc(h, ms, func(b Bin, t float64) int {
		if b.Ms <= t {
			return -1
		}
		return 1
	})
	var n uint64
	for _, b := range h[i:] {
		n += b.Count
	}
	return n
}
