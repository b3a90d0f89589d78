package gate

import (
	"fmt"
	"math"
	"strconv"

	"github.com/slipway-ml/slipway/internal/domain"
)

// tolerance absorbs floating-point noise in threshold arithmetic
// (champion + delta), relative to the threshold's size.
const tolerance = 1e-12

// Judge applies a policy's rules to an evaluation of the candidate and,
// for comparisons, of the champion on the same dataset (nil when there is
// no champion). It returns every rule's result and whether all passed.
// Missing evidence never passes: a metric the evaluation lacks fails its
// rule, saying so.
func Judge(p domain.GatePolicy, cand domain.Evaluation, champ *domain.Evaluation) ([]domain.RuleResult, bool) {
	var out []domain.RuleResult
	ok := true
	add := func(r domain.RuleResult) {
		if r.Verdict == domain.VerdictFail {
			ok = false
		}
		out = append(out, r)
	}
	for _, rule := range p.Rules {
		obs, why := observe(rule, cand)
		base := domain.RuleResult{Metric: rule.Metric, Group: rule.Group}
		if obs != nil {
			v := *obs
			base.Observed = &v
		}
		for _, c := range checks(rule) {
			r := base
			r.Kind, r.Threshold = c.kind, c.limit
			switch {
			case obs == nil:
				r.Verdict, r.Reason = domain.VerdictFail, why
			case !c.vsChampion:
				r.Verdict, r.Reason = verdict(*obs, c.limit, c.atLeast)
			case champ == nil:
				r.Verdict, r.Reason = domain.VerdictSkipped, "no champion to compare with"
			default:
				cv, cwhy := observe(rule, *champ)
				if cv == nil {
					r.Verdict, r.Reason = domain.VerdictFail, "champion: "+cwhy
					break
				}
				v := *cv
				r.Champion = &v
				r.Threshold = v + c.limit
				r.Verdict, r.Reason = verdict(*obs, r.Threshold, c.atLeast)
			}
			add(r)
		}
	}
	return out, ok
}

type check struct {
	kind       string
	limit      float64
	atLeast    bool
	vsChampion bool
}

func checks(r domain.GateRule) []check {
	var cs []check
	if r.Min != nil {
		cs = append(cs, check{"min", *r.Min, true, false})
	}
	if r.Max != nil {
		cs = append(cs, check{"max", *r.Max, false, false})
	}
	if r.MinVsChampion != nil {
		cs = append(cs, check{"min_vs_champion", *r.MinVsChampion, true, true})
	}
	if r.MaxVsChampion != nil {
		cs = append(cs, check{"max_vs_champion", *r.MaxVsChampion, false, true})
	}
	return cs
}

func verdict(obs, limit float64, atLeast bool) (domain.Verdict, string) {
	eps := tolerance * max(1, math.Abs(limit))
	if atLeast {
		if obs >= limit-eps {
			return domain.VerdictPass, fmt.Sprintf("%s ≥ %s", num(obs), num(limit))
		}
		return domain.VerdictFail, fmt.Sprintf("%s < %s", num(obs), num(limit))
	}
	if obs <= limit+eps {
		return domain.VerdictPass, fmt.Sprintf("%s ≤ %s", num(obs), num(limit))
	}
	return domain.VerdictFail, fmt.Sprintf("%s > %s", num(obs), num(limit))
}

// observe reads a rule's metric from an evaluation, or says why it can't.
func observe(r domain.GateRule, e domain.Evaluation) (*float64, string) {
	if r.Group != "" {
		return observeGap(r, e)
	}
	v, ok := e.Metrics[r.Metric]
	if !ok || math.IsNaN(v) {
		return nil, fmt.Sprintf("evaluation %d (%s) has no %s", e.ID, e.Task, r.Metric)
	}
	return &v, ""
}

// observeGap reads a fairness gap over the rule's group column: the
// evaluation's fairness figures when the column is the dataset's
// sensitive one; for tpr_gap over a segment column, the spread of the
// segments' recall (recall is the true-positive rate).
func observeGap(r domain.GateRule, e domain.Evaluation) (*float64, string) {
	if f := e.Fairness; f != nil && f.Column == r.Group {
		v := f.TPRGap
		if r.Metric == domain.MetricPositiveRateGap {
			v = f.PositiveRateGap
		}
		return &v, ""
	}
	if r.Metric == domain.MetricTPRGap {
		lo, hi, n := math.Inf(1), math.Inf(-1), 0
		for _, s := range e.Segments {
			if s.Column != r.Group {
				continue
			}
			if tpr, ok := s.Metrics[domain.MetricRecall]; ok && !math.IsNaN(tpr) {
				lo, hi, n = min(lo, tpr), max(hi, tpr), n+1
			}
		}
		if n >= 2 {
			v := hi - lo
			return &v, ""
		}
	}
	sens := "none"
	if e.Fairness != nil {
		sens = strconv.Quote(e.Fairness.Column)
	}
	return nil, fmt.Sprintf("evaluation %d has no %s over column %q (the dataset's sensitive column: %s; push the dataset with --sensitive %s or --segment %s)",
		e.ID, r.Metric, r.Group, sens, r.Group, r.Group)
}

// num formats a value for a reason: short, exact enough to read.
func num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
