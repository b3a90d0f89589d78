package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestGatewayLimitsAndIdempotency drives the gateway's limits and
// idempotency keys through the real binary: a replayed answer that does
// not call the model again, a token's bucket running dry (429 with
// Retry-After) while another token's does not, a bad token refused, and
// the deployment's own rate limit set with `slipway routing set`.
func TestGatewayLimitsAndIdempotency(t *testing.T) {
	t.Parallel()
	// One token per 1000 s: no bucket refills while the test runs.
	srv := startServer(t, t.TempDir(), "--gateway-token-rate", "0.001", "--gateway-token-burst", "2")
	var calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet { // the readiness probe lists models
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"assistant","object":"model"}]}`)
			return
		}
		n := calls.Add(1)
		fmt.Fprintf(w, `{"id":"c%d","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"answer %d"},"finish_reason":"stop"}]}`, n, n)
	}))
	t.Cleanup(up.Close)

	c := srv.admin()
	c.ok("model", "create", "assistant")
	c.ok("version", "push", "assistant", "--format", "openai", "--set", "url="+up.URL)
	c.ok("deploy", "assistant", "1", "--env", "production")
	app := strings.TrimSpace(c.ok("token", "create", "--name", "app", "--role", "viewer"))
	other := strings.TrimSpace(c.ok("token", "create", "--name", "other", "--role", "viewer"))

	gw := srv.gatewayClient(t)
	body := []byte(`{"model":"assistant","messages":[{"role":"user","content":"hi"}]}`)
	as := func(token string, more ...string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + token}
		for i := 0; i+1 < len(more); i += 2 {
			h[more[i]] = more[i+1]
		}
		return h
	}

	// The same Idempotency-Key twice: one call, the same answer twice.
	first := gw.do(http.MethodPost, "/v1/chat/completions", body, as(app, "Idempotency-Key", "order-1"))
	again := gw.do(http.MethodPost, "/v1/chat/completions", body, as(app, "Idempotency-Key", "order-1"))
	if first.status != http.StatusOK || again.status != http.StatusOK || !bytes.Equal(first.body, again.body) ||
		again.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("idempotent pair:\n%s (replayed %q)\n%s (replayed %q)", first, first.header.Get("Idempotent-Replayed"), again, again.header.Get("Idempotent-Replayed"))
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the model was called %d times for one key, want 1", n)
	}
	// The key with another body is refused.
	reused := gw.do(http.MethodPost, "/v1/chat/completions", []byte(`{"model":"assistant","messages":[]}`), as(other, "Idempotency-Key", "order-1"))
	if reused.status != http.StatusOK { // other token: another scope, so a new key
		t.Fatalf("the key under another token: %s", reused)
	}

	// app's bucket (2) is spent: 429 with Retry-After, in OpenAI's shape.
	limited := gw.do(http.MethodPost, "/v1/chat/completions", body, as(app))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(limited.body, &e); err != nil || limited.status != http.StatusTooManyRequests || e.Error.Code != "rate_limit_exceeded" {
		t.Fatalf("over the token's rate: %s", limited)
	}
	if secs, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want whole seconds ≥ 1", limited.header.Get("Retry-After"))
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the model was called %d times, want 2", n)
	}

	// A forged token is refused before any limit.
	forged := gw.do(http.MethodPost, "/v1/chat/completions", body, as("slw_0123456789abcdef_"+strings.Repeat("A", 43)))
	if forged.status != http.StatusUnauthorized {
		t.Fatalf("forged token: %s", forged)
	}

	// The deployment's own limit, shared by every caller.
	c.ok("routing", "set", "assistant", "--env", "production", "--rate", "0.001", "--burst", "1")
	if r := gw.do(http.MethodPost, "/v1/chat/completions", body, as(other)); r.status != http.StatusOK {
		t.Fatalf("first request under the model's limit: %s", r)
	}
	if r := gw.do(http.MethodPost, "/v1/chat/completions", body, nil); r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), `model \"assistant\"`) {
		t.Fatalf("over the model's rate (anonymous caller with tokens left): %s", r)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("the model was called %d times, want 3", n)
	}

	prom := getText(t, "http://"+srv.addr+"/metrics", "")
	for _, m := range []struct {
		name   string
		labels map[string]string
	}{
		{"slipway_gateway_rate_limited_total", map[string]string{"model": "assistant", "scope": "token"}},
		{"slipway_gateway_rate_limited_total", map[string]string{"model": "assistant", "scope": "model"}},
		{"slipway_gateway_idempotent_replays_total", map[string]string{"model": "assistant"}},
	} {
		if got := promSum(prom, m.name, m.labels); got != 1 {
			t.Errorf("%s%v = %v, want 1", m.name, m.labels, got)
		}
	}
}

// TestGatewayBodyCapReachesInProcessRuntimes raises --gateway-max-body-bytes
// past the 8 MiB default: a batch between the two reaches the in-process
// xgboost runtime and is answered whole — the runtime's own cap follows
// the gateway's instead of refusing it with 413 — while one over the
// raised cap is still refused.
func TestGatewayBodyCapReachesInProcessRuntimes(t *testing.T) {
	t.Parallel()
	const limit = 12 << 20
	srv := startServer(t, t.TempDir(), "--gateway-max-body-bytes", strconv.Itoa(limit))
	c := srv.admin()
	c.ok("model", "create", "cancer")
	c.ok("version", "push", "cancer", example(t, "v1.json"), "--format", "xgboost-json")
	c.ok("deploy", "cancer", "1", "--env", "production")
	gw := srv.gatewayClient(t)

	rows := loadParity(t, "v1.json").Rows
	batch := func(minBytes int) ([]byte, int) { // rows repeated until the body holds minBytes
		n := len(rows)
		for {
			all := make([][]*float64, n)
			for i := range all {
				all[i] = rows[i%len(rows)]
			}
			b := inferBody(t, all)
			if len(b) >= minBytes {
				return b, n
			}
			n = n*minBytes/len(b) + len(rows)
		}
	}
	body, n := batch(9 << 20)
	if len(body) > limit {
		t.Fatalf("test batch is %d bytes, over the cap it should pass", len(body))
	}
	r := gw.do(http.MethodPost, "/v2/models/cancer/infer", body, nil)
	var out inferAnswer
	if r.status != http.StatusOK || json.Unmarshal(r.body, &out) != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != n {
		t.Fatalf("%d-byte batch of %d rows under the raised cap: %.300s", len(body), n, r)
	}
	big, _ := batch(limit + 1)
	if r := gw.do(http.MethodPost, "/v2/models/cancer/infer", big, nil); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d-byte batch over the cap: %.300s", len(big), r)
	}
}
