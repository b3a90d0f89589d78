package evaluation

import (
	"fmt"
	"sort"

	"github.com/slipway-ml/slipway/internal/domain"
)

// GroupRates are one group's rates in a fairness comparison.
type GroupRates struct {
	Group string `json:"group"`
	Rows  int    `json:"rows"`
	// TPR is the true-positive rate (recall) in the group; nil when the
	// group has no positive labels.
	TPR *float64 `json:"tpr,omitempty"`
	// PositiveRate is the share of the group predicted positive.
	PositiveRate float64 `json:"positive_rate"`
}

// Fairness compares groups of a sensitive column.
type Fairness struct {
	Groups []GroupRates `json:"groups"`
	// TPRGap is the largest difference in true-positive rate between two
	// groups that have positives (equal opportunity).
	TPRGap float64 `json:"tpr_gap"`
	// PositiveRateGap is the largest difference in positive rate
	// (demographic parity).
	PositiveRateGap float64 `json:"positive_rate_gap"`
}

// Compare computes per-group rates and the largest gaps between groups.
func Compare(labels, scores []float64, groups []string, threshold float64) (Fairness, error) {
	if err := checkPairs(labels, scores); err != nil {
		return Fairness{}, err
	}
	if len(groups) != len(labels) {
		return Fairness{}, fmt.Errorf("%d group values for %d rows: %w", len(groups), len(labels), domain.ErrInvalid)
	}
	type acc struct{ rows, pos, predPos, tp float64 }
	by := map[string]*acc{}
	for i, g := range groups {
		a := by[g]
		if a == nil {
			a = &acc{}
			by[g] = a
		}
		pred := scores[i] >= threshold
		a.rows++
		if pred {
			a.predPos++
		}
		if labels[i] == 1 {
			a.pos++
			if pred {
				a.tp++
			}
		}
	}
	names := make([]string, 0, len(by))
	for g := range by {
		names = append(names, g)
	}
	sort.Strings(names)
	var f Fairness
	first, firstTPR := true, true
	var minP, maxP, minT, maxT float64
	for _, g := range names {
		a := by[g]
		r := GroupRates{Group: g, Rows: int(a.rows), PositiveRate: a.predPos / a.rows}
		if first || r.PositiveRate < minP {
			minP = r.PositiveRate
		}
		if first || r.PositiveRate > maxP {
			maxP = r.PositiveRate
		}
		first = false
		if a.pos > 0 {
			t := a.tp / a.pos
			r.TPR = &t
			if firstTPR || t < minT {
				minT = t
			}
			if firstTPR || t > maxT {
				maxT = t
			}
			firstTPR = false
		}
		f.Groups = append(f.Groups, r)
	}
	f.PositiveRateGap, f.TPRGap = maxP-minP, maxT-minT
	return f, nil
}
