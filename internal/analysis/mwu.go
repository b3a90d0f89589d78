package analysis

import "math"

// mixtureRho is ρ of the normal mixture the Mann-Whitney boundary uses:
// the prior on the standardised drift per effective sample has variance
// 1/ρ, so the boundary is tightest for drifts near 1/√ρ = 0.5, that is
// P(candidate > tolerated baseline) near 0.64.
const mixtureRho = 4.0

// mannWhitney is the comparison of two latency distributions.
type mannWhitney struct {
	nc, nb float64
	// theta is the estimate of P(C > k·B) + ½·P(C = k·B): above ½ the
	// candidate is slower than the tolerated baseline.
	theta float64
	// z is the standardised U statistic (tie-corrected variance,
	// continuity correction): large when the candidate is slower.
	z float64
	// logE is the log of the one-sided normal-mixture e-value of z.
	logE float64
}

// compareLatency runs a one-sided Mann-Whitney U test of the candidate
// against the baseline scaled by k: each baseline latency b counts as
// k·b, so the candidate fails only when it is slower than k times the
// baseline, not merely slower (Kayenta's effect-size tolerance). It runs
// in one merge of the two sorted histograms.
func compareLatency(cand, base Histogram, k float64) mannWhitney {
	var r mannWhitney
	var u, below, ties float64
	i, j := 0, 0
	for i < len(cand) || j < len(base) {
		var v float64
		switch {
		case j >= len(base):
			v = cand[i].Ms
		case i >= len(cand):
			v = k * base[j].Ms
		default:
			v = math.Min(cand[i].Ms, k*base[j].Ms)
		}
		var a, b float64
		for i < len(cand) && cand[i].Ms == v {
			a += float64(cand[i].Count)
			i++
		}
		for j < len(base) && k*base[j].Ms == v {
			b += float64(base[j].Count)
			j++
		}
		u += a * (below + b/2)
		below += b
		r.nc += a
		t := a + b
		ties += t*t*t - t
	}
	r.nb = below
	if r.nc == 0 || r.nb == 0 {
		return r
	}
	n := r.nc + r.nb
	pairs := r.nc * r.nb
	r.theta = u / pairs
	variance := pairs / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance <= 0 {
		return r // every latency tied: no evidence either way
	}
	d := u - pairs/2
	// Continuity correction towards zero.
	d = math.Copysign(math.Max(math.Abs(d)-0.5, 0), d)
	r.z = d / math.Sqrt(variance)
	r.logE = logNormalMixture(r.z, pairs/n)
	return r
}

// logNormalMixture is the log of the one-sided normal-mixture e-value of
// a standardised statistic z after t effective samples (n_c·n_b/(n_c+n_b)
// for two samples): with S = z·√t approximately a Brownian motion in t
// under the null, mixing exp(λS − λ²t/2) over λ ≥ 0 with a half-normal
// prior of variance 1/ρ gives
//
//	E = 2·√(ρ/(ρ+t))·exp(S²/(2(ρ+t)))·Φ(S/√(ρ+t)),
//
// a (super)martingale under any drift ≤ 0, so it reaches 1/α with
// probability at most α however often it is computed (Robbins; Johari,
// Pekelis and Walsh's mSPRT).
func logNormalMixture(z, t float64) float64 {
	if t <= 0 {
		return math.Inf(-1)
	}
	s := z * math.Sqrt(t)
	v := mixtureRho + t
	return math.Ln2 + 0.5*math.Log(mixtureRho/v) + s*s/(2*v) + logNormalCDF(s/math.Sqrt(v))
}

// logNormalCDF is log Φ(x), accurate in the lower tail.
func logNormalCDF(x float64) float64 {
	if x > -30 {
		return math.Log(0.5 * math.Erfc(-x/math.Sqrt2))
	}
	// Φ(x) ≈ φ(x)/|x| (1 − 1/x²) far in the lower tail.
	return -x*x/2 - math.Log(-x) - 0.5*math.Log(2*math.Pi) + math.Log1p(-1/(x*x))
}

// normalSurvival is 1 − Φ(z), the fixed-horizon one-sided p-value of z.
func normalSurvival(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }
