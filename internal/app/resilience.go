package app

import (
	"time"

	"github.com/slipway-ml/slipway/internal/gateway"
)

// GatewayResilience is how the gateway retries, breaks circuits, falls
// back and bounds requests. It mirrors cli.GatewayResilience field for
// field (cmd/slipway converts one into the other), which validates the
// values and names the flags; the zero value takes the gateway's
// defaults.
type GatewayResilience struct {
	MaxBodyBytes      int64
	UpstreamTimeout   time.Duration
	RetryAttempts     int
	RetryBackoff      time.Duration
	RetryMaxBackoff   time.Duration
	TryTimeout        time.Duration
	Deadline          time.Duration
	RetryBudget       float64
	RetryBudgetFloor  int
	RetryBudgetWindow time.Duration
	OpenAIIdempotent  bool
	BreakerFailures   int
	BreakerRatio      float64
	BreakerMinCalls   int
	BreakerWindow     time.Duration
	BreakerCooldown   time.Duration
	NoBreaker         bool
	NoFallback        bool
}

// apply sets the gateway's configuration from r.
func (r GatewayResilience) apply(c *gateway.Config) {
	c.MaxBodyBytes = r.MaxBodyBytes
	c.UpstreamTimeout = r.UpstreamTimeout
	c.DisableFallback = r.NoFallback
	c.Retry = gateway.RetryPolicy{
		MaxAttempts: r.RetryAttempts, BaseBackoff: r.RetryBackoff, MaxBackoff: r.RetryMaxBackoff,
		TryTimeout: r.TryTimeout, Deadline: r.Deadline,
		BudgetRatio: r.RetryBudget, BudgetFloor: r.RetryBudgetFloor, BudgetWindow: r.RetryBudgetWindow,
		OpenAIIdempotent: r.OpenAIIdempotent,
	}
	c.Breaker = gateway.BreakerPolicy{
		Disabled: r.NoBreaker, ConsecutiveFailures: r.BreakerFailures, FailureRatio: r.BreakerRatio,
		MinRequests: r.BreakerMinCalls, Window: r.BreakerWindow, CoolDown: r.BreakerCooldown,
	}
}
