package cli

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/spf13/pflag"
)

// GatewayLimits is how the gateway authenticates callers, limits their
// rates and answers' sizes, and keeps Idempotency-Key answers, as `slipway
// server` parsed it from its flags. app.GatewayLimits mirrors it field for
// field, so that cmd/slipway converts one into the other. Once validated,
// the flags' 0 for "unlimited" and "off" is carried as -1
// (MaxResponseBytes, IdempotencyTTL), so that a zero value means the
// defaults everywhere.
type GatewayLimits struct {
	TokenRate           float64
	TokenBurst          int
	RequireToken        bool
	TokenCacheTTL       time.Duration
	MaxResponseBytes    int64
	IdempotencyTTL      time.Duration
	IdempotencyMaxBytes int64
}

// Bounds of the limit flags beyond which a value is a mistake.
const (
	maxTokenRate      = 1e7
	maxTokenBurst     = 1 << 24
	maxTokenCacheTTL  = 5 * time.Minute
	maxIdempotencyTTL = 7 * 24 * time.Hour
)

// addGatewayLimitFlags declares the gateway's authentication, limit and
// idempotency flags (docs/gateway.md: Limits, Authentication,
// Idempotency keys).
func addGatewayLimitFlags(f *pflag.FlagSet, o *GatewayLimits) {
	f.Float64Var(&o.TokenRate, "gateway-token-rate", 0, "inference requests per second each API token may send (callers without a token: each client address); 0 turns per-caller limits off")
	f.IntVar(&o.TokenBurst, "gateway-token-burst", 0, "bucket size of the per-caller limit: requests a caller may send at once (0: one second of --gateway-token-rate)")
	f.BoolVar(&o.RequireToken, "gateway-require-token", false, "refuse inference requests without a valid slipway API token (Authorization: Bearer slw_…) with 401; health probes stay open")
	f.DurationVar(&o.TokenCacheTTL, "gateway-token-cache-ttl", 5*time.Second, "how long the gateway trusts a token check: a revoked token stops working on the gateway within this time")
	f.Int64Var(&o.MaxResponseBytes, "gateway-max-response-bytes", 64<<20, "largest answer the gateway passes from a model: larger ones get 502, or are cut off mid-stream (0: unlimited)")
	f.DurationVar(&o.IdempotencyTTL, "gateway-idempotency-ttl", 24*time.Hour, "how long an answer to a request with an Idempotency-Key is kept for replay (0: keys are not stored)")
	f.Int64Var(&o.IdempotencyMaxBytes, "gateway-idempotency-max-bytes", 64<<20, "memory for stored Idempotency-Key answers; the oldest are evicted past it")
}

// validate refuses values that are no setting, naming the flag.
func (o GatewayLimits) validate() error {
	var errs []error
	bad := func(flag string, value any, rule string) {
		errs = append(errs, fmt.Errorf("--%s %v: %s", flag, value, rule))
	}
	if math.IsNaN(o.TokenRate) || o.TokenRate < 0 || o.TokenRate > maxTokenRate {
		bad("gateway-token-rate", o.TokenRate, fmt.Sprintf("must be from 0 (off) to %g", float64(maxTokenRate)))
	}
	if o.TokenBurst < 0 || o.TokenBurst > maxTokenBurst {
		bad("gateway-token-burst", o.TokenBurst, fmt.Sprintf("must be from 0 (one second of requests) to %d", maxTokenBurst))
	}
	if o.TokenBurst > 0 && o.TokenRate == 0 {
		bad("gateway-token-burst", o.TokenBurst, "needs --gateway-token-rate")
	}
	if o.TokenCacheTTL <= 0 || o.TokenCacheTTL > maxTokenCacheTTL {
		bad("gateway-token-cache-ttl", o.TokenCacheTTL, "must be above 0 and at most 5m")
	}
	if o.MaxResponseBytes < 0 {
		bad("gateway-max-response-bytes", o.MaxResponseBytes, "must not be negative (0: unlimited)")
	}
	if o.IdempotencyTTL < 0 || o.IdempotencyTTL > maxIdempotencyTTL {
		bad("gateway-idempotency-ttl", o.IdempotencyTTL, "must be from 0 (off) to 168h")
	}
	if o.IdempotencyMaxBytes <= 0 {
		bad("gateway-idempotency-max-bytes", o.IdempotencyMaxBytes, "must be positive")
	}
	return errors.Join(errs...)
}

// normalized carries the flags' 0 for "unlimited" and "off" as -1.
func (o GatewayLimits) normalized() GatewayLimits {
	if o.MaxResponseBytes == 0 {
		o.MaxResponseBytes = -1
	}
	if o.IdempotencyTTL == 0 {
		o.IdempotencyTTL = -1
	}
	return o
}
