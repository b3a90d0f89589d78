package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// withFault gives a served version a fault.
func withFault(rv deployment.RouteVersion, f domain.Fault) deployment.RouteVersion {
	rv.Fault = &f
	return rv
}

func requestsTotal(t *testing.T, h *harness, model string, version, code int) float64 {
	t.Helper()
	h.settle()
	return gather(t, h.reg)[fmt.Sprintf(`slipway_gateway_requests_total{code="%d",environment="production",model=%q,version="%d"}`, code, model, version)]
}

// TestFaultAbortShare: over many requests with a seeded Rand, the share
// of injected aborts is the configured one within sampling error, each
// answered with the status and the header without calling the model, and
// recorded in the version's metrics with that status.
func TestFaultAbortShare(t *testing.T) {
	var modelCalls atomic.Int64
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		modelCalls.Add(1)
		(&fakeModel{}).ServeHTTP(w, r)
	})
	h := newHarness(t, func(c *Config) { c.Breaker.Disabled = true },
		route("fraud", "production", withFault(inProcess(1, 100, model), domain.Fault{AbortPercent: 30, AbortStatus: 500})))
	const n = 2000
	aborted := 0
	for range n {
		resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody)
		switch {
		case resp.StatusCode == 500 && resp.Header.Get(HeaderFault) == "abort" && resp.Header.Get(HeaderVersion) == "1":
			aborted++
			if msg := oipError(t, b); !strings.Contains(msg, "fault injection") || !strings.Contains(msg, "request id") {
				t.Fatalf("abort message %q", msg)
			}
		case resp.StatusCode == 200 && resp.Header.Get(HeaderFault) == "":
		default:
			t.Fatalf("%d %s fault header %q", resp.StatusCode, b, resp.Header.Get(HeaderFault))
		}
	}
	// Binomial(2000, 0.3): mean 600, σ ≈ 20.5; ±5σ fails a correct
	// gateway with probability below 1e-6 (the seed makes it fixed anyway).
	if sigma := math.Sqrt(n * 0.3 * 0.7); math.Abs(float64(aborted)-0.3*n) > 5*sigma {
		t.Fatalf("%d of %d requests aborted, want about %v", aborted, n, 0.3*n)
	}
	if modelCalls.Load() != int64(n-aborted) {
		t.Fatalf("the model was called %d times for %d requests that were not aborted", modelCalls.Load(), n-aborted)
	}
	if got := requestsTotal(t, h, "fraud", 1, 500); got != float64(aborted) {
		t.Fatalf("requests_total{code=500} = %v, want %d", got, aborted)
	}
	if got := requestsTotal(t, h, "fraud", 1, 200); got != float64(n-aborted) {
		t.Fatalf("requests_total{code=200} = %v, want %d", got, n-aborted)
	}
}

// TestFaultAbortAnswer: an injected abort answers in the protocol's error
// shape, names itself in a header, and never reaches the model — for a
// remote and an in-process version, both protocols.
func TestFaultAbortAnswer(t *testing.T) {
	oipUp, aiUp := newFailingUpstream(t, upOK), newFailingUpstream(t, upOK)
	abort := func(status int) domain.Fault { return domain.Fault{AbortPercent: 100, AbortStatus: status} }
	h := newHarness(t, func(c *Config) { c.Breaker.Disabled = true },
		route("fraud", "production", withFault(oipUp.version(t, 1, 100, runtime.ProtocolOIP), abort(429))),
		route("local", "production", withFault(inProcess(1, 100, &fakeModel{}), abort(503))),
		route("chat", "production", withFault(aiUp.version(t, 1, 100, runtime.ProtocolOpenAI), abort(500))))

	resp, b := h.doCtx("POST", "/v2/models/fraud/infer", inferBody)
	if resp.StatusCode != 429 || resp.Header.Get(HeaderFault) != "abort" || resp.Header.Get(HeaderVersion) != "1" ||
		!strings.Contains(oipError(t, b), "answered 429 by fault injection") {
		t.Fatalf("OIP remote: %d %s %v", resp.StatusCode, b, resp.Header)
	}
	resp, b = h.doCtx("GET", "/v2/models/fraud", "")
	if resp.StatusCode != 429 || resp.Header.Get(HeaderFault) != "abort" {
		t.Fatalf("OIP metadata: %d %s %v", resp.StatusCode, b, resp.Header)
	}
	resp, b = h.doCtx("POST", "/v2/models/local/infer", inferBody)
	if resp.StatusCode != 503 || resp.Header.Get(HeaderFault) != "abort" || !strings.Contains(oipError(t, b), "answered 503") {
		t.Fatalf("OIP in-process: %d %s %v", resp.StatusCode, b, resp.Header)
	}
	resp, b = h.doCtx("POST", "/v1/chat/completions", openAIChat)
	var e openAIError
	if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != 500 || resp.Header.Get(HeaderFault) != "abort" ||
		e.Error.Code != "fault_injected" || e.Error.Type != "server_error" || !strings.Contains(e.Error.Message, "answered 500") {
		t.Fatalf("OpenAI: %d %s %v", resp.StatusCode, b, resp.Header)
	}
	if oipUp.hits.Load() != 0 || aiUp.hits.Load() != 0 {
		t.Fatalf("aborted requests reached the models: %d, %d", oipUp.hits.Load(), aiUp.hits.Load())
	}
	for _, c := range []struct {
		model string
		code  int
		want  float64
	}{{"fraud", 429, 2}, {"local", 503, 1}, {"chat", 500, 1}} {
		if got := requestsTotal(t, h, c.model, 1, c.code); got != c.want {
			t.Errorf("%s: requests_total{code=%d} = %v, want %v", c.model, c.code, got, c.want)
		}
	}
}

// TestInjectedAbortsActLikeRealFailures runs the same requests against a
// canary whose server really fails and against a healthy canary with an
// injected abort of the same status: the client, the breaker, retries,
// fallback to the stable version and the metrics see the same thing.
func TestInjectedAbortsActLikeRealFailures(t *testing.T) {
	type step struct {
		status        int
		version, from string
	}
	type run struct {
		steps    []step
		breaker  metrics.BreakerState
		canary   map[int]float64 // the canary's requests_total by code
		fallback float64
	}
	scenario := func(t *testing.T, real bool, status int) run {
		kind := up503
		if status == 500 {
			kind = up500
		}
		var canary deployment.RouteVersion
		if real {
			canary = newFailingUpstream(t, kind).version(t, 2, 100, runtime.ProtocolOIP)
		} else {
			canary = withFault(newFailingUpstream(t, upOK).version(t, 2, 100, runtime.ProtocolOIP), domain.Fault{AbortPercent: 100, AbortStatus: status})
		}
		stable := newFailingUpstream(t, upOK)
		clk := clock.NewFake(time.Unix(1_000_000, 0))
		h := newHarness(t, func(c *Config) {
			c.Clock = clk
			c.Sleep = (&sleeps{}).sleep
			c.Breaker = BreakerPolicy{ConsecutiveFailures: 3, CoolDown: 5 * time.Second}
		}, withStable(route("fraud", "production", stable.version(t, 1, 0, runtime.ProtocolOIP), canary), 1))
		var r run
		for range 6 {
			resp, _ := h.doCtx("POST", "/v2/models/fraud/infer", inferBody)
			r.steps = append(r.steps, step{resp.StatusCode, resp.Header.Get(HeaderVersion), resp.Header.Get(HeaderFallbackFrom)})
		}
		h.settle()
		for _, v := range h.rec.Snapshot("fraud", "production") {
			if v.Version == 2 {
				r.breaker = v.Breaker
			}
		}
		r.canary = map[int]float64{}
		for _, code := range []int{200, 500, 503} {
			r.canary[code] = requestsTotal(t, h, "fraud", 2, code)
		}
		r.fallback = gather(t, h.reg)[`slipway_gateway_fallbacks_total{environment="production",from_version="2",model="fraud",to_version="1"}`]
		return r
	}
	for _, status := range []int{503, 500} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			real, injected := scenario(t, true, status), scenario(t, false, status)
			if fmt.Sprint(real) != fmt.Sprint(injected) {
				t.Fatalf("a real %d canary:     %+v\nan injected %d canary: %+v", status, real, status, injected)
			}
			if injected.breaker != metrics.BreakerOpen {
				t.Fatalf("injected %d aborts did not open the canary's breaker: %+v", status, injected)
			}
			if last := injected.steps[len(injected.steps)-1]; last != (step{200, "1", "2"}) {
				t.Fatalf("with the breaker open the stable version does not answer: %+v", injected)
			}
		})
	}
}

// TestFaultOnStableAfterFallback: a fault is per version, so a request
// that falls back to the stable version meets the stable version's fault.
func TestFaultOnStableAfterFallback(t *testing.T) {
	canary, stable := newFailingUpstream(t, up503), newFailingUpstream(t, upOK)
	h := newHarness(t, func(c *Config) { c.Sleep = (&sleeps{}).sleep },
		withStable(route("fraud", "production",
			withFault(stable.version(t, 1, 0, runtime.ProtocolOIP), domain.Fault{AbortPercent: 100, AbortStatus: 500}),
			canary.version(t, 2, 100, runtime.ProtocolOIP)), 1))
	resp, b := h.doCtx("POST", "/v2/models/fraud/infer", inferBody)
	if resp.StatusCode != 500 || resp.Header.Get(HeaderVersion) != "1" || resp.Header.Get(HeaderFallbackFrom) != "2" ||
		resp.Header.Get(HeaderFault) != "abort" || stable.hits.Load() != 0 || canary.hits.Load() != 3 {
		t.Fatalf("%d %s %v; stable called %d times, canary %d", resp.StatusCode, b, resp.Header, stable.hits.Load(), canary.hits.Load())
	}
	if got := requestsTotal(t, h, "fraud", 1, 500); got != 1 {
		t.Fatalf("the stable version's requests_total{code=500} = %v", got)
	}
}

// TestFaultDelay: a delayed request waits the fault's delay through the
// gateway's Sleep (recorded here, not timed), then reaches the model; a
// caller that goes away during the delay ends it, and the model is never
// called.
func TestFaultDelay(t *testing.T) {
	up := newFailingUpstream(t, upOK)
	rec := &sleeps{}
	delay := domain.Fault{DelayPercent: 100, Delay: domain.Duration(250 * time.Millisecond)}
	h := newHarness(t, func(c *Config) { c.Sleep = rec.sleep }, route("fraud", "production", withFault(up.version(t, 1, 100, runtime.ProtocolOIP), delay)))
	for range 3 {
		resp, b := h.doCtx("POST", "/v2/models/fraud/infer", inferBody)
		if resp.StatusCode != 200 || resp.Header.Get(HeaderFault) != "delay" || !strings.Contains(string(b), `"sum"`) {
			t.Fatalf("%d %s %v", resp.StatusCode, b, resp.Header)
		}
	}
	if got := rec.all(); fmt.Sprint(got) != "[250ms 250ms 250ms]" || up.hits.Load() != 3 {
		t.Fatalf("sleeps %v, model calls %d", got, up.hits.Load())
	}

	// Half the requests delayed, with both shares drawn from the seeded
	// Rand: the sleeps are exactly the requests marked delayed.
	up2 := newFailingUpstream(t, upOK)
	rec2 := &sleeps{}
	half := domain.Fault{DelayPercent: 50, Delay: domain.Duration(time.Second), AbortPercent: 20, AbortStatus: 502}
	h2 := newHarness(t, func(c *Config) {
		c.Sleep = rec2.sleep
		c.Breaker.Disabled = true
		c.Retry.MaxAttempts = 1
		c.DisableFallback = true
	},
		route("fraud", "production", withFault(up2.version(t, 1, 100, runtime.ProtocolOIP), half)))
	marked, aborts := 0, 0
	for range 400 {
		resp, _ := h2.doCtx("POST", "/v2/models/fraud/infer", inferBody)
		switch resp.Header.Get(HeaderFault) {
		case "delay":
			marked++
		case "abort":
			aborts++
		}
		if (resp.StatusCode == 502) != (resp.Header.Get(HeaderFault) == "abort") {
			t.Fatalf("%d with fault header %q", resp.StatusCode, resp.Header.Get(HeaderFault))
		}
	}
	delayed := len(rec2.all())
	if delayed < marked || delayed < 150 || delayed > 250 || aborts < 50 || aborts > 115 || up2.hits.Load() != int64(400-aborts) {
		t.Fatalf("400 requests: %d delayed (%d marked), %d aborted, %d reached the model", delayed, marked, aborts, up2.hits.Load())
	}

	// The caller goes away while the request waits.
	up3 := newFailingUpstream(t, upOK)
	entered := make(chan struct{}, 1)
	h3 := newHarness(t, func(c *Config) {
		c.Sleep = func(ctx context.Context, d time.Duration) error {
			entered <- struct{}{}
			<-ctx.Done() // a delay longer than the caller's patience
			return ctx.Err()
		}
	}, route("fraud", "production", withFault(up3.version(t, 1, 100, runtime.ProtocolOIP), domain.Fault{DelayPercent: 100, Delay: domain.Duration(domain.MaxFaultDelay)})))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", h3.srv.URL+"/v2/models/fraud/infer", strings.NewReader(inferBody))
	errc := make(chan error, 1)
	go func() {
		resp, err := h3.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the request answered though its caller went away")
	}
	h3.sent++
	if got := requestsTotal(t, h3, "fraud", 1, 499); got != 1 || up3.hits.Load() != 0 {
		t.Fatalf("requests_total{code=499} = %v, model calls %d", got, up3.hits.Load())
	}
}

// TestNoFaultNoDraw: a version without a fault takes no draw and no
// sleep — its path is the one it had before faults existed — while a
// fault costs one draw per share.
func TestNoFaultNoDraw(t *testing.T) {
	draws := func(f *domain.Fault) (int64, []time.Duration) {
		var n atomic.Int64
		seeded := seededRand(3)
		rec := &sleeps{}
		rv := inProcess(1, 100, &fakeModel{})
		rv.Fault = f
		h := newHarness(t, func(c *Config) {
			c.Rand = func(k int) int { n.Add(1); return seeded(k) }
			c.Sleep = rec.sleep
			c.Breaker.Disabled = true
		}, route("fraud", "production", rv))
		for range 10 {
			if resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody); resp.Header.Get(HeaderFault) != "" && f == nil {
				t.Fatalf("no fault, yet %d %s %v", resp.StatusCode, b, resp.Header)
			}
		}
		return n.Load(), rec.all()
	}
	none, sleptNone := draws(nil)
	one, _ := draws(&domain.Fault{AbortPercent: 50, AbortStatus: 500})
	two, _ := draws(&domain.Fault{AbortPercent: 50, AbortStatus: 500, DelayPercent: 50, Delay: domain.Duration(time.Millisecond)})
	all, _ := draws(&domain.Fault{AbortPercent: 100, AbortStatus: 500})
	if len(sleptNone) != 0 || one != none+10 || two != none+20 || all != none {
		t.Fatalf("draws for 10 requests: no fault %d (slept %v), one share %d, two shares %d, 100%% %d", none, sleptNone, one, two, all)
	}
}
