package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// runServerCmd runs `slipway server args…` with a server that only
// records what it was given; it returns the options (nil when the
// server was not started), the exit code and stderr.
func runServerCmd(t *testing.T, args ...string) (*ServerOptions, int, string) {
	t.Helper()
	var got *ServerOptions
	serve := func(_ context.Context, o ServerOptions) error {
		got = &o
		return nil
	}
	var stdout, stderr bytes.Buffer
	code := Main(append([]string{"server"}, args...), &stdout, &stderr, serve)
	return got, code, stderr.String()
}

// The defaults of the flags are the gateway's documented defaults.
func TestServerResilienceDefaults(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	o, code, stderr := runServerCmd(t)
	if code != 0 || o == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := GatewayResilience{
		MaxBodyBytes: 8 << 20, UpstreamTimeout: 30 * time.Second,
		RetryAttempts: 3, RetryBackoff: 5 * time.Millisecond, RetryMaxBackoff: 250 * time.Millisecond,
		RetryBudget: 0.2, RetryBudgetFloor: 3, RetryBudgetWindow: 10 * time.Second,
		BreakerFailures: 5, BreakerRatio: 0.5, BreakerMinCalls: 20, BreakerWindow: 10 * time.Second, BreakerCooldown: 5 * time.Second,
	}
	if o.Resilience != want {
		t.Errorf("defaults %+v\nwant     %+v", o.Resilience, want)
	}
	if o.OTLPEndpoint != "" {
		t.Errorf("tracing on by default: %q", o.OTLPEndpoint)
	}
}

func TestServerResilienceFlagsParsed(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	o, code, stderr := runServerCmd(t, "--gateway-max-body-bytes", "1024", "--gateway-upstream-timeout", "1m",
		"--gateway-retry-attempts", "1", "--gateway-retry-backoff", "1ms", "--gateway-retry-max-backoff", "1ms",
		"--gateway-try-timeout", "2s", "--gateway-deadline", "5s", "--gateway-retry-budget", "1",
		"--gateway-retry-budget-floor", "1", "--gateway-retry-budget-window", "5m", "--gateway-openai-idempotent",
		"--gateway-breaker-failures", "1", "--gateway-breaker-ratio", "0.25", "--gateway-breaker-min-requests", "4",
		"--gateway-breaker-window", "1s", "--gateway-breaker-cooldown", "250ms", "--gateway-no-breaker", "--gateway-no-fallback")
	if code != 0 || o == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := GatewayResilience{
		MaxBodyBytes: 1024, UpstreamTimeout: time.Minute,
		RetryAttempts: 1, RetryBackoff: time.Millisecond, RetryMaxBackoff: time.Millisecond,
		TryTimeout: 2 * time.Second, Deadline: 5 * time.Second,
		RetryBudget: 1, RetryBudgetFloor: 1, RetryBudgetWindow: 5 * time.Minute, OpenAIIdempotent: true,
		BreakerFailures: 1, BreakerRatio: 0.25, BreakerMinCalls: 4, BreakerWindow: time.Second, BreakerCooldown: 250 * time.Millisecond,
		NoBreaker: true, NoFallback: true,
	}
	if o.Resilience != want {
		t.Errorf("parsed %+v\nwant   %+v", o.Resilience, want)
	}
	if o.OTLPEndpoint != "http://127.0.0.1:4318" {
		t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT not honoured: %q", o.OTLPEndpoint)
	}
	if o, _, _ := runServerCmd(t, "--otlp-endpoint", "http://collector:4318"); o == nil || o.OTLPEndpoint != "http://collector:4318" {
		t.Errorf("--otlp-endpoint does not take precedence over the environment: %+v", o)
	}
}

// A value that is no setting stops the server before it starts, with a
// message naming the flag and what it takes.
func TestServerResilienceFlagsRefused(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--gateway-max-body-bytes", "0"}, "--gateway-max-body-bytes 0: must be positive"},
		{[]string{"--gateway-upstream-timeout", "-1s"}, "--gateway-upstream-timeout -1s: must be positive"},
		{[]string{"--gateway-retry-attempts", "0"}, "--gateway-retry-attempts 0: must be from 1"},
		{[]string{"--gateway-retry-attempts", "11"}, "--gateway-retry-attempts 11: must be from 1 (no retries) to 10"},
		{[]string{"--gateway-retry-backoff", "0s"}, "--gateway-retry-backoff 0s: must be positive"},
		{[]string{"--gateway-retry-max-backoff", "1ms"}, "--gateway-retry-max-backoff 1ms: must be at least --gateway-retry-backoff (5ms)"},
		{[]string{"--gateway-try-timeout", "-5s"}, "--gateway-try-timeout -5s: must not be negative"},
		{[]string{"--gateway-deadline", "-1ms"}, "--gateway-deadline -1ms: must not be negative"},
		{[]string{"--gateway-try-timeout", "40s"}, "--gateway-try-timeout 40s: must not exceed the deadline (30s)"},
		{[]string{"--gateway-try-timeout", "2s", "--gateway-deadline", "1s"}, "--gateway-try-timeout 2s: must not exceed the deadline (1s)"},
		{[]string{"--gateway-retry-budget", "0"}, "--gateway-retry-budget 0: must be a fraction in (0, 1]"},
		{[]string{"--gateway-retry-budget", "1.5"}, "--gateway-retry-budget 1.5: must be a fraction"},
		{[]string{"--gateway-retry-budget", "NaN"}, "--gateway-retry-budget NaN: must be a fraction"},
		{[]string{"--gateway-retry-budget-floor", "-1"}, "--gateway-retry-budget-floor -1: must be at least 1"},
		{[]string{"--gateway-retry-budget-window", "500ms"}, "--gateway-retry-budget-window 500ms: must be from 1s to 5m"},
		{[]string{"--gateway-retry-budget-window", "1h"}, "--gateway-retry-budget-window 1h0m0s: must be from 1s to 5m"},
		{[]string{"--gateway-retry-budget-window", "1500ms"}, "--gateway-retry-budget-window 1.5s: must be whole seconds"},
		{[]string{"--gateway-breaker-failures", "0"}, "--gateway-breaker-failures 0: must be at least 1"},
		{[]string{"--gateway-breaker-ratio", "-0.5"}, "--gateway-breaker-ratio -0.5: must be a fraction"},
		{[]string{"--gateway-breaker-ratio", "+Inf"}, "--gateway-breaker-ratio +Inf: must be a fraction"},
		{[]string{"--gateway-breaker-min-requests", "0"}, "--gateway-breaker-min-requests 0: must be at least 1"},
		{[]string{"--gateway-breaker-window", "0s"}, "--gateway-breaker-window 0s: must be from 1s to 5m"},
		{[]string{"--gateway-breaker-cooldown", "0s"}, "--gateway-breaker-cooldown 0s: must be positive"},
		{[]string{"--gateway-retry-attempts", "three"}, `invalid argument "three" for "--gateway-retry-attempts"`},
	}
	for _, c := range cases {
		o, code, stderr := runServerCmd(t, c.args...)
		if o != nil || code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("server %v: started=%v exit %d, stderr %q; want a refusal saying %q", c.args, o != nil, code, stderr, c.want)
		}
	}
	// Every mistake is named at once, not one per attempt.
	_, _, stderr := runServerCmd(t, "--gateway-retry-attempts", "0", "--gateway-breaker-ratio", "2")
	if !strings.Contains(stderr, "--gateway-retry-attempts") || !strings.Contains(stderr, "--gateway-breaker-ratio") {
		t.Errorf("two bad flags: %q names not both", stderr)
	}
}

func TestServerHelpDocumentsResilienceFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"server", "--help"}, &stdout, &stderr, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, f := range []string{"--gateway-retry-attempts", "--gateway-try-timeout", "--gateway-deadline", "--gateway-retry-budget",
		"--gateway-breaker-failures", "--gateway-breaker-ratio", "--gateway-breaker-window", "--gateway-breaker-cooldown",
		"--gateway-no-fallback", "--gateway-upstream-timeout", "--gateway-max-body-bytes", "--gateway-openai-idempotent",
		"--otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if !strings.Contains(stdout.String(), f) {
			t.Errorf("server --help does not mention %s", f)
		}
	}
}
