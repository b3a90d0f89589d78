package analysis

import (
	"context"
	"errors"
	"time"
)

// Provider answers instant queries against a metrics system: the value
// of query at time at. A query that matches no series returns an error
// wrapping ErrNoData, which the judge reads as "no data yet"
// (Inconclusive); any other error makes the rule's outcome Error. The
// Prometheus implementation lives in analysis/promprov.
type Provider interface {
	Query(ctx context.Context, query string, at time.Time) (float64, error)
}

// ErrNoData is what a Provider wraps when a query has no value yet.
var ErrNoData = errors.New("no data")

// PromResult is one query's value or the reason there is none.
type PromResult struct {
	Value float64 `json:"value"`
	Err   error   `json:"-"`
	// Early marks a value read before Prometheus could have scraped the
	// analysis run's traffic (the run is younger than the scrapes it
	// needs): it may fail a candidate, as a value out of bounds is out of
	// bounds, but cannot pass one.
	Early bool `json:"early,omitempty"`
}

// QueryPrometheus asks p for every Prometheus rule's query of s at time
// at, once per distinct query, for Observations.Prometheus. A nil p
// answers every query with an error, so the rules come out Error rather
// than silently passing.
func QueryPrometheus(ctx context.Context, p Provider, s Spec, at time.Time) map[string]PromResult {
	out := map[string]PromResult{}
	for _, r := range s.Rules {
		if r.Prometheus == nil {
			continue
		}
		q := r.Prometheus.Query
		if _, done := out[q]; done {
			continue
		}
		if p == nil {
			out[q] = PromResult{Err: errors.New("no Prometheus provider is configured")}
			continue
		}
		v, err := p.Query(ctx, q, at)
		out[q] = PromResult{Value: v, Err: err}
	}
	return out
}
