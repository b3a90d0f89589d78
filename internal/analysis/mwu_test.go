package analysis

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bruteMannWhitney computes U, its tie-corrected variance and z from raw
// samples by counting pairs and ranking, the textbook way.
func bruteMannWhitney(c, b []float64, k float64) (u, variance, z float64) {
	for _, x := range c {
		for _, y := range b {
			switch {
			case x > k*y:
				u++
			case x == k*y:
				u += 0.5
			}
		}
	}
	all := slices.Clone(c)
	for _, y := range b {
		all = append(all, k*y)
	}
	slices.Sort(all)
	var ties float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j] == all[i] {
			j++
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	nc, nb := float64(len(c)), float64(len(b))
	n := nc + nb
	variance = nc * nb / 12 * ((n + 1) - ties/(n*(n-1)))
	d := u - nc*nb/2
	d = math.Copysign(math.Max(math.Abs(d)-0.5, 0), d)
	return u, variance, d / math.Sqrt(variance)
}

func TestMannWhitneyAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 200 {
		nc, nb := 1+r.IntN(40), 1+r.IntN(60)
		k := []float64{1, 1.25, 2}[trial%3]
		// Coarse values make ties, within and across the samples.
		draw := func(scale float64) float64 { return math.Round(scale*lognormalMs(r, 20, 0.4)) / 2 }
		c := make([]float64, nc)
		for i := range c {
			c[i] = draw(2.5)
		}
		b := make([]float64, nb)
		for i := range b {
			b[i] = draw(2)
		}
		u, variance, z := bruteMannWhitney(c, b, k)
		got := compareLatency(FromSamples(c), FromSamples(b), k)
		if math.Abs(got.theta-u/float64(nc*nb)) > 1e-12 {
			t.Fatalf("trial %d: theta %g, brute %g", trial, got.theta, u/float64(nc*nb))
		}
		if variance > 0 && math.Abs(got.z-z) > 1e-9 {
			t.Fatalf("trial %d: z %g, brute %g", trial, got.z, z)
		}
	}
}

func TestMannWhitneyTolerance(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	var c, b latencyCounts
	for range 400 {
		c.add(lognormalMs(r, 24, 0.3)) // 20 % slower
		b.add(lognormalMs(r, 20, 0.3))
	}
	strict := compareLatency(c.histogram(), b.histogram(), 1)
	tolerant := compareLatency(c.histogram(), b.histogram(), 1.25)
	if strict.theta <= 0.5 || strict.z < 5 {
		t.Errorf("20 %% slower without tolerance: theta %g z %g", strict.theta, strict.z)
	}
	if tolerant.theta >= 0.5 || tolerant.z > 0 {
		t.Errorf("20 %% slower within a 1.25 tolerance: theta %g z %g", tolerant.theta, tolerant.z)
	}
	if empty := compareLatency(nil, b.histogram(), 1); empty.logE != 0 || empty.z != 0 {
		t.Errorf("no candidate: %+v", empty)
	}
	tied := compareLatency(Histogram{{10, 5}}, Histogram{{10, 7}}, 1)
	if tied.z != 0 || tied.theta != 0.5 {
		t.Errorf("all tied: %+v", tied)
	}
}

func TestLogNormalMixture(t *testing.T) {
	// Increasing in z at any t; below 1 for z ≤ 0.
	for _, tt := range []float64{1, 10, 1000, 1e6} {
		prev := math.Inf(-1)
		for z := -40.0; z <= 12; z += 0.25 {
			l := logNormalMixture(z, tt)
			if math.IsNaN(l) || l < prev {
				t.Fatalf("t=%g z=%g: log E %g after %g", tt, z, l, prev)
			}
			if z <= 0 && l > 0 {
				t.Fatalf("t=%g z=%g: log E %g > 0", tt, z, l)
			}
			prev = l
		}
	}
	// The asymptotic lower tail joins log(Φ) where both are accurate.
	for _, x := range []float64{-29.9, -30, -30.1} {
		direct := math.Log(0.5 * math.Erfc(-x/math.Sqrt2))
		if math.Abs(logNormalCDF(x)-direct) > 1e-3*math.Abs(direct) {
			t.Errorf("log Φ(%g) = %g, direct %g", x, logNormalCDF(x), direct)
		}
	}
	if !math.IsInf(logNormalMixture(3, 0), -1) {
		t.Error("no samples: evidence")
	}
}
