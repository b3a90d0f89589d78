package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// GatewayResilience is how the gateway retries, breaks circuits, falls
// back and bounds requests, as `slipway server` parsed it from its
// --gateway-* flags. The zero TryTimeout and Deadline mean "the upstream
// timeout". app.GatewayResilience mirrors it field for field, so that
// cmd/slipway converts one into the other and a field added to one only
// fails the build.
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

// Limits of the resilience flags beyond which a value is a mistake, not
// a setting.
const (
	maxRetryAttempts = 10
	maxWindow        = 5 * time.Minute
)

// addGatewayResilienceFlags declares the --gateway-* resilience flags;
// their defaults are the gateway's own (docs/gateway.md).
func addGatewayResilienceFlags(f *pflag.FlagSet, o *GatewayResilience) {
	f.Int64Var(&o.MaxBodyBytes, "gateway-max-body-bytes", 8<<20, "largest inference request body the gateway accepts (413 above it)")
	f.DurationVar(&o.UpstreamTimeout, "gateway-upstream-timeout", 30*time.Second, "longest wait for a remote model server's response head, and longest silence between chunks of its answer")
	f.IntVar(&o.RetryAttempts, "gateway-retry-attempts", 3, "tries of one version per request, the first included; 1 turns retries off (at most 10)")
	f.DurationVar(&o.RetryBackoff, "gateway-retry-backoff", 5*time.Millisecond, "base of the full-jitter backoff: retry n waits a random time below min(max, base·2ⁿ)")
	f.DurationVar(&o.RetryMaxBackoff, "gateway-retry-max-backoff", 250*time.Millisecond, "cap of the backoff between retries")
	f.DurationVar(&o.TryTimeout, "gateway-try-timeout", 0, "longest wait for one attempt's response head; set it below --gateway-deadline to retry and fall back after hangs (default: --gateway-upstream-timeout)")
	f.DurationVar(&o.Deadline, "gateway-deadline", 0, "longest time from a request's first attempt to the start of its answer, retries, backoff and fallback included (default: --gateway-upstream-timeout)")
	f.Float64Var(&o.RetryBudget, "gateway-retry-budget", 0.2, "retries allowed per version as a fraction of its requests over --gateway-retry-budget-window, in (0, 1]")
	f.IntVar(&o.RetryBudgetFloor, "gateway-retry-budget-floor", 3, "retries per second per version allowed whatever the budget, so a quiet version can retry")
	f.DurationVar(&o.RetryBudgetWindow, "gateway-retry-budget-window", 10*time.Second, "sliding window of the retry budget, whole seconds from 1s to 5m")
	f.BoolVar(&o.OpenAIIdempotent, "gateway-openai-idempotent", false, "treat OpenAI calls as safe to repeat: retry them after 502/503/504, timeouts and broken connections and fall back, as inference calls are (off: generation costs tokens and may differ; a request with an Idempotency-Key is always safe)")
	f.IntVar(&o.BreakerFailures, "gateway-breaker-failures", 5, "consecutive failures of a version that open its circuit breaker")
	f.Float64Var(&o.BreakerRatio, "gateway-breaker-ratio", 0.5, "failure ratio over --gateway-breaker-window that opens a version's breaker, in (0, 1]")
	f.IntVar(&o.BreakerMinCalls, "gateway-breaker-min-requests", 20, "calls a window needs before --gateway-breaker-ratio can open the breaker")
	f.DurationVar(&o.BreakerWindow, "gateway-breaker-window", 10*time.Second, "sliding window of the breaker's failure ratio, whole seconds from 1s to 5m")
	f.DurationVar(&o.BreakerCooldown, "gateway-breaker-cooldown", 5*time.Second, "how long an open breaker refuses calls before it lets one probe through")
	f.BoolVar(&o.NoBreaker, "gateway-no-breaker", false, "turn circuit breakers off: every version always gets its traffic")
	f.BoolVar(&o.NoFallback, "gateway-no-fallback", false, "never send a request to the deployment's stable version instead of the one it was routed to")
}

// validate refuses values that are no setting, naming the flag: the
// gateway would otherwise quietly run with its default instead.
func (o GatewayResilience) validate() error {
	var errs []error
	bad := func(flag string, value any, rule string) {
		errs = append(errs, fmt.Errorf("--%s %v: %s", flag, value, rule))
	}
	if o.MaxBodyBytes <= 0 {
		bad("gateway-max-body-bytes", o.MaxBodyBytes, "must be positive")
	}
	if o.UpstreamTimeout <= 0 {
		bad("gateway-upstream-timeout", o.UpstreamTimeout, "must be positive")
	}
	if o.RetryAttempts < 1 || o.RetryAttempts > maxRetryAttempts {
		bad("gateway-retry-attempts", o.RetryAttempts, fmt.Sprintf("must be from 1 (no retries) to %d", maxRetryAttempts))
	}
	if o.RetryBackoff <= 0 {
		bad("gateway-retry-backoff", o.RetryBackoff, "must be positive")
	}
	if o.RetryMaxBackoff < o.RetryBackoff {
		bad("gateway-retry-max-backoff", o.RetryMaxBackoff, fmt.Sprintf("must be at least --gateway-retry-backoff (%s)", o.RetryBackoff))
	}
	if o.TryTimeout < 0 {
		bad("gateway-try-timeout", o.TryTimeout, "must not be negative (0: the upstream timeout)")
	}
	if o.Deadline < 0 {
		bad("gateway-deadline", o.Deadline, "must not be negative (0: the upstream timeout)")
	}
	if try, deadline := orDuration(o.TryTimeout, o.UpstreamTimeout), orDuration(o.Deadline, o.UpstreamTimeout); o.TryTimeout >= 0 && o.Deadline >= 0 && try > deadline {
		bad("gateway-try-timeout", try, fmt.Sprintf("must not exceed the deadline (%s): one try cannot outlast them all", deadline))
	}
	if !(o.RetryBudget > 0 && o.RetryBudget <= 1) {
		bad("gateway-retry-budget", o.RetryBudget, "must be a fraction in (0, 1], such as 0.2 for 20 % extra attempts")
	}
	if o.RetryBudgetFloor < 1 {
		bad("gateway-retry-budget-floor", o.RetryBudgetFloor, "must be at least 1")
	}
	if err := checkWindow(o.RetryBudgetWindow); err != "" {
		bad("gateway-retry-budget-window", o.RetryBudgetWindow, err)
	}
	if o.BreakerFailures < 1 {
		bad("gateway-breaker-failures", o.BreakerFailures, "must be at least 1")
	}
	if !(o.BreakerRatio > 0 && o.BreakerRatio <= 1) {
		bad("gateway-breaker-ratio", o.BreakerRatio, "must be a fraction in (0, 1], such as 0.5")
	}
	if o.BreakerMinCalls < 1 {
		bad("gateway-breaker-min-requests", o.BreakerMinCalls, "must be at least 1")
	}
	if err := checkWindow(o.BreakerWindow); err != "" {
		bad("gateway-breaker-window", o.BreakerWindow, err)
	}
	if o.BreakerCooldown <= 0 {
		bad("gateway-breaker-cooldown", o.BreakerCooldown, "must be positive")
	}
	return errors.Join(errs...)
}

// checkWindow says what is wrong with a sliding window's length, "" when
// nothing: windows are counted in whole-second buckets.
func checkWindow(d time.Duration) string {
	switch {
	case d < time.Second || d > maxWindow:
		return "must be from 1s to 5m"
	case d%time.Second != 0:
		return "must be whole seconds"
	}
	return ""
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
