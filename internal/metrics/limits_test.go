package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLimitCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, nil)
	k := Key{Model: "m", Environment: "production", Version: 2}
	r.Observe(k, 200, 0)
	r.ObserveRateLimited("m", "production", RateScopeToken)
	r.ObserveRateLimited("m", "production", RateScopeModel)
	r.ObserveRateLimited("m", "production", RateScopeModel)
	r.ObserveConcurrencyRejected(k)
	r.ObserveResponseTooLarge(k)
	r.ObserveIdempotentReplay("m", "production")
	r.ObserveIdempotencyConflict("m", "production", IdempotencyMismatch)
	got := gather(t, reg)
	for name, want := range map[string]float64{
		`slipway_gateway_rate_limited_total{environment="production",model="m",scope="token"}`:              1,
		`slipway_gateway_rate_limited_total{environment="production",model="m",scope="model"}`:              2,
		`slipway_gateway_concurrency_rejected_total{environment="production",model="m",version="2"}`:        1,
		`slipway_gateway_responses_too_large_total{environment="production",model="m",version="2"}`:         1,
		`slipway_gateway_idempotent_replays_total{environment="production",model="m"}`:                      1,
		`slipway_gateway_idempotency_conflicts_total{environment="production",model="m",reason="mismatch"}`: 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	// A version that no longer serves takes its per-version series along.
	r.Forget(k)
	got = gather(t, reg)
	for _, name := range []string{
		`slipway_gateway_concurrency_rejected_total{environment="production",model="m",version="2"}`,
		`slipway_gateway_responses_too_large_total{environment="production",model="m",version="2"}`,
	} {
		if _, ok := got[name]; ok {
			t.Errorf("after Forget %s is still exported", name)
		}
	}
}
