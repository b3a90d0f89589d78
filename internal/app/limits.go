package app

import (
	"time"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/gateway"
)

// GatewayLimits is how the gateway checks API tokens, limits callers'
// rates and answers' sizes, and keeps Idempotency-Key answers. It mirrors
// cli.GatewayLimits field for field (cmd/slipway converts one into the
// other), which validates the values and names the flags. The zero value
// takes the gateway's defaults; a negative MaxResponseBytes means
// unlimited and a negative IdempotencyTTL turns the store off (the
// flags' 0).
type GatewayLimits struct {
	TokenRate           float64
	TokenBurst          int
	RequireToken        bool
	TokenCacheTTL       time.Duration
	MaxResponseBytes    int64
	IdempotencyTTL      time.Duration
	IdempotencyMaxBytes int64
}

// apply sets the gateway's configuration from l: tokens are checked
// against tokens through a verifier that remembers each verdict for
// TokenCacheTTL, so revocation reaches the gateway within it.
func (l GatewayLimits) apply(c *gateway.Config, tokens auth.TokenReader, clk clock.Clock) {
	c.Tokens = auth.NewVerifier(auth.VerifierConfig{Reader: tokens, Clock: clk, TTL: l.TokenCacheTTL})
	c.RequireToken = l.RequireToken
	c.Limits = gateway.LimitPolicy{TokenRate: l.TokenRate, TokenBurst: l.TokenBurst, MaxResponseBytes: l.MaxResponseBytes}
	c.Idempotency = gateway.IdempotencyPolicy{Disabled: l.IdempotencyTTL < 0, TTL: l.IdempotencyTTL, MaxBytes: l.IdempotencyMaxBytes}
}
