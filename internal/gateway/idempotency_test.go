package gateway

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// countingModel is an upstream that counts its calls and answers with
// the call's number, so a replay is told from a second call; status
// answers that status instead of 200.
type countingModel struct {
	calls  atomic.Int64
	status atomic.Int64
	srv    *httptest.Server
}

func newCountingModel(t *testing.T) *countingModel {
	m := &countingModel{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := m.calls.Add(1)
		status := int(m.status.Load())
		if status == 0 {
			status = http.StatusOK
		}
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(status)
			for i := range 3 { // a streamed answer, flushed chunk by chunk
				fmt.Fprintf(w, "data: {\"call\":%d,\"chunk\":%d}\n\n", n, i)
				_ = http.NewResponseController(w).Flush()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"model_name":"m","outputs":[{"name":"call","shape":[1],"datatype":"INT64","data":[%d]}]}`, n)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func newIdempotencyHarness(t *testing.T, p IdempotencyPolicy) (*harness, *countingModel, *clock.Fake) {
	t.Helper()
	m := newCountingModel(t)
	clk := clock.NewFake(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	h := newHarness(t, func(c *Config) {
		c.Idempotency, c.Clock = p, clk
		c.Breaker = BreakerPolicy{Disabled: true}
		c.Retry = RetryPolicy{MaxAttempts: 1}
	}, route("m", "production", remote(t, 1, 100, m.srv.URL, runtime.ProtocolOIP)),
		route("chat", "production", remote(t, 1, 100, m.srv.URL, runtime.ProtocolOpenAI)))
	return h, m, clk
}

func withKey(k string, more ...string) []string {
	return append([]string{HeaderIdempotencyKey, k}, more...)
}

func TestIdempotentReplay(t *testing.T) {
	h, m, _ := newIdempotencyHarness(t, IdempotencyPolicy{})
	first, b1 := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("order-1")...)
	if first.StatusCode != http.StatusOK || first.Header.Get(HeaderIdempotentReplayed) != "" {
		t.Fatalf("first: %d %q %s", first.StatusCode, first.Header.Get(HeaderIdempotentReplayed), b1)
	}
	again, b2 := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("order-1")...)
	if again.StatusCode != http.StatusOK || again.Header.Get(HeaderIdempotentReplayed) != "true" || !bytes.Equal(b1, b2) ||
		again.Header.Get("Content-Type") != first.Header.Get("Content-Type") || again.Header.Get(HeaderVersion) != "" {
		t.Fatalf("replay: %d replayed %q type %q version %q body %s, want the first answer %s", again.StatusCode,
			again.Header.Get(HeaderIdempotentReplayed), again.Header.Get("Content-Type"), again.Header.Get(HeaderVersion), b2, b1)
	}
	if n := m.calls.Load(); n != 1 {
		t.Fatalf("model called %d times, want once", n)
	}
	// Another key, or none, calls the model.
	h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("order-2")...)
	h.do(http.MethodPost, "/v2/models/m/infer", inferBody)
	if n := m.calls.Load(); n != 3 {
		t.Fatalf("model called %d times, want 3", n)
	}

	// A streamed OpenAI answer is stored whole and replayed.
	chat := `{"model":"chat","stream":true,"messages":[]}`
	_, s1 := h.do(http.MethodPost, "/v1/chat/completions", chat, withKey("chat-1")...)
	resp, s2 := h.do(http.MethodPost, "/v1/chat/completions", chat, withKey("chat-1")...)
	if !bytes.Equal(s1, s2) || resp.Header.Get(HeaderIdempotentReplayed) != "true" || resp.Header.Get("Content-Type") != "text/event-stream" || bytes.Count(s1, []byte("data:")) != 3 {
		t.Fatalf("streamed replay %q (%s), first %q", s2, resp.Header.Get("Content-Type"), s1)
	}
	if n := m.calls.Load(); n != 4 {
		t.Fatalf("model called %d times, want 4", n)
	}
	h.settle()
	mm := gather(t, h.reg)
	if got := mm[`slipway_gateway_idempotent_replays_total{environment="production",model="m"}`]; got != 1 {
		t.Fatalf("idempotent_replays_total = %v, want 1", got)
	}
	// A replay is not a call of the version: its metrics count 3 requests of m.
	if got := mm[`slipway_gateway_requests_total{code="200",environment="production",model="m",version="1"}`]; got != 3 {
		t.Fatalf("version 1 of m counted %v requests, want 3 (replays excluded)", got)
	}
}

func TestIdempotencyKeyReusedForAnotherRequest(t *testing.T) {
	h, m, _ := newIdempotencyHarness(t, IdempotencyPolicy{})
	h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("k")...)
	other := strings.Replace(inferBody, "3.5", "4.5", 1)
	resp, b := h.do(http.MethodPost, "/v2/models/m/infer", other, withKey("k")...)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(oipError(t, b), "different request") {
		t.Fatalf("reused key: %d %s, want 422", resp.StatusCode, b)
	}
	// The same key for another version (path) is another request too.
	resp, _ = h.do(http.MethodPost, "/v2/models/m/versions/1/infer", inferBody, withKey("k")...)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other path: %d, want 422", resp.StatusCode)
	}
	// Keys are scoped per model and environment: the same key elsewhere is new.
	chat := `{"model":"chat","messages":[]}`
	if resp, _ := h.do(http.MethodPost, "/v1/chat/completions", chat, withKey("k")...); resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderIdempotentReplayed) != "" {
		t.Fatalf("same key, other model: %d replayed %q", resp.StatusCode, resp.Header.Get(HeaderIdempotentReplayed))
	}
	if n := m.calls.Load(); n != 2 {
		t.Fatalf("model called %d times, want 2", n)
	}
	for _, bad := range []string{strings.Repeat("k", 256), "tab\tkey", "é"} {
		resp, b := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey(bad)...)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("key %q: %d %s, want 400", bad, resp.StatusCode, b)
		}
	}
	h.settle()
	if got := gather(t, h.reg)[`slipway_gateway_idempotency_conflicts_total{environment="production",model="m",reason="mismatch"}`]; got != 2 {
		t.Fatalf("conflicts{mismatch} = %v, want 2", got)
	}
}

func TestIdempotencyKeysAreScopedPerCaller(t *testing.T) {
	m := newCountingModel(t)
	tokens := &tokenTable{}
	a := newHarness(t, func(c *Config) {
		c.Tokens = authVerifier(tokens)
	}, route("m", "production", remote(t, 1, 100, m.srv.URL, runtime.ProtocolOIP)))
	alice, _ := tokens.mint(t, "alice", domain.RoleViewer)
	bob, _ := tokens.mint(t, "bob", domain.RoleViewer)
	_, b1 := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("same", bearerHeader(alice)...)...)
	resp, b2 := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("same", bearerHeader(bob)...)...)
	if resp.Header.Get(HeaderIdempotentReplayed) != "" || bytes.Equal(b1, b2) {
		t.Fatalf("bob got alice's answer for the same key: %s", b2)
	}
	resp, b3 := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("same", bearerHeader(alice)...)...)
	if resp.Header.Get(HeaderIdempotentReplayed) != "true" || !bytes.Equal(b1, b3) {
		t.Fatalf("alice's replay: %s", b3)
	}
	if n := m.calls.Load(); n != 2 {
		t.Fatalf("model called %d times, want 2", n)
	}
}

func TestIdempotencyKeyInFlight(t *testing.T) {
	slow := newGate(t)
	h := newHarness(t, nil, route("m", "production", remote(t, 1, 100, slow.srv.URL, runtime.ProtocolOIP)))
	first := make(chan []byte, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v2/models/m/infer", strings.NewReader(inferBody))
		req.Header.Set(HeaderIdempotencyKey, "k")
		resp, err := h.client.Do(req)
		if err != nil {
			first <- nil
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- b
	}()
	h.sent++
	slow.wait(t)
	resp, b := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("k")...)
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("while in flight: %d Retry-After %q %s, want 409 with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	slow.open()
	b1 := <-first
	resp, b = h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("k")...)
	if resp.Header.Get(HeaderIdempotentReplayed) != "true" || !bytes.Equal(b, b1) {
		t.Fatalf("after the first finished: %d %s, want its answer %s", resp.StatusCode, b, b1)
	}
	if n := slow.hits.Load(); n != 1 {
		t.Fatalf("model called %d times, want 1", n)
	}
}

func TestIdempotencyFailuresAreNotStored(t *testing.T) {
	h, m, _ := newIdempotencyHarness(t, IdempotencyPolicy{})
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		m.status.Store(int64(status))
		key := fmt.Sprint("k", status)
		for i := range 2 {
			resp, _ := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey(key)...)
			if resp.StatusCode != status || resp.Header.Get(HeaderIdempotentReplayed) != "" {
				t.Fatalf("%d, try %d: %d replayed %q, want the model's %d again", status, i+1, resp.StatusCode, resp.Header.Get(HeaderIdempotentReplayed), status)
			}
		}
		// Once it works, the key takes the good answer.
		m.status.Store(0)
		h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey(key)...)
		if resp, _ := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey(key)...); resp.Header.Get(HeaderIdempotentReplayed) != "true" {
			t.Fatalf("%d then 200: the 200 was not stored", status)
		}
	}
	// A client error is the answer to that request: stored.
	m.status.Store(http.StatusBadRequest)
	h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("bad")...)
	m.status.Store(0)
	if resp, _ := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("bad")...); resp.StatusCode != http.StatusBadRequest || resp.Header.Get(HeaderIdempotentReplayed) != "true" {
		t.Fatalf("400: %d replayed %q, want the stored 400", resp.StatusCode, resp.Header.Get(HeaderIdempotentReplayed))
	}
	if n := m.calls.Load(); n != 3*3+1 {
		t.Fatalf("model called %d times, want 10", n)
	}
}

func TestIdempotencyKeysExpire(t *testing.T) {
	h, m, clk := newIdempotencyHarness(t, IdempotencyPolicy{TTL: time.Hour})
	h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("k")...)
	clk.Advance(59 * time.Minute)
	if resp, _ := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("k")...); resp.Header.Get(HeaderIdempotentReplayed) != "true" {
		t.Fatal("within the TTL: not replayed")
	}
	clk.Advance(time.Minute)
	if resp, _ := h.do(http.MethodPost, "/v2/models/m/infer", inferBody, withKey("k")...); resp.Header.Get(HeaderIdempotentReplayed) != "" {
		t.Fatal("after the TTL: replayed")
	}
	if n := m.calls.Load(); n != 2 {
		t.Fatalf("model called %d times, want 2", n)
	}
}

func TestIdempotencyStoreBounds(t *testing.T) {
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	fp := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	s := newIdempotencyStore(IdempotencyPolicy{MaxEntries: 3, MaxBytes: 100, MaxEntryBytes: 40})
	store := func(k string, n int) {
		t.Helper()
		v, e := s.begin(k, fp(k), now)
		if v != idemNew {
			t.Fatalf("%s: verdict %d, want new", k, v)
		}
		s.complete(e, true, 200, "text/plain", bytes.Repeat([]byte("x"), n))
	}
	verdict := func(k string) idemVerdict { v, _ := s.begin(k, fp(k), now); return v }

	// Over the per-entry cap: not stored, the key is free again.
	store("big", 41)
	if n, b := s.size(); n != 0 || b != 0 {
		t.Fatalf("an answer over the entry cap left %d keys, %d bytes", n, b)
	}
	// The entry count: the oldest stored answer makes room.
	store("a", 30)
	store("b", 30)
	store("c", 30)
	store("d", 10)
	if n, b := s.size(); n != 3 || b != 70 {
		t.Fatalf("after 4 keys: %d keys, %d bytes; want 3 and 70", n, b)
	}
	if verdict("b") != idemReplay || verdict("d") != idemReplay {
		t.Fatal("recent keys lost")
	}
	// The byte total: 40 more bytes evict the oldest until they fit.
	store("e", 40)
	if _, b := s.size(); b > 100 {
		t.Fatalf("%d bytes held, over the cap of 100", b)
	}
	if verdict("e") != idemReplay {
		t.Fatal("the newest answer was not stored")
	}
	// Requests in flight are never evicted: a store full of them serves
	// new keys without protection.
	s2 := newIdempotencyStore(IdempotencyPolicy{MaxEntries: 2})
	for _, k := range []string{"x", "y"} {
		if v, _ := s2.begin(k, fp(k), now); v != idemNew {
			t.Fatal(v)
		}
	}
	if v, _ := s2.begin("z", fp("z"), now); v != idemUntraced {
		t.Fatalf("full of requests in flight: verdict %d, want untraced", v)
	}
	if v, _ := s2.begin("x", fp("x"), now); v != idemInFlight {
		t.Fatalf("x: verdict %d, want in flight", v)
	}
}

func TestIdempotencyDefaults(t *testing.T) {
	p := IdempotencyPolicy{}.withDefaults()
	if p.TTL != 24*time.Hour || p.MaxEntries != 10_000 || p.MaxBytes != 64<<20 || p.MaxEntryBytes != 1<<20 {
		t.Fatalf("defaults %+v", p)
	}
	if newIdempotencyStore(IdempotencyPolicy{Disabled: true}) != nil {
		t.Fatal("a disabled store exists")
	}
}
