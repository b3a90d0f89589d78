package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime"
)

const openAIChat = `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`

// Retries happen only where they cannot make things worse: a request the
// model never saw, or one it may have seen when the call is idempotent.
func TestRetriesOnlyWhenSafe(t *testing.T) {
	const key = "Idempotency-Key"
	cases := []struct {
		upstream   string
		openAI     bool
		header     []string
		idemConfig bool // RetryPolicy.OpenAIIdempotent
		hits       int
		status     int
	}{
		{upRefuse, false, nil, false, 3, 502},
		{upRefuse, true, nil, false, 3, 502}, // never sent: safe for any call
		{upReset, false, nil, false, 3, 502},
		{upReset, true, nil, false, 1, 502},
		{upReset, true, []string{key, "k1"}, false, 3, 502},
		{up503, false, nil, false, 3, 503},
		{up503, true, nil, false, 1, 503},
		{up503, true, []string{key, "k2"}, false, 3, 503},
		{up503, true, nil, true, 3, 503},
		{up500, false, nil, false, 1, 500}, // a model error is an answer
		{upGarbage, false, nil, false, 3, 502},
		{upGarbage, true, nil, false, 1, 502},
		{upHang, false, nil, false, 3, 504},
		{upHang, true, nil, false, 1, 504},
		{upSlowOnce, false, nil, false, 2, 200},
		{upSlowOnce, true, nil, false, 1, 504},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s/openai=%v/key=%v/config=%v", c.upstream, c.openAI, c.header != nil, c.idemConfig)
		t.Run(name, func(t *testing.T) {
			up := newFailingUpstream(t, c.upstream)
			proto, model, path, body := runtime.ProtocolOIP, "fraud", "/v2/models/fraud/infer", inferBody
			if c.openAI {
				proto, model, path, body = runtime.ProtocolOpenAI, "chat", "/v1/chat/completions", openAIChat
			}
			var sl sleeps
			h := newHarness(t, func(cfg *Config) {
				// The per-try timeout must cut the hanging first request but
				// never an answering one, however loaded the machine: hangs
				// hang until released, so a generous timeout costs only time.
				cfg.Retry = RetryPolicy{TryTimeout: time.Second, Deadline: 10 * time.Second, OpenAIIdempotent: c.idemConfig}
				cfg.Breaker.Disabled = true
				cfg.Sleep = sl.sleep
			}, route(model, "production", up.version(t, 1, 100, proto)))
			resp, b := h.doCtx("POST", path, body, c.header...)
			if resp.StatusCode != c.status {
				t.Errorf("status %d %s, want %d", resp.StatusCode, b, c.status)
			}
			if got := up.hits.Load(); got != int64(c.hits) {
				t.Errorf("upstream reached %d times, want %d", got, c.hits)
			}
			if c.status == 503 && !strings.Contains(string(b), "overloaded") {
				t.Errorf("the last 503 is not the upstream's own answer: %s", b)
			}
			// Backoff: one wait per retry, full jitter under 5·2^n ms.
			ws := sl.all()
			if len(ws) != c.hits-1 {
				t.Errorf("%d backoff waits for %d attempts", len(ws), c.hits)
			}
			for n, d := range ws {
				if d < 0 || d >= (5*time.Millisecond)<<n {
					t.Errorf("wait before retry %d is %v, outside [0, %v)", n+1, d, (5*time.Millisecond)<<n)
				}
			}
			h.settle()
			retried := gather(t, h.reg)[fmt.Sprintf(`slipway_gateway_retries_total{environment="production",model=%q,outcome="retried",version="1"}`, model)]
			if int(retried) != c.hits-1 {
				t.Errorf("retries_total{outcome=retried} = %v, want %d", retried, c.hits-1)
			}
			// Every attempt is in the version's window.
			if w, _ := h.rec.Snapshot(model, "production")[0].Window("10s"); w.Count != uint64(c.hits) {
				t.Errorf("window counted %d attempts, want %d", w.Count, c.hits)
			}
		})
	}
}

// A streamed answer that breaks off is never retried: the client already
// has part of it.
func TestStreamedAnswerNeverRetried(t *testing.T) {
	var hits atomic.Int64
	up := newOpenAIServer(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n")
		w.(http.Flusher).Flush()
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close() // the model server dies mid-answer
		}
	})
	stable := newFailingUpstream(t, upOK)
	h := newHarness(t, func(c *Config) { c.Retry.OpenAIIdempotent = true; c.Sleep = (&sleeps{}).sleep },
		withStable(route("chat", "production", stable.version(t, 1, 0, runtime.ProtocolOpenAI), llmVersion(t, 2, 100, up.URL)), 1))
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"chat","stream":true}`))
	req.Header.Set("Idempotency-Key", "k")
	h.sent++
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "one") || err == nil || resp.Header.Get(HeaderVersion) != "2" {
		t.Errorf("stream: %d %q err %v, want the first event, then a cut-off", resp.StatusCode, b, err)
	}
	h.settle()
	if hits.Load() != 1 || stable.hits.Load() != 0 {
		t.Errorf("a streamed answer was repeated: canary %d, stable %d calls", hits.Load(), stable.hits.Load())
	}
	if got := gather(t, h.reg)[`slipway_gateway_requests_total{code="502",environment="production",model="chat",version="2"}`]; got != 1 {
		t.Errorf("the cut-off stream is not recorded as 502: %v", got)
	}
}

// A version whose every call fails gets at most 20 % more attempts than
// requests, plus the floor: the budget holds under concurrency.
func TestRetryBudgetHoldsUnderFailingFleet(t *testing.T) {
	up := newFailingUpstream(t, up503)
	clk := clock.NewFake(time.Unix(1_000_000, 0)) // one second: the floor counts once
	h := newHarness(t, func(c *Config) {
		c.Breaker.Disabled = true // the breaker would stop the traffic itself
		c.Clock = clk
		c.Sleep = (&sleeps{}).sleep
	}, route("fraud", "production", up.version(t, 1, 100, runtime.ProtocolOIP)))
	const requests, workers = 400, 8
	var wg sync.WaitGroup
	var non503 atomic.Int64
	for range workers {
		wg.Go(func() {
			for range requests / workers {
				resp, err := h.client.Post(h.srv.URL+"/v2/models/fraud/infer", "application/json", strings.NewReader(inferBody))
				if err != nil {
					non503.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 503 {
					non503.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if non503.Load() != 0 {
		t.Errorf("%d requests did not get the upstream's 503", non503.Load())
	}
	hits := up.hits.Load()
	if limit := int64(requests + requests/5 + 3); hits > limit || hits <= requests {
		t.Errorf("upstream reached %d times for %d requests, want more than %d (some retries) and at most %d", hits, requests, requests, limit)
	}
	g := gather(t, h.reg)
	retried := g[`slipway_gateway_retries_total{environment="production",model="fraud",outcome="retried",version="1"}`]
	exhausted := g[`slipway_gateway_retries_total{environment="production",model="fraud",outcome="budget_exhausted",version="1"}`]
	if int64(retried) != hits-requests || exhausted < requests/2 {
		t.Errorf("retries_total: retried %v (want %d), budget_exhausted %v", retried, hits-requests, exhausted)
	}
}

// A canary's breaker opens on failures; its traffic goes to the stable
// version; after the cool-down one probe goes to the canary, a failed
// probe reopens the breaker, a good one closes it. No sleeps: the
// breaker's clock is moved by hand.
func TestBreakerOpenFallbackHalfOpenClosed(t *testing.T) {
	var mode atomic.Value // "fail", "ok" or "block"
	mode.Store("fail")
	var canaryHits atomic.Int64
	entered, release := make(chan struct{}, 1), make(chan struct{})
	canary := newOpenAIServer(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		canaryHits.Add(1)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		switch mode.Load() {
		case "fail":
			http.Error(w, "model crashed", http.StatusInternalServerError)
			return
		case "block":
			entered <- struct{}{}
			<-release
		}
		(&fakeModel{}).ServeHTTP(w, r)
	})
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	h := newHarness(t, func(c *Config) {
		c.Clock = clk
		c.Breaker = BreakerPolicy{ConsecutiveFailures: 3, CoolDown: 5 * time.Second}
	}, withStable(route("fraud", "production",
		inProcess(1, 0, &fakeModel{}), remote(t, 2, 100, canary.URL, runtime.ProtocolOIP)), 1))
	infer := func() (*http.Response, []byte) { return h.doCtx("POST", "/v2/models/fraud/infer", inferBody) }
	expect := func(step string, status int, version, from string) {
		t.Helper()
		resp, b := infer()
		if resp.StatusCode != status || resp.Header.Get(HeaderVersion) != version || resp.Header.Get(HeaderFallbackFrom) != from {
			t.Fatalf("%s: %d %s version %q fallback-from %q; want %d, version %s, from %q", step, resp.StatusCode, b,
				resp.Header.Get(HeaderVersion), resp.Header.Get(HeaderFallbackFrom), status, version, from)
		}
	}
	breaker := func(step string, want metrics.BreakerState) {
		t.Helper()
		h.settle()
		for _, v := range h.rec.Snapshot("fraud", "production") {
			if v.Version == 2 && v.Breaker != want {
				t.Fatalf("%s: snapshot shows breaker %q, want %q", step, v.Breaker, want)
			}
		}
		gauge := map[metrics.BreakerState]float64{metrics.BreakerClosed: 0, metrics.BreakerHalfOpen: 1, metrics.BreakerOpen: 2}[want]
		if got := gather(t, h.reg)[`slipway_gateway_breaker_state{environment="production",model="fraud",version="2"}`]; got != gauge {
			t.Fatalf("%s: breaker gauge %v, want %v", step, got, gauge)
		}
	}

	// Closed: failures reach the client (a 500 is the model's answer).
	for range 3 {
		expect("canary failing, breaker closed", 500, "2", "")
	}
	breaker("three failures in a row", metrics.BreakerOpen)
	// Open: the stable version answers, saying so.
	for range 4 {
		expect("breaker open", 200, "1", "2")
	}
	if canaryHits.Load() != 3 {
		t.Fatalf("the canary was called %d times with its breaker open", canaryHits.Load())
	}
	// Half-open: after the cool-down one probe reaches the canary; it
	// fails, and the breaker opens again.
	clk.Advance(5 * time.Second)
	expect("the probe fails", 500, "2", "")
	breaker("probe failed", metrics.BreakerOpen)
	expect("open again", 200, "1", "2")
	// While a probe is out, other requests fall back.
	clk.Advance(5 * time.Second)
	mode.Store("block")
	probe := make(chan *http.Response, 1)
	go func() { // counted in h.sent once it returned, so that settle does not wait for it
		resp, err := h.client.Post(h.srv.URL+"/v2/models/fraud/infer", "application/json", strings.NewReader(inferBody))
		if err != nil {
			t.Error(err)
			probe <- nil
			return
		}
		resp.Body.Close()
		probe <- resp
	}()
	<-entered
	breaker("probe out", metrics.BreakerHalfOpen)
	expect("probe out, others fall back", 200, "1", "2")
	close(release)
	if resp := <-probe; resp == nil || resp.StatusCode != 200 || resp.Header.Get(HeaderVersion) != "2" {
		t.Fatalf("the probe: %+v", resp)
	}
	h.sent++
	mode.Store("ok")
	// The probe succeeded: closed, and the canary takes its traffic.
	breaker("probe succeeded", metrics.BreakerClosed)
	expect("closed", 200, "2", "")
	if got := gather(t, h.reg)[`slipway_gateway_fallbacks_total{environment="production",from_version="2",model="fraud",to_version="1"}`]; got != 6 {
		t.Errorf("fallbacks_total = %v, want 6", got)
	}
	// The rollout judge sees each request the open breaker kept from the
	// canary as a failure of the canary's, not as traffic it never got.
	tot, _ := h.rec.Totals(metrics.Key{Model: "fraud", Environment: "production", Version: 2})
	if a := tot.Analysis(); tot.Refused != 6 || a.Errors != tot.Errors+6 || a.Requests != tot.Requests+6 {
		t.Errorf("canary totals: refused %d, judged %d errors of %d requests (answered %d of %d)", tot.Refused, a.Errors, a.Requests, tot.Errors, tot.Requests)
	}
}

// A request pinned to a version never falls back; with fallback off, no
// request does. Both get 503 at once while the breaker is open.
func TestOpenBreakerWithoutFallback(t *testing.T) {
	for _, disable := range []bool{false, true} {
		up := newFailingUpstream(t, up500)
		clk := clock.NewFake(time.Unix(1_000_000, 0))
		h := newHarness(t, func(c *Config) {
			c.Clock = clk
			c.Breaker.ConsecutiveFailures = 1
			c.DisableFallback = disable
		}, withStable(route("fraud", "production", inProcess(1, 0, &fakeModel{}), up.version(t, 2, 100, runtime.ProtocolOIP)), 1))
		path := "/v2/models/fraud/versions/2/infer"
		if disable {
			path = "/v2/models/fraud/infer"
		}
		h.doCtx("POST", path, inferBody) // opens the breaker
		resp, b := h.doCtx("POST", path, inferBody)
		if resp.StatusCode != 503 || resp.Header.Get(HeaderVersion) != "2" || resp.Header.Get("Retry-After") != "5" ||
			!strings.Contains(oipError(t, b), "circuit breaker is open") || up.hits.Load() != 1 {
			t.Errorf("disable=%v: %d %s Retry-After %q, %d calls; want 503 from the open breaker", disable,
				resp.StatusCode, b, resp.Header.Get("Retry-After"), up.hits.Load())
		}
	}
}

// A canary's call that failed after its retries goes to the stable
// version when that is safe: the request is idempotent or never left.
func TestFailedCallFallsBackToStable(t *testing.T) {
	cases := []struct {
		name, canary string
		openAI, pin  bool
		header       []string
		status       int
		version      string
		canaryHits   int
	}{
		{"OIP canary 503: retried, then the stable answers", up503, false, false, nil, 200, "1", 3},
		{"OIP canary resets", upReset, false, false, nil, 200, "1", 3},
		{"OIP canary 500 is the model's answer", up500, false, false, nil, 500, "2", 1},
		{"OIP pinned to the canary: no fallback", up503, false, true, nil, 503, "2", 3},
		{"OpenAI canary refuses: never sent, safe", upRefuse, true, false, nil, 200, "1", 3},
		{"OpenAI canary 503: not idempotent", up503, true, false, nil, 503, "2", 1},
		{"OpenAI canary 503 with Idempotency-Key", up503, true, false, []string{"Idempotency-Key", "k"}, 200, "1", 3},
		{"OpenAI canary resets: may have acted", upReset, true, false, nil, 502, "2", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			canary, stable := newFailingUpstream(t, c.canary), newFailingUpstream(t, upOK)
			proto, model, path, body := runtime.ProtocolOIP, "fraud", "/v2/models/fraud/infer", inferBody
			if c.openAI {
				proto, model, path, body = runtime.ProtocolOpenAI, "chat", "/v1/chat/completions", openAIChat
			}
			if c.pin {
				path = "/v2/models/fraud/versions/2/infer"
			}
			h := newHarness(t, func(cfg *Config) { cfg.Sleep = (&sleeps{}).sleep },
				withStable(route(model, "production", stable.version(t, 1, 0, proto), canary.version(t, 2, 100, proto)), 1))
			resp, b := h.doCtx("POST", path, body, c.header...)
			from := ""
			if c.version == "1" {
				from = "2"
			}
			if resp.StatusCode != c.status || resp.Header.Get(HeaderVersion) != c.version || resp.Header.Get(HeaderFallbackFrom) != from {
				t.Errorf("%d %s version %q from %q; want %d from version %s (fallback from %q)", resp.StatusCode, b,
					resp.Header.Get(HeaderVersion), resp.Header.Get(HeaderFallbackFrom), c.status, c.version, from)
			}
			if c.version == "1" && !c.openAI && !strings.Contains(string(b), `"model_version":"1"`) {
				t.Errorf("the stable version's answer does not name it: %s", b)
			}
			if canary.hits.Load() != int64(c.canaryHits) {
				t.Errorf("canary reached %d times, want %d", canary.hits.Load(), c.canaryHits)
			}
			h.settle()
			fallbacks := gather(t, h.reg)[fmt.Sprintf(`slipway_gateway_fallbacks_total{environment="production",from_version="2",model=%q,to_version="1"}`, model)]
			if want := map[bool]float64{true: 1}[c.version == "1"]; fallbacks != want {
				t.Errorf("fallbacks_total = %v, want %v", fallbacks, want)
			}
		})
	}
}

// When the stable version fails too, the client gets a 503 in its
// protocol's error shape, with the request ID, and once the breakers are
// open it gets it at once without the upstreams being called.
func TestStableFailingAnswers503Fast(t *testing.T) {
	for _, openAI := range []bool{false, true} {
		t.Run(fmt.Sprintf("openai=%v", openAI), func(t *testing.T) {
			canary, stable := newFailingUpstream(t, upRefuse), newFailingUpstream(t, upReset)
			proto, model, path, body := runtime.ProtocolOIP, "fraud", "/v2/models/fraud/infer", inferBody
			header := []string{HeaderRequestID, "req-503"}
			if openAI {
				proto, model, path, body = runtime.ProtocolOpenAI, "chat", "/v1/chat/completions", openAIChat
				header = append(header, "Idempotency-Key", "k")
			}
			clk := clock.NewFake(time.Unix(1_000_000, 0))
			h := newHarness(t, func(c *Config) { c.Clock = clk; c.Sleep = (&sleeps{}).sleep },
				withStable(route(model, "production", stable.version(t, 1, 10, proto), canary.version(t, 2, 90, proto)), 1))
			message := func(b []byte) string {
				if openAI {
					e := openAIErr(t, b)
					if e.Type != "server_error" {
						t.Errorf("error type %q", e.Type)
					}
					return e.Code + ": " + e.Message
				}
				return oipError(t, b)
			}
			var codes []string
			for i := range 6 {
				resp, b := h.doCtx("POST", path, body, header...)
				msg := message(b)
				if resp.StatusCode != 503 && resp.StatusCode != 502 || !strings.Contains(msg, "req-503") {
					t.Fatalf("request %d: %d %s, want 503 (or 502 from the stable alone) naming the request id", i, resp.StatusCode, b)
				}
				codes = append(codes, fmt.Sprint(resp.StatusCode))
				if strings.Contains(msg, "circuit breaker") {
					break
				}
			}
			before := canary.hits.Load() + stable.hits.Load()
			resp, b := h.doCtx("POST", path, body, header...)
			msg := message(b)
			if resp.StatusCode != 503 || !strings.Contains(msg, "circuit breaker") || !strings.Contains(msg, "req-503") || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("with both breakers open: %d %s (earlier %v)", resp.StatusCode, b, codes)
			}
			if after := canary.hits.Load() + stable.hits.Load(); after != before {
				t.Errorf("an open breaker still let %d calls through", after-before)
			}
			if codes[0] != "503" {
				t.Errorf("first answer %s, want 503: the canary failed and so did the stable version", codes[0])
			}
		})
	}
}

// A stable version that hangs costs the per-try timeout until its
// breaker opens; then the answer is immediate. Nothing waits forever.
func TestHangingStableNeverHangsTheClient(t *testing.T) {
	up := newFailingUpstream(t, upHang)
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	h := newHarness(t, func(c *Config) {
		c.Clock = clk
		c.Sleep = (&sleeps{}).sleep
		c.Retry = RetryPolicy{TryTimeout: 50 * time.Millisecond, Deadline: 200 * time.Millisecond}
	}, withStable(route("fraud", "production", up.version(t, 1, 100, runtime.ProtocolOIP)), 1))
	statuses := map[int]int{}
	for range 4 {
		resp, _ := h.doCtx("POST", "/v2/models/fraud/infer", inferBody)
		statuses[resp.StatusCode]++
	}
	hits := up.hits.Load()
	if statuses[504] == 0 || statuses[503] == 0 || hits < 5 {
		t.Fatalf("answers %v after %d calls; want 504s until 5 failures open the breaker, then 503", statuses, hits)
	}
	resp, b := h.doCtx("POST", "/v2/models/fraud/infer", inferBody)
	if resp.StatusCode != 503 || !strings.Contains(oipError(t, b), "circuit breaker is open") || up.hits.Load() != hits {
		t.Errorf("open breaker: %d %s, %d new calls", resp.StatusCode, b, up.hits.Load()-hits)
	}
}

// Killing a canary's server under load loses no request: retries and
// the breaker send its traffic to the stable version.
func TestCanaryKilledUnderLoadLosesNothing(t *testing.T) {
	stable := newFailingUpstream(t, upOK)
	canarySrv := httptest.NewServer(&fakeModel{})
	defer canarySrv.Close()
	h := newHarness(t, nil, withStable(route("fraud", "production",
		stable.version(t, 1, 50, runtime.ProtocolOIP), remote(t, 2, 50, canarySrv.URL, runtime.ProtocolOIP)), 1))
	const workers, perWorker, killAfter = 8, 60, 120
	var done, byCanary, fellBack atomic.Int64
	var kill sync.Once
	failures := make(chan string, workers*perWorker)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				resp, err := h.client.Post(h.srv.URL+"/v2/models/fraud/infer", "application/json", strings.NewReader(inferBody))
				if err != nil {
					failures <- err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(b), `"data":[6.5]`) {
					failures <- fmt.Sprintf("%d %s", resp.StatusCode, b)
				}
				if resp.Header.Get(HeaderVersion) == "2" {
					byCanary.Add(1)
				}
				if resp.Header.Get(HeaderFallbackFrom) == "2" {
					fellBack.Add(1)
				}
				if done.Add(1) == killAfter {
					kill.Do(func() {
						canarySrv.CloseClientConnections() // a crash: connections reset mid-request
						canarySrv.Close()
					})
				}
			}
		})
	}
	wg.Wait()
	close(failures)
	n := 0
	for f := range failures {
		if n++; n <= 5 {
			t.Errorf("client-visible failure: %s", f)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d requests failed", n, workers*perWorker)
	}
	if byCanary.Load() == 0 || fellBack.Load() == 0 {
		t.Errorf("canary answered %d, fallbacks %d: the test did not exercise the kill", byCanary.Load(), fellBack.Load())
	}
}
