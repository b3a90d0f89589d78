package app

import (
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/gateway"
)

// Every flag reaches the gateway's configuration, in its own field.
func TestGatewayResilienceApply(t *testing.T) {
	r := GatewayResilience{
		MaxBodyBytes: 1, UpstreamTimeout: 2 * time.Second, RetryAttempts: 3, RetryBackoff: 4 * time.Millisecond,
		RetryMaxBackoff: 5 * time.Millisecond, TryTimeout: 6 * time.Second, Deadline: 7 * time.Second, RetryBudget: 0.8,
		RetryBudgetFloor: 9, RetryBudgetWindow: 10 * time.Second, OpenAIIdempotent: true, BreakerFailures: 11,
		BreakerRatio: 0.12, BreakerMinCalls: 13, BreakerWindow: 14 * time.Second, BreakerCooldown: 15 * time.Second,
		NoBreaker: true, NoFallback: true,
	}
	var c gateway.Config
	r.apply(&c)
	want := gateway.Config{
		MaxBodyBytes: 1, UpstreamTimeout: 2 * time.Second, DisableFallback: true,
		Retry: gateway.RetryPolicy{MaxAttempts: 3, BaseBackoff: 4 * time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			TryTimeout: 6 * time.Second, Deadline: 7 * time.Second, BudgetRatio: 0.8, BudgetFloor: 9,
			BudgetWindow: 10 * time.Second, OpenAIIdempotent: true},
		Breaker: gateway.BreakerPolicy{Disabled: true, ConsecutiveFailures: 11, FailureRatio: 0.12, MinRequests: 13,
			Window: 14 * time.Second, CoolDown: 15 * time.Second},
	}
	if c.MaxBodyBytes != want.MaxBodyBytes || c.UpstreamTimeout != want.UpstreamTimeout || c.DisableFallback != want.DisableFallback ||
		c.Retry != want.Retry || c.Breaker != want.Breaker {
		t.Errorf("applied %+v %+v %+v\nwant    %+v %+v %+v", c.Retry, c.Breaker, []any{c.MaxBodyBytes, c.UpstreamTimeout, c.DisableFallback},
			want.Retry, want.Breaker, []any{want.MaxBodyBytes, want.UpstreamTimeout, want.DisableFallback})
	}
}
