package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRateBoundsAreTheLevelSet checks the bounds against their definition:
// E(m) < 1/α just inside them and ≥ 1/α just outside.
func TestRateBoundsAreTheLevelSet(t *testing.T) {
	thr := math.Log(1 / 0.005)
	for _, c := range [][2]uint64{{0, 1}, {1, 1}, {1, 3}, {0, 200}, {3, 200}, {6, 30}, {200, 200}, {500, 100000}, {50, 100}} {
		k, n := c[0], c[1]
		lo, hi := rateBounds(k, n, 0.005)
		p := float64(k) / float64(n)
		if lo > p || hi < p || lo < 0 || hi > 1 {
			t.Errorf("%d/%d: [%g, %g] does not hold %g", k, n, lo, hi, p)
		}
		if lo > 0 {
			if logMixture(k, n, lo) >= thr || logMixture(k, n, lo*(1-1e-6)) < thr {
				t.Errorf("%d/%d: lower bound %g is not where E crosses 1/α", k, n, lo)
			}
		} else if k > 0 {
			t.Errorf("%d/%d: lower bound 0 with errors seen", k, n)
		}
		if hi < 1 {
			if logMixture(k, n, hi) >= thr || logMixture(k, n, math.Min(1, hi*(1+1e-6))) < thr {
				t.Errorf("%d/%d: upper bound %g is not where E crosses 1/α", k, n, hi)
			}
		} else if k < n {
			t.Errorf("%d/%d: upper bound 1 with successes seen", k, n)
		}
	}
	if lo, hi := rateBounds(0, 0, 0.01); lo != 0 || hi != 1 {
		t.Errorf("no data: [%g, %g]", lo, hi)
	}
}

// TestRateAboveAgreesWithBounds: the test fails m exactly when m is
// below the confidence sequence.
func TestRateAboveAgreesWithBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		n := uint64(r.IntN(3000)) + 1
		k := uint64(r.IntN(int(n) + 1))
		m := r.Float64() * 0.5
		lo, _ := rateBounds(k, n, 0.01)
		above := rateAbove(k, n, m, 0.01)
		// Bisection leaves the bound within 1e-12 of the crossing.
		if math.Abs(m-lo) < 1e-9 {
			continue
		}
		if above != (m < lo) {
			t.Fatalf("%d/%d m=%g: rateAbove %v, lower bound %g", k, n, m, above, lo)
		}
	}
}

// TestRateBoundsMonotone: more errors in the same requests never lower
// either bound.
func TestRateBoundsMonotone(t *testing.T) {
	for _, n := range []uint64{1, 7, 60, 1000} {
		plo, phi := -1.0, -1.0
		for k := uint64(0); k <= n; k++ {
			lo, hi := rateBounds(k, n, 0.01)
			if lo < plo || hi < phi {
				t.Fatalf("n=%d k=%d: [%g, %g] after [%g, %g]", n, k, lo, hi, plo, phi)
			}
			plo, phi = lo, hi
		}
	}
}

// TestCountBoundsAgainstScan compares the searched count interval with
// a scan of every count.
func TestCountBoundsAgainstScan(t *testing.T) {
	thr := math.Log(1 / 0.004)
	for _, n := range []uint64{1, 2, 5, 10, 99, 100, 101, 250, 1000, 4000} {
		for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
			lo, hi := countBounds(n, q, 0.004)
			wlo, whi := n+1, uint64(0)
			for c := uint64(0); c <= n; c++ {
				if logMixture(c, n, q) < thr {
					wlo, whi = min(wlo, c), max(whi, c)
				}
			}
			if lo != wlo || hi != whi {
				t.Errorf("n=%d q=%g: [%d, %d], scan [%d, %d]", n, q, lo, hi, wlo, whi)
			}
		}
	}
}

// TestQuantileBoundsCover: over many simulated sequences looked at after
// every sample, the p99 bounds exclude the true p99 at some look in
// fewer than α of them.
func TestQuantileBoundsCover(t *testing.T) {
	const (
		runs  = 200
		n     = 2000
		alpha = 0.05
		q     = 0.99
	)
	truth := 20 * math.Exp(0.5*2.3263478740408408) // p99 of the lognormal
	r := rand.New(rand.NewPCG(11, 12))
	missed := 0
	for range runs {
		var xs []float64
		var below uint64
		for i := 1; i <= n; i++ {
			x := lognormalMs(r, 20, 0.5)
			xs = append(xs, x)
			if x <= truth {
				below++
			}
			// The bounds miss exactly when the count at or below the
			// truth leaves the count interval.
			lo, hi := countBounds(uint64(i), q, alpha)
			if below < lo || below > hi {
				missed++
				break
			}
		}
		lo, hi := quantileBounds(FromSamples(xs), q, alpha)
		if lo > hi {
			t.Fatalf("bounds [%g, %g]", lo, hi)
		}
	}
	if float64(missed)/runs >= alpha {
		t.Errorf("p99 bounds missed the truth in %d of %d runs; level %g", missed, runs, alpha)
	}
	t.Logf("p99 bounds missed in %d of %d runs (level %g)", missed, runs, alpha)
}
