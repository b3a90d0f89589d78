package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// expect429 checks a rate-limit refusal: 429, Retry-After in seconds, the
// protocol's error body.
func expect429(t *testing.T, resp *http.Response, b []byte, retryAfter string) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != retryAfter {
		t.Fatalf("got %d Retry-After %q (%s), want 429 with Retry-After %s", resp.StatusCode, resp.Header.Get("Retry-After"), b, retryAfter)
	}
}

func TestTokenRateLimit(t *testing.T) {
	a := newAuthHarness(t, false, func(c *Config) {
		c.Limits = LimitPolicy{TokenRate: 0.5, TokenBurst: 2}
	})
	alice, _ := a.tokens.mint(t, "alice", domain.RoleViewer)
	bob, _ := a.tokens.mint(t, "bob", domain.RoleViewer)
	infer := func(h ...string) (*http.Response, []byte) {
		return a.do(http.MethodPost, "/v2/models/m/infer", inferBody, h...)
	}
	for i := range 2 {
		if resp, b := infer(bearerHeader(alice)...); resp.StatusCode != http.StatusOK {
			t.Fatalf("alice's request %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
	resp, b := infer(bearerHeader(alice)...)
	expect429(t, resp, b, "2") // one token per 2 s
	if msg := oipError(t, b); !strings.Contains(msg, "this token") {
		t.Fatalf("message %q does not name the token's limit", msg)
	}
	// Bob and anonymous callers have buckets of their own.
	for _, h := range [][]string{bearerHeader(bob), bearerHeader(bob), nil, nil} {
		if resp, b := infer(h...); resp.StatusCode != http.StatusOK {
			t.Fatalf("another caller: %d %s", resp.StatusCode, b)
		}
	}
	resp, b = infer()
	expect429(t, resp, b, "2")
	if msg := oipError(t, b); !strings.Contains(msg, "without a token") {
		t.Fatalf("anonymous refusal %q does not say so", msg)
	}
	// Metadata is not limited.
	if resp, _ := a.do(http.MethodGet, "/v2/models/m", "", bearerHeader(alice)...); resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata under an empty bucket: %d", resp.StatusCode)
	}

	// Time refills the bucket: after 1 s half a token is back (retry in
	// 1 s), after 2 s a whole one.
	a.clk.Advance(time.Second)
	resp, b = infer(bearerHeader(alice)...)
	expect429(t, resp, b, "1")
	a.clk.Advance(time.Second)
	if resp, b := infer(bearerHeader(alice)...); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the refill: %d %s", resp.StatusCode, b)
	}
	if n := a.up.hits.Load(); n != 8 {
		t.Fatalf("the model was called %d times, want 8 (7 infers and the metadata; refused requests never reach it)", n)
	}
	a.settle()
	m := gather(t, a.reg)
	if got := m[`slipway_gateway_rate_limited_total{environment="production",model="m",scope="token"}`]; got != 3 {
		t.Fatalf("rate_limited_total{scope=token} = %v, want 3", got)
	}
}

func TestModelRateLimitFollowsTheRoutingPolicy(t *testing.T) {
	clk := clock.NewFake(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	up := newFailingUpstream(t, upOK)
	limited := func(rev int64, rps float64, burst int) *deployment.Route {
		r := route("chat", "production", up.version(t, 1, 100, runtime.ProtocolOpenAI))
		r.Revision, r.Limits = rev, domain.RouteLimits{RequestsPerSecond: rps, Burst: burst}
		return r
	}
	h := newHarness(t, func(c *Config) {
		c.Clock = clk
		c.Limits.TokenRate = 1000 // the deployment's bucket empties first
	}, limited(1, 1, 2))
	chat := func() (*http.Response, []byte) {
		return h.do(http.MethodPost, "/v1/chat/completions", chatBody)
	}
	for range 2 {
		if resp, b := chat(); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	resp, b := chat()
	expect429(t, resp, b, "1")
	var e openAIError
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code != "rate_limit_exceeded" || !strings.Contains(e.Error.Message, `model "chat"`) {
		t.Fatalf("OpenAI refusal body %s", b)
	}

	// A new revision with the same limits keeps the (empty) bucket; new
	// limits replace it with a full one.
	h.routes.t.Store(deployment.NewTable(limited(2, 1, 2)))
	resp, b = chat()
	expect429(t, resp, b, "1")
	h.routes.t.Store(deployment.NewTable(limited(3, 5, 3)))
	for range 3 {
		if resp, b := chat(); resp.StatusCode != http.StatusOK {
			t.Fatalf("after new limits: %d %s", resp.StatusCode, b)
		}
	}
	resp, b = chat()
	expect429(t, resp, b, "1")
	// No limit at all: nothing is refused.
	h.routes.t.Store(deployment.NewTable(limited(4, 0, 0)))
	for range 10 {
		if resp, b := chat(); resp.StatusCode != http.StatusOK {
			t.Fatalf("without limits: %d %s", resp.StatusCode, b)
		}
	}
	if n := up.hits.Load(); n != 15 {
		t.Fatalf("model called %d times, want 15", n)
	}
	h.settle()
	if got := gather(t, h.reg)[`slipway_gateway_rate_limited_total{environment="production",model="chat",scope="model"}`]; got != 3 {
		t.Fatalf("rate_limited_total{scope=model} = %v, want 3", got)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 90 * time.Second: 90} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}

func TestCallerBucketsAreBounded(t *testing.T) {
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	c := newCallerBuckets(rate.Limit(10), 10, 256) // idle after 1 s, 4 per shard
	for i := range 5000 {
		c.take(callerKey{anonymous: true, id: fmt.Sprintf("10.0.%d.%d", i/256, i%256)}, now)
	}
	if n := c.len(); n > 256 {
		t.Fatalf("%d callers kept, want at most 256", n)
	}

	// Idle buckets are dropped once a shard next adds a caller, a minute
	// on: one new caller per shard empties every shard of the old ones.
	now = now.Add(2 * time.Minute)
	seen := map[uint64]bool{}
	for i := 0; len(seen) < callerShards; i++ {
		k := callerKey{id: fmt.Sprintf("token-%d", i)}
		if s := maphash.String(c.seed, k.id) % callerShards; !seen[s] {
			seen[s] = true
			c.take(k, now)
		}
	}
	if n := c.len(); n != callerShards {
		t.Fatalf("%d callers kept after the sweep, want the %d new ones", n, callerShards)
	}

	// A bucket in use is kept, and keeps its state.
	k := callerKey{id: "busy"}
	for range 10 {
		c.take(k, now)
	}
	if _, ok := c.take(k, now); ok {
		t.Fatal("an emptied bucket gave a token")
	}
}

// slotsHeld sums the concurrency slots every version holds.
func slotsHeld(g *Gateway) int64 {
	var n int64
	for _, u := range *g.upstreams.m.Load() {
		n += u.slots.Load()
	}
	return n
}

// gate is an upstream that holds every request until released, telling
// the test when one arrived.
type gate struct {
	arrived chan struct{}
	release chan struct{}
	hits    atomic.Int64
	srv     *httptest.Server
}

func newGate(t *testing.T) *gate {
	g := &gate{arrived: make(chan struct{}, 100), release: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		g.hits.Add(1)
		g.arrived <- struct{}{}
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
		(&fakeModel{}).ServeHTTP(w, r.WithContext(context.Background()))
	}))
	t.Cleanup(g.srv.Close)
	t.Cleanup(g.open)
	return g
}

var gateOpen sync.Map // *gate → struct{}: closed once

func (g *gate) open() {
	if _, done := gateOpen.LoadOrStore(g, struct{}{}); !done {
		close(g.release)
	}
}

func (g *gate) wait(t *testing.T) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no request reached the upstream")
	}
}

func TestConcurrencyLimitFallsBackThenRefuses(t *testing.T) {
	slow := newGate(t)
	fast := newFailingUpstream(t, upOK)
	r := route("m", "production", remote(t, 1, 100, slow.srv.URL, runtime.ProtocolOIP), fast.version(t, 2, 0, runtime.ProtocolOIP))
	r.Stable, r.Limits = 2, domain.RouteLimits{MaxConcurrency: 1}
	h := newHarness(t, nil, r)

	// The first request holds version 1's only slot.
	first := make(chan int, 1)
	go func() {
		resp, err := h.client.Post(h.srv.URL+"/v2/models/m/infer", "application/json", strings.NewReader(inferBody))
		if err != nil {
			first <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	h.sent++
	slow.wait(t)

	// The next goes to the stable version, and says so.
	resp, b := h.do(http.MethodPost, "/v2/models/m/infer", inferBody)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderVersion) != "2" || resp.Header.Get(HeaderFallbackFrom) != "1" {
		t.Fatalf("at the limit: %d version %q from %q %s, want 200 from the stable version 2", resp.StatusCode, resp.Header.Get(HeaderVersion), resp.Header.Get(HeaderFallbackFrom), b)
	}
	// Pinned to version 1, it may not fall back: 503 at once.
	resp, b = h.do(http.MethodPost, "/v2/models/m/versions/1/infer", inferBody)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("pinned at the limit: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if msg := oipError(t, b); !strings.Contains(msg, "limit of 1 requests in flight") {
		t.Fatalf("503 message %q", msg)
	}
	if n := slow.hits.Load(); n != 1 {
		t.Fatalf("the busy version got %d requests, want 1", n)
	}

	slow.open()
	if code := <-first; code != http.StatusOK {
		t.Fatalf("the first request: %d", code)
	}
	h.settle()
	if n := slotsHeld(h.gw); n != 0 {
		t.Fatalf("%d slots still held after every request finished", n)
	}
	m := gather(t, h.reg)
	if got := m[`slipway_gateway_concurrency_rejected_total{environment="production",model="m",version="1"}`]; got != 2 {
		t.Fatalf("concurrency_rejected_total = %v, want 2", got)
	}
	// The slot is free again: version 1 answers.
	if resp, _ := h.do(http.MethodPost, "/v2/models/m/versions/1/infer", inferBody); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the release: %d", resp.StatusCode)
	}
}

// panicking is an in-process version that fails hard.
type panicking struct{}

func (panicking) ServeHTTP(http.ResponseWriter, *http.Request) { panic("model bug") }

func TestConcurrencySlotsNeverLeak(t *testing.T) {
	ok := newFailingUpstream(t, upOK)
	kinds := []string{up503, up500, upReset, upRefuse, upGarbage, upHang}
	var vs []deployment.RouteVersion
	for i, k := range kinds {
		vs = append(vs, newFailingUpstream(t, k).version(t, i+1, 0, runtime.ProtocolOIP))
	}
	stable := len(kinds) + 1
	vs = append(vs, ok.version(t, stable, 100, runtime.ProtocolOIP), inProcess(stable+1, 0, panicking{}))
	r := route("m", "production", vs...)
	r.Stable, r.Limits = stable, domain.RouteLimits{MaxConcurrency: 2}
	sl := &sleeps{}
	h := newHarness(t, func(c *Config) {
		c.Sleep = sl.sleep
		c.Retry = RetryPolicy{TryTimeout: 200 * time.Millisecond, Deadline: 5 * time.Second}
		c.Breaker = BreakerPolicy{Disabled: true}
	}, r)

	for v := 1; v <= stable+1; v++ {
		// Pinned: retries, then the failure is answered.
		h.doCtx(http.MethodPost, fmt.Sprintf("/v2/models/m/versions/%d/infer", v), inferBody)
		h.settle()
		if n := slotsHeld(h.gw); n != 0 {
			t.Fatalf("pinned to version %d (%v): %d slots held after the answer", v, kindOf(kinds, v), n)
		}
	}
	// Routed to each failing version in turn: retries, then fallback.
	for v := 1; v <= len(kinds); v++ {
		vs := append([]deployment.RouteVersion(nil), r.Versions...)
		for i := range vs {
			vs[i].Weight = 0
			if vs[i].Version == v {
				vs[i].Weight = 100
			}
		}
		rr := *r
		rr.Versions = vs
		h.routes.t.Store(deployment.NewTable(&rr))
		h.doCtx(http.MethodPost, "/v2/models/m/infer", inferBody)
		h.settle()
		if n := slotsHeld(h.gw); n != 0 {
			t.Fatalf("routed to version %d (%s): %d slots held after the answer", v, kinds[v-1], n)
		}
	}
	// A caller that goes away mid-call.
	held := newGate(t)
	rr := *r
	rr.Versions = append(append([]deployment.RouteVersion(nil), r.Versions...), remote(t, stable+2, 0, held.srv.URL, runtime.ProtocolOIP))
	h.routes.t.Store(deployment.NewTable(&rr))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v2/models/m/versions/%d/infer", h.srv.URL, stable+2), strings.NewReader(inferBody))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := h.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	h.sent++
	held.wait(t)
	if n := slotsHeld(h.gw); n != 1 {
		t.Fatalf("a call in flight holds %d slots, want 1", n)
	}
	cancel()
	<-done
	h.settle()
	if n := slotsHeld(h.gw); n != 0 {
		t.Fatalf("after the caller went away: %d slots held", n)
	}
}

func kindOf(kinds []string, v int) string {
	if v <= len(kinds) {
		return kinds[v-1]
	}
	return fmt.Sprintf("version %d", v)
}

func TestConcurrencyLimitUnderLoad(t *testing.T) {
	up := newFailingUpstream(t, upOK)
	r := route("m", "production", up.version(t, 1, 50, runtime.ProtocolOIP), up.version(t, 2, 50, runtime.ProtocolOIP))
	r.Stable, r.Limits = 2, domain.RouteLimits{MaxConcurrency: 2}
	h := newHarness(t, nil, r)
	var wg sync.WaitGroup
	var okCount, busy atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 25 {
				resp, err := h.client.Post(h.srv.URL+"/v2/models/m/infer", "application/json", strings.NewReader(inferBody))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					okCount.Add(1)
				case http.StatusServiceUnavailable:
					busy.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	h.sent += 200
	h.settle()
	if okCount.Load()+busy.Load() != 200 || okCount.Load() == 0 {
		t.Fatalf("%d answered, %d refused, of 200", okCount.Load(), busy.Load())
	}
	if n := slotsHeld(h.gw); n != 0 {
		t.Fatalf("%d slots held after the load", n)
	}
}

// bigAnswer is an upstream answering n bytes: with Content-Length, or
// streamed in flushed chunks without one.
func bigAnswer(t *testing.T, n int, stream bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		chunk := strings.Repeat("x", 100)
		if stream {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < n; i += len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
				if err := http.NewResponseController(w).Flush(); err != nil {
					return
				}
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(n))
		_, _ = io.WriteString(w, strings.Repeat("x", n))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// inProcessAnswer is an in-process version answering like bigAnswer.
type inProcessAnswer struct {
	n      int
	stream bool
}

func (a inProcessAnswer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.stream {
		// WriteJSON declares the length, as the xgboost runtime's answers do.
		oip.WriteJSON(w, strings.Repeat("x", a.n-3)) // a JSON string and a newline
		return
	}
	for i := 0; i < a.n; i += 100 {
		if _, err := io.WriteString(w, strings.Repeat("y", 100)); err != nil {
			return // the gateway refused the rest
		}
		_ = http.NewResponseController(w).Flush()
	}
}

func TestResponseCap(t *testing.T) {
	const limit = 1000
	h := newHarness(t, func(c *Config) { c.Limits.MaxResponseBytes = limit },
		route("declared", "production", remote(t, 1, 100, bigAnswer(t, 5000, false), runtime.ProtocolOpenAI)),
		route("streamed", "production", remote(t, 1, 100, bigAnswer(t, 5000, true), runtime.ProtocolOpenAI)),
		route("small", "production", remote(t, 1, 100, bigAnswer(t, 900, true), runtime.ProtocolOpenAI)),
		route("local", "production", inProcess(1, 100, inProcessAnswer{n: 5000})),
		route("localstream", "production", inProcess(1, 100, inProcessAnswer{n: 5000, stream: true})),
	)
	post := func(path, body string) (*http.Response, []byte, error) {
		resp, err := h.client.Post(h.srv.URL+path, "application/json", strings.NewReader(body))
		h.sent++
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	chat := func(model string) string { return `{"model":"` + model + `","stream":true}` }

	// Declared too large: 502 before any of it is sent, in the protocol's shape.
	resp, b, err := post("/v1/chat/completions", chat("declared"))
	var e openAIError
	if err != nil || resp.StatusCode != http.StatusBadGateway || json.Unmarshal(b, &e) != nil || e.Error.Code != "response_too_large" {
		t.Fatalf("declared 5000 bytes: %v %v %s, want 502 response_too_large", err, resp, b)
	}
	resp, b, err = post("/v2/models/local/infer", inferBody)
	if err != nil || resp.StatusCode != http.StatusBadGateway || !strings.Contains(oipError(t, b), "limit of 1000 bytes") {
		t.Fatalf("in-process, declared 5000 bytes: %v %v %s", err, resp, b)
	}
	// Streamed past the cap: cut off — the client never gets a whole-looking answer.
	for _, p := range []struct{ path, body string }{
		{"/v1/chat/completions", chat("streamed")},
		{"/v2/models/localstream/infer", inferBody},
	} {
		resp, b, err = post(p.path, p.body)
		if err == nil {
			t.Fatalf("%s: read %d bytes with status %d and no error, want the answer cut off", p.path, len(b), resp.StatusCode)
		}
		if len(b) > limit {
			t.Fatalf("%s: %d bytes reached the client, more than the cap", p.path, len(b))
		}
	}
	// Under the cap: whole.
	if resp, b, err = post("/v1/chat/completions", chat("small")); err != nil || resp.StatusCode != http.StatusOK || len(b) != 900 {
		t.Fatalf("900 bytes: %v %v, %d bytes", err, resp, len(b))
	}
	h.settle()
	m := gather(t, h.reg)
	for _, model := range []string{"declared", "streamed", "local", "localstream"} {
		if got := m[`slipway_gateway_requests_total{code="502",environment="production",model="`+model+`",version="1"}`]; got != 1 {
			t.Errorf("%s: requests_total{code=502} = %v, want 1", model, got)
		}
		if got := m[`slipway_gateway_responses_too_large_total{environment="production",model="`+model+`",version="1"}`]; got != 1 {
			t.Errorf("%s: responses_too_large_total = %v, want 1", model, got)
		}
	}
}

func TestResponseCapSetting(t *testing.T) {
	for set, want := range map[int64]int64{0: DefaultMaxResponseBytes, -1: 0, 4096: 4096} {
		if got := newLimits(LimitPolicy{MaxResponseBytes: set}).maxResponse; got != want {
			t.Errorf("MaxResponseBytes %d: cap %d, want %d (0: unlimited)", set, got, want)
		}
	}
}

// A refused request reached no version: it must not weigh on the
// version's figures, which rollout analysis judges.
func TestRateLimitedRequestsAreNotAVersionsTraffic(t *testing.T) {
	up := newFailingUpstream(t, upOK)
	r := route("m", "production", up.version(t, 1, 100, runtime.ProtocolOIP))
	r.Limits = domain.RouteLimits{RequestsPerSecond: 1, Burst: 1}
	h := newHarness(t, func(c *Config) { c.Clock = clock.NewFake(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) }, r)
	h.do(http.MethodPost, "/v2/models/m/infer", inferBody)
	resp, b := h.do(http.MethodPost, "/v2/models/m/infer", inferBody)
	expect429(t, resp, b, "1")
	if v := resp.Header.Get(HeaderVersion); v != "" {
		t.Fatalf("a 429 names version %q", v)
	}
	h.settle()
	m := gather(t, h.reg)
	if got := m[`slipway_gateway_requests_total{code="429",environment="production",model="m",version="1"}`]; got != 0 {
		t.Fatalf("version 1 counted %v refused requests", got)
	}
	if got := m[`slipway_gateway_unrouted_requests_total{code="429"}`]; got != 1 {
		t.Fatalf("unrouted{429} = %v, want 1", got)
	}
}
