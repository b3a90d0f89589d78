package metrics

import (
	"math"
	"time"
)

// The in-process windows are a ring of per-second buckets. Each bucket
// holds the counts of one wall-clock second and a small latency histogram
// with log-spaced buckets, so recording is a handful of increments and a
// read merges at most ringSeconds buckets.
//
// Latency histogram: bucket 0 holds latencies below latMin (50 µs); buckets
// 1..latLogBuckets split [latMin, latMax) into ranges that each grow by a
// factor of 2^(1/latPerOctave); the last bucket holds latMax (≈31 s) and
// above. A percentile is reported as the geometric midpoint of the bucket
// holding the nearest-rank sample, so for latencies in [50 µs, 31 s) it is
// within a factor 2^(1/8) of that sample: at most 9.05 % relative error.
// Below 50 µs the percentile reads 0.05 ms; at or above latMax it reads
// latMax.
const (
	// ringSeconds is the longest window (5 min) in seconds.
	ringSeconds = 300

	latMin        = 50 * time.Microsecond
	latPerOctave  = 4
	latLogBuckets = 77 // ceil(4 * log2(30 s / 50 µs)), so latMax ≥ 30 s
	latBuckets    = latLogBuckets + 2
)

// MaxPercentileError is the largest relative error of a reported
// percentile for latencies between 50 µs and 31 s: half a bucket width on
// a log scale, 2^(1/8) − 1.
var MaxPercentileError = math.Pow(2, 1.0/(2*latPerOctave)) - 1

// latBounds[j] is latMin·2^(j/latPerOctave) in nanoseconds, j = 0..latLogBuckets:
// the lower bound of histogram bucket j+1.
var latBounds = func() (b [latLogBuckets + 1]int64) {
	for j := range b {
		b[j] = int64(math.Round(float64(latMin) * math.Pow(2, float64(j)/latPerOctave)))
	}
	return b
}()

// octaveSteps are 2^(k/latPerOctave) for k = 1..latPerOctave-1: where the
// sub-buckets of one octave start.
var octaveSteps = func() (s [latPerOctave - 1]float64) {
	for k := range s {
		s[k] = math.Pow(2, float64(k+1)/latPerOctave)
	}
	return s
}()

// latMax is the lower bound of the overflow bucket (≈31.1 s).
var latMax = time.Duration(latBounds[latLogBuckets])

// latIndex returns the histogram bucket of a latency in O(1): a base-2
// logarithm read off the float gives the bucket, and a comparison each way
// corrects rounding.
func latIndex(d time.Duration) int {
	ns := int64(d)
	if ns < latBounds[0] {
		return 0
	}
	if ns >= latBounds[latLogBuckets] {
		return latBuckets - 1
	}
	// floor(latPerOctave·log2(x)) from the float's exponent and mantissa,
	// cheaper than math.Log2 on the hot path.
	x := float64(ns) / float64(latBounds[0])
	bits := math.Float64bits(x)
	j := (int(bits>>52&0x7ff) - 1023) * latPerOctave
	m := math.Float64frombits(bits&(1<<52-1) | 1023<<52) // mantissa in [1, 2)
	for _, step := range octaveSteps {
		if m >= step {
			j++
		}
	}
	j = min(max(j, 0), latLogBuckets-1)
	// Bucket j+1 covers [latBounds[j], latBounds[j+1]).
	for j > 0 && ns < latBounds[j] {
		j--
	}
	for j < latLogBuckets-1 && ns >= latBounds[j+1] {
		j++
	}
	return j + 1
}

// latValue is the value a percentile landing in bucket i reports.
func latValue(i int) time.Duration {
	switch {
	case i <= 0:
		return latMin
	case i >= latBuckets-1:
		return latMax
	default:
		return time.Duration(math.Sqrt(float64(latBounds[i-1]) * float64(latBounds[i])))
	}
}

// second is one wall-clock second of one version.
type second struct {
	// sec is the Unix second the counts belong to; a bucket whose sec is
	// not the current one is stale and reset before reuse.
	sec              int64
	count, errors    uint32
	promptTokens     uint64
	completionTokens uint64
	cost             float64
	lat              [latBuckets]uint32
}

// ring is the last ringSeconds seconds of one version. Not safe for
// concurrent use; the series mutex guards it.
type ring struct {
	buckets [ringSeconds]second
}

// at returns the bucket of Unix second sec, reset when it held an older
// second.
func (r *ring) at(sec int64) *second {
	b := &r.buckets[((sec%ringSeconds)+ringSeconds)%ringSeconds]
	if b.sec != sec {
		*b = second{sec: sec}
	}
	return b
}

// windowSpec names a window and its length.
type windowSpec struct {
	name    string
	seconds int64
}

// windowSpecs are the windows every snapshot reports, shortest first.
var windowSpecs = [...]windowSpec{{"10s", 10}, {"1m", 60}, {"5m", 300}}

// Window is the traffic of one version over the last Seconds seconds.
// Windows are aligned to whole seconds: a 10 s window holds the current,
// partial second and the nine before it. Percentiles are zero when Count
// is zero; callers must treat that as "no data", not as fast.
type Window struct {
	Window  string `json:"window"`
	Seconds int    `json:"seconds"`
	Count   uint64 `json:"count"`
	// Errors counts 5xx answers and transport failures; 4xx answers are
	// the client's fault and do not count.
	Errors     uint64  `json:"errors"`
	ErrorRatio float64 `json:"error_ratio"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	// Token usage and its cost, from OpenAI-compatible responses.
	PromptTokens     uint64  `json:"prompt_tokens"`
	CompletionTokens uint64  `json:"completion_tokens"`
	Cost             float64 `json:"cost"`
}

// accum merges seconds into one window.
type accum struct {
	count, errors    uint64
	prompt, complete uint64
	cost             float64
	lat              [latBuckets]uint64
}

func (a *accum) add(b *second) {
	a.count += uint64(b.count)
	a.errors += uint64(b.errors)
	a.prompt += b.promptTokens
	a.complete += b.completionTokens
	a.cost += b.cost
	for i, n := range b.lat {
		a.lat[i] += uint64(n)
	}
}

// percentile returns the nearest-rank p-quantile (0 < p ≤ 1) as the
// representative value of its histogram bucket.
func (a *accum) percentile(p float64) time.Duration {
	if a.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p * float64(a.count)))
	rank = max(rank, 1)
	var cum uint64
	for i, n := range a.lat {
		cum += n
		if cum >= rank {
			return latValue(i)
		}
	}
	return latMax
}

func (a *accum) window(spec windowSpec) Window {
	w := Window{
		Window: spec.name, Seconds: int(spec.seconds),
		Count: a.count, Errors: a.errors,
		PromptTokens: a.prompt, CompletionTokens: a.complete, Cost: a.cost,
	}
	if a.count > 0 {
		w.ErrorRatio = float64(a.errors) / float64(a.count)
		w.P50Ms = ms(a.percentile(0.50))
		w.P90Ms = ms(a.percentile(0.90))
		w.P99Ms = ms(a.percentile(0.99))
	}
	return w
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// windows merges the ring into every window at Unix second now.
func (r *ring) windows(now int64) []Window {
	var acc [len(windowSpecs)]accum
	for i := range r.buckets {
		b := &r.buckets[i]
		age := now - b.sec
		if b.count == 0 && b.promptTokens == 0 && b.completionTokens == 0 {
			continue
		}
		for k, spec := range windowSpecs {
			if age >= 0 && age < spec.seconds {
				acc[k].add(b)
			}
		}
	}
	out := make([]Window, len(windowSpecs))
	for k, spec := range windowSpecs {
		out[k] = acc[k].window(spec)
	}
	return out
}
