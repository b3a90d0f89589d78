package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits and idempotency: the gateway refuses requests over a rate limit
// (429) or a version's concurrency limit, cuts off answers over the size
// cap, and answers repeated Idempotency-Keys from its store. These
// counters say how often, so an operator can tell a limit that bites from
// a model that fails. Labels carry only served model names, never a
// caller's token or address.

// Limit and idempotency metric names.
const (
	NameRateLimited          = "slipway_gateway_rate_limited_total"
	NameConcurrencyRejected  = "slipway_gateway_concurrency_rejected_total"
	NameResponseTooLarge     = "slipway_gateway_responses_too_large_total"
	NameIdempotentReplays    = "slipway_gateway_idempotent_replays_total"
	NameIdempotencyConflicts = "slipway_gateway_idempotency_conflicts_total"
)

// RateScope says which bucket refused a request.
type RateScope string

// Rate-limit scopes.
const (
	// RateScopeToken: the caller's bucket (its API token, or its address
	// when it presented none).
	RateScopeToken RateScope = "token"
	// RateScopeModel: the deployment's bucket, shared by every caller.
	RateScopeModel RateScope = "model"
)

// IdempotencyConflict says why a request with an Idempotency-Key was
// refused.
type IdempotencyConflict string

// Idempotency conflicts.
const (
	// IdempotencyInFlight: the first request with the key is still being
	// answered (409).
	IdempotencyInFlight IdempotencyConflict = "in_flight"
	// IdempotencyMismatch: the key was used with another request (422).
	IdempotencyMismatch IdempotencyConflict = "mismatch"
)

type limitCollectors struct {
	rateLimited  *prometheus.CounterVec
	concurrency  *prometheus.CounterVec
	tooLarge     *prometheus.CounterVec
	replays      *prometheus.CounterVec
	idemConflict *prometheus.CounterVec
}

func newLimitCollectors(reg prometheus.Registerer) *limitCollectors {
	c := &limitCollectors{
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameRateLimited,
			Help: "Requests refused with 429 by a rate limit, by model, environment and scope (token: the caller's bucket; model: the deployment's).",
		}, []string{"model", "environment", "scope"}),
		concurrency: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameConcurrencyRejected,
			Help: "Admissions a version refused because it had its maximum of requests in flight (the request went to the stable version, or got 503).",
		}, []string{"model", "version", "environment"}),
		tooLarge: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameResponseTooLarge,
			Help: "Answers of a version larger than the gateway's response cap: refused with 502, or cut off mid-stream.",
		}, []string{"model", "version", "environment"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameIdempotentReplays,
			Help: "Requests answered from the idempotency store without calling the model, by model and environment.",
		}, []string{"model", "environment"}),
		idemConflict: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameIdempotencyConflicts,
			Help: "Requests with an Idempotency-Key refused: in_flight (409, the first is still running) or mismatch (422, the key was used with another request).",
		}, []string{"model", "environment", "reason"}),
	}
	reg.MustRegister(c.rateLimited, c.concurrency, c.tooLarge, c.replays, c.idemConflict)
	return c
}

func (c *limitCollectors) forget(l prometheus.Labels) {
	c.concurrency.Delete(l)
	c.tooLarge.Delete(l)
}

// ObserveRateLimited counts a request of a served model refused by the
// rate limit of scope.
func (r *Recorder) ObserveRateLimited(model, env string, scope RateScope) {
	r.prom.limits.rateLimited.WithLabelValues(model, env, string(scope)).Inc()
}

// ObserveConcurrencyRejected counts an admission version k refused at its
// concurrency limit.
func (r *Recorder) ObserveConcurrencyRejected(k Key) {
	r.prom.limits.concurrency.WithLabelValues(k.Model, strconv.Itoa(k.Version), k.Environment).Inc()
}

// ObserveResponseTooLarge counts an answer of version k over the cap.
func (r *Recorder) ObserveResponseTooLarge(k Key) {
	r.prom.limits.tooLarge.WithLabelValues(k.Model, strconv.Itoa(k.Version), k.Environment).Inc()
}

// ObserveIdempotentReplay counts a request answered from the
// idempotency store.
func (r *Recorder) ObserveIdempotentReplay(model, env string) {
	r.prom.limits.replays.WithLabelValues(model, env).Inc()
}

// ObserveIdempotencyConflict counts a request with an Idempotency-Key
// refused for reason.
func (r *Recorder) ObserveIdempotencyConflict(model, env string, reason IdempotencyConflict) {
	r.prom.limits.idemConflict.WithLabelValues(model, env, string(reason)).Inc()
}
