package cli

import (
	"strings"
	"testing"
	"time"
)

func TestServerLimitDefaults(t *testing.T) {
	o, code, stderr := runServerCmd(t)
	if code != 0 || o == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := GatewayLimits{TokenCacheTTL: 5 * time.Second, MaxResponseBytes: 64 << 20, IdempotencyTTL: 24 * time.Hour, IdempotencyMaxBytes: 64 << 20}
	if o.Limits != want {
		t.Errorf("defaults %+v\nwant     %+v", o.Limits, want)
	}
}

func TestServerLimitFlagsParsed(t *testing.T) {
	o, code, stderr := runServerCmd(t, "--gateway-token-rate", "2.5", "--gateway-token-burst", "10", "--gateway-require-token",
		"--gateway-token-cache-ttl", "1s", "--gateway-max-response-bytes", "0", "--gateway-idempotency-ttl", "1h",
		"--gateway-idempotency-max-bytes", "1024")
	if code != 0 || o == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := GatewayLimits{TokenRate: 2.5, TokenBurst: 10, RequireToken: true, TokenCacheTTL: time.Second,
		MaxResponseBytes: -1, IdempotencyTTL: time.Hour, IdempotencyMaxBytes: 1024} // 0: unlimited, carried as -1
	if o.Limits != want {
		t.Errorf("parsed %+v\nwant   %+v", o.Limits, want)
	}
	o, code, stderr = runServerCmd(t, "--gateway-idempotency-ttl", "0")
	if code != 0 || o == nil || o.Limits.IdempotencyTTL != -1 {
		t.Fatalf("--gateway-idempotency-ttl 0: exit %d, %+v %s; want -1 (off)", code, o, stderr)
	}
}

func TestServerLimitFlagsRefused(t *testing.T) {
	for _, c := range []struct{ args []string }{
		{[]string{"--gateway-token-rate", "-1"}},
		{[]string{"--gateway-token-rate", "NaN"}},
		{[]string{"--gateway-token-burst", "5"}},
		{[]string{"--gateway-token-rate", "1", "--gateway-token-burst", "-1"}},
		{[]string{"--gateway-token-cache-ttl", "0s"}},
		{[]string{"--gateway-token-cache-ttl", "1h"}},
		{[]string{"--gateway-max-response-bytes", "-5"}},
		{[]string{"--gateway-idempotency-ttl", "-1s"}},
		{[]string{"--gateway-idempotency-ttl", "200h"}},
		{[]string{"--gateway-idempotency-max-bytes", "0"}},
	} {
		o, code, stderr := runServerCmd(t, c.args...)
		if code == 0 || o != nil {
			t.Errorf("%v: accepted", c.args)
			continue
		}
		if !strings.Contains(stderr, c.args[len(c.args)-2]) {
			t.Errorf("%v: the error does not name the flag: %s", c.args, stderr)
		}
	}
}
