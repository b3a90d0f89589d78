package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, in Prometheus style: base units, _total for counters.
const (
	NameRequests = "slipway_gateway_requests_total"
	NameDuration = "slipway_gateway_request_duration_seconds"
	NameInFlight = "slipway_gateway_requests_in_flight"
	NameTokens   = "slipway_gateway_tokens_total"
	NameCost     = "slipway_gateway_cost_total"
	NameUnrouted = "slipway_gateway_unrouted_requests_total"
	NameRetries  = "slipway_gateway_retries_total"
	NameFallback = "slipway_gateway_fallbacks_total"
	NameBreaker  = "slipway_gateway_breaker_state"
)

// DurationBuckets are the request-duration histogram bounds in seconds:
// from 50 µs (an in-process tree ensemble) to 30 s (a long LLM answer).
var DurationBuckets = []float64{
	.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05,
	.1, .25, .5, 1, 2.5, 5, 10, 30,
}

type collectors struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	tokens   *prometheus.CounterVec
	cost     *prometheus.CounterVec
	unrouted *prometheus.CounterVec
	retries  *prometheus.CounterVec
	fallback *prometheus.CounterVec
	breaker  *prometheus.GaugeVec
	shadow   *shadowCollectors
	limits   *limitCollectors
}

func newCollectors(reg prometheus.Registerer) *collectors {
	c := &collectors{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameRequests,
			Help: "Inference requests answered by the gateway, by model, version, environment and HTTP status code.",
		}, []string{"model", "version", "environment", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameDuration,
			Help:    "Inference request latency through the gateway, by model, version and environment.",
			Buckets: DurationBuckets,
		}, []string{"model", "version", "environment"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameInFlight,
			Help: "Inference requests being served right now, by model, version and environment.",
		}, []string{"model", "version", "environment"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameTokens,
			Help: "Tokens reported by OpenAI-compatible answers, by model, version, environment and kind (prompt or completion).",
		}, []string{"model", "version", "environment", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameCost,
			Help: "Cost of the tokens served, in the currency units of the versions' prices, by model, version and environment.",
		}, []string{"model", "version", "environment"}),
		unrouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameUnrouted,
			Help: "Requests the gateway answered without reaching a version (unknown model, bad request, body too large), by HTTP status code.",
		}, []string{"code"}),
	}
	c.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameRetries,
		Help: "Retries the gateway wanted after a failed attempt, by model, version, environment and outcome (retried, budget_exhausted, deadline_exceeded).",
	}, []string{"model", "version", "environment", "outcome"})
	c.fallback = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameFallback,
		Help: "Requests sent to the stable version instead of the version they were routed to (its breaker was open or its call failed).",
	}, []string{"model", "environment", "from_version", "to_version"})
	c.breaker = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: NameBreaker,
		Help: "Circuit breaker of each served version: 0 closed, 1 half-open (probing), 2 open.",
	}, []string{"model", "version", "environment"})
	reg.MustRegister(c.requests, c.duration, c.inFlight, c.tokens, c.cost, c.unrouted, c.retries, c.fallback, c.breaker)
	c.shadow = newShadowCollectors(reg)
	c.limits = newLimitCollectors(reg)
	return c
}

// newSeries resolves the Prometheus children of one version once, so the
// hot path never hashes label values.
func (c *collectors) newSeries(k Key) *series {
	v := strconv.Itoa(k.Version)
	s := &series{
		key:        k,
		duration:   c.duration.WithLabelValues(k.Model, v, k.Environment),
		inFlightG:  c.inFlight.WithLabelValues(k.Model, v, k.Environment),
		prompt:     c.tokens.WithLabelValues(k.Model, v, k.Environment, "prompt"),
		completion: c.tokens.WithLabelValues(k.Model, v, k.Environment, "completion"),
		cost:       c.cost.WithLabelValues(k.Model, v, k.Environment),
		breakerG:   c.breaker.WithLabelValues(k.Model, v, k.Environment),
		codes:      map[int]prometheus.Counter{},
	}
	s.done = func() {
		s.inFlight.Add(-1)
		s.inFlightG.Dec()
	}
	return s
}

// forget deletes every child of one version.
func (c *collectors) forget(k Key) {
	l := prometheus.Labels{"model": k.Model, "version": strconv.Itoa(k.Version), "environment": k.Environment}
	c.requests.DeletePartialMatch(l)
	c.tokens.DeletePartialMatch(l)
	c.duration.Delete(l)
	c.inFlight.Delete(l)
	c.cost.Delete(l)
	c.retries.DeletePartialMatch(l)
	c.breaker.Delete(l)
	c.shadow.forget(l)
	c.limits.forget(l)
	v := strconv.Itoa(k.Version)
	c.fallback.DeletePartialMatch(prometheus.Labels{"model": k.Model, "environment": k.Environment, "from_version": v})
	c.fallback.DeletePartialMatch(prometheus.Labels{"model": k.Model, "environment": k.Environment, "to_version": v})
}
