package analysis

import (
	"math"
	"sort"
)

// Confidence sequences for a Bernoulli rate (see the package doc).
//
// After n trials with k successes, the uniform-prior mixture of
// likelihood ratios against a rate m is
//
//	E(m) = ∫₀¹ θᵏ(1−θ)ⁿ⁻ᵏ dθ / (mᵏ(1−m)ⁿ⁻ᵏ) = B(k+1, n−k+1) / (mᵏ(1−m)ⁿ⁻ᵏ).
//
// Under rate m it is a non-negative martingale starting at 1, so by
// Ville's inequality it ever reaches 1/α with probability at most α, at
// whatever times it is looked at. {m : E(m) < 1/α} is therefore a
// confidence sequence: it holds the true rate at every n at once with
// probability at least 1 − α. log E is convex in m with its minimum (at
// most 0) at k/n, so the set is an interval around k/n.

// logMixture is log E(m) for k successes in n trials.
func logMixture(k, n uint64, m float64) float64 {
	return logBetaInt(k, n) - logLikelihood(k, n, m)
}

// logBetaInt is log B(k+1, n−k+1) = −log((n+1)·C(n, k)).
func logBetaInt(k, n uint64) float64 {
	a, _ := math.Lgamma(float64(k) + 1)
	b, _ := math.Lgamma(float64(n-k) + 1)
	c, _ := math.Lgamma(float64(n) + 2)
	return a + b - c
}

// logLikelihood is log(mᵏ(1−m)ⁿ⁻ᵏ), −Inf where it is zero.
func logLikelihood(k, n uint64, m float64) float64 {
	l := 0.0
	if k > 0 {
		l += float64(k) * math.Log(m)
	}
	if n > k {
		l += float64(n-k) * math.Log1p(-m)
	}
	return l
}

// rateAbove reports whether the rate is shown to be above m: m lies
// outside the level-α confidence sequence, below k/n. It is the
// one-sided test the judge fails a candidate by.
func rateAbove(k, n uint64, m, alpha float64) bool {
	if n == 0 || float64(k) <= m*float64(n) {
		return false
	}
	thr := math.Log(1 / alpha)
	// The mixture never exceeds the maximum likelihood ratio, n times
	// the Kullback-Leibler divergence of k/n from m: a cheaper test
	// that settles most looks at a healthy candidate.
	if logLikelihood(k, n, float64(k)/float64(n))-logLikelihood(k, n, m) < thr {
		return false
	}
	return logMixture(k, n, m) >= thr
}

// rateBounds is the level-α confidence sequence at (k, n): the interval
// of rates m with E(m) < 1/α. With no trials it is [0, 1].
func rateBounds(k, n uint64, alpha float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	p := float64(k) / float64(n)
	lb := logBetaInt(k, n)
	thr := math.Log(1 / alpha)
	// f(m) = log E(m) − thr is convex, negative at p; find where it
	// crosses zero on each side by bisection.
	f := func(m float64) float64 { return lb - logLikelihood(k, n, m) - thr }
	lo, hi = 0, 1
	if k > 0 && f(0) >= 0 {
		lo = bisect(f, 0, p)
	}
	if k < n && f(1) >= 0 {
		hi = bisect(f, 1, p)
	}
	return lo, hi
}

// bisect finds the zero of f between out (f ≥ 0) and in (f < 0), to
// within 1e-12 of the interval, returning the point on the in side, so
// the bound it gives is never tighter than the exact one.
func bisect(f func(float64) float64, out, in float64) float64 {
	for range 64 {
		mid := (out + in) / 2
		if mid == out || mid == in || math.Abs(in-out) < 1e-12 {
			break
		}
		if f(mid) >= 0 {
			out = mid
		} else {
			in = mid
		}
	}
	return in
}

// countBounds is the confidence sequence for the number of successes in
// n trials of a known rate q: the counts c with E(q) < 1/α at (c, n). It
// gives quantile bounds: of n latencies, the number at or below the true
// q-quantile lies in [lo, hi] at every n at once with probability at
// least 1 − α.
func countBounds(n uint64, q, alpha float64) (lo, hi uint64) {
	thr := math.Log(1 / alpha)
	// g(c) = log E(q) at (c, n) − thr is convex in c, minimal near q·n.
	g := func(c uint64) float64 { return logMixture(c, n, q) - thr }
	mid := uint64(math.Round(q * float64(n)))
	mid = min(mid, n)
	// log E is at most about 0 next to q·n, far below thr for the levels
	// a Spec allows; should it not be, claim nothing (the widest bounds).
	if g(mid) >= 0 {
		return 0, n
	}
	lo = searchCount(g, 0, mid)
	hi = searchCountDown(g, n, mid)
	return lo, hi
}

// searchCount returns the smallest c in [a, b] with g(c) < 0, given
// g(b) < 0 and g falling on [a, b].
func searchCount(g func(uint64) float64, a, b uint64) uint64 {
	return a + uint64(sort.Search(int(b-a), func(i int) bool { return g(a+uint64(i)) < 0 }))
}

// searchCountDown returns the largest c in [b, a] with g(c) < 0, given
// g(b) < 0 and g rising on [b, a].
func searchCountDown(g func(uint64) float64, a, b uint64) uint64 {
	return b + uint64(sort.Search(int(a-b), func(i int) bool { return g(b+1+uint64(i)) >= 0 }))
}
