// Package analysis is the judge of a rollout: pure functions from what
// the gateway saw of a baseline and a candidate version (requests,
// errors, latency histograms since the analysis began) and the values of
// Prometheus queries to an Outcome — Pass, Fail, Inconclusive or Error —
// with the evidence behind it. It owns the Spec of a Rollout's analysis
// block and the Provider interface Prometheus queries go through
// (implemented in analysis/promprov). It must not import net/http,
// database/sql, os/exec or any impure slipway package; it reads no clock
// and keeps no state, so the controller can call Judge after every batch
// of requests.
//
// # Looking after every request without false alarms
//
// A fixed-sample test checked again and again will sooner or later cross
// its threshold by chance. Every statistical check here is instead
// anytime-valid: its false-alarm probability over the whole, unbounded
// sequence of looks is at most its level α. All rest on Ville's
// inequality: a non-negative (super)martingale M with M₀ = 1 ever
// reaches 1/α with probability at most α.
//
// The checks share the rollout's falseRollbackRate by Bonferroni: each
// threshold gets falseRollbackRate/K, K the number of statistical checks
// (a latency ratio counts twice, see below). Prometheus thresholds are
// plain comparisons outside that budget.
//
// # Error rates: confidence sequences
//
// For k errors in n requests, the uniform mixture of Bernoulli likelihood
// ratios against a rate m,
//
//	E(m) = ∫₀¹ θᵏ(1−θ)ⁿ⁻ᵏ dθ / (mᵏ(1−m)ⁿ⁻ᵏ) = B(k+1, n−k+1) / (mᵏ(1−m)ⁿ⁻ᵏ),
//
// is a martingale under rate m (Robbins 1970; Lai 1976). {m : E(m) < 1/α}
// is then a confidence sequence: an interval that holds the true rate at
// every n at once with probability ≥ 1 − α, exact for any n (no normal
// approximation, so it is right with zero errors and three requests,
// where a plug-in variance would be zero).
//
//   - max: Fail when the whole interval lies above max (E(max) ≥ 1/α with
//     k/n > max). One error in the first three requests against max 0.02
//     gives E ≈ 4, far from 1/α; 30 % errors fail in about a dozen
//     requests (docs/analysis.md has the simulated figures).
//   - maxVsBaseline d: one confidence sequence per version at α/2 each;
//     Fail when the candidate's lower bound exceeds the baseline's upper
//     bound plus d. If both hold (probability ≥ 1 − α) and the candidate
//     is at most d worse, that cannot happen. The test needs only the
//     two versions' cumulative counts, at any look times, whatever the
//     traffic split and however it changes between steps.
//
// Two simpler candidates were set aside: the mSPRT with a normal mixture
// (Johari, Pekelis and Walsh, "Always valid inference", 2017/2022) on the
// difference of proportions needs the CLT and a variance estimate, which
// fail exactly where rollouts start (few requests, rare errors); a
// Bayesian beta-binomial posterior probability carries no frequentist
// bound on false rollbacks under continuous monitoring.
//
// # Latency quantiles: confidence sequences for order statistics
//
// Of n latencies, the count at or below the true q-quantile is
// Binomial(n, q) (or larger for tied values), so the same mixture with
// m = q bounds that count at every n at once; the order statistics at the
// ends of the count's interval bound the quantile (Howard and Ramdas,
// "Sequential estimation of quantiles with applications to A/B-testing
// and best-arm identification", Bernoulli 2022).
//
//   - max: Fail when the quantile's lower bound exceeds max — equivalently
//     when the share of latencies above max is shown to exceed 1 − q.
//     Nothing passes before 1/(1−q) latencies (100 for p99).
//   - maxRatioVsBaseline k, at the rule's quantile: Fail when the
//     candidate's lower bound exceeds k times the baseline's upper bound
//     (α/2 each). This catches a slow tail the rank test below misses.
//
// # Latency distributions: Mann-Whitney U with a tolerance
//
// As Kayenta does, every baseline latency is scaled by k before a
// one-sided Mann-Whitney U test of "candidate > k × baseline": U counts
// the pairs where the candidate is slower (ties count ½), z standardises
// it with the tie-corrected variance
//
//	σ² = n_c·n_b/12 · ((N+1) − Σ(t³−t)/(N(N−1))),  N = n_c + n_b,
//
// and a continuity correction. Histograms make this one merge of two
// short sorted lists. Instead of comparing z with a fixed quantile, which
// repeated looks would inflate, the decision uses the one-sided normal
// mixture (the mSPRT's) over the effective sample size t = n_c·n_b/N:
// with S = z·√t,
//
//	E = 2·√(ρ/(ρ+t))·exp(S²/(2(ρ+t)))·Φ(S/√(ρ+t)),  ρ = 4,
//
// and Fail when E ≥ 1/α. Under the null S is asymptotically a Brownian
// motion in t (Hájek projection of U), so the guarantee is asymptotic, as
// the mSPRT's is; the A/A simulations in the tests check it with no
// tolerance at all (k = 1) and changing traffic splits.
//
// # Outcomes
//
// Fail as soon as one check fails, whatever minSamples says (minSamples
// bounds Pass, not Fail). Error when a Prometheus query failed or the
// observations are impossible (errors above requests, counters going
// backwards, unordered histograms) and nothing failed. Pass only when
// both versions served minSamples requests and every check is within its
// threshold on enough data; a point estimate beyond a threshold that is
// not yet significant is Inconclusive, never Pass. Too little traffic is
// Inconclusive.
package analysis
