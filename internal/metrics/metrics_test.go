package metrics

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/clock"
)

func TestPrometheusExport(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, clock.NewFake(t0))
	k := Key{Model: "fraud", Environment: "production", Version: 4}
	r.Observe(k, 200, 2*time.Millisecond)
	r.Observe(k, 200, 3*time.Millisecond)
	r.Observe(k, 502, time.Second)
	r.ObserveTokens(k, 10, 5, Price{PerMTokPrompt: 1e6, PerMTokCompletion: 2e6})
	done := r.InFlight(k)
	r.ObserveUnrouted(404)

	got := gather(t, reg)
	want := map[string]float64{
		`slipway_gateway_requests_total{code="200",environment="production",model="fraud",version="4"}`:      2,
		`slipway_gateway_requests_total{code="502",environment="production",model="fraud",version="4"}`:      1,
		`slipway_gateway_requests_in_flight{environment="production",model="fraud",version="4"}`:             1,
		`slipway_gateway_tokens_total{environment="production",kind="completion",model="fraud",version="4"}`: 5,
		`slipway_gateway_tokens_total{environment="production",kind="prompt",model="fraud",version="4"}`:     10,
		`slipway_gateway_cost_total{environment="production",model="fraud",version="4"}`:                     20,
		`slipway_gateway_unrouted_requests_total{code="404"}`:                                                1,
		`slipway_gateway_request_duration_seconds_count{environment="production",model="fraud",version="4"}`: 3,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if s := got[`slipway_gateway_request_duration_seconds_sum{environment="production",model="fraud",version="4"}`]; s < 1.004 || s > 1.006 {
		t.Errorf("duration sum = %v, want 1.005", s)
	}
	done()
	if v := gather(t, reg)[`slipway_gateway_requests_in_flight{environment="production",model="fraud",version="4"}`]; v != 0 {
		t.Errorf("in flight after done = %v, want 0", v)
	}

	r.Forget(k)
	for k := range gather(t, reg) {
		if strings.Contains(k, `model="fraud"`) {
			t.Errorf("after Forget %s is still exported", k)
		}
	}
}

func TestSnapshotJSONShape(t *testing.T) {
	r := New(nil, clock.NewFake(t0))
	r.Observe(Key{"m", "production", 1}, 200, 10*time.Millisecond)
	b, err := json.Marshal(r.Snapshot("m", "production"))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	w := got[0]["windows"].([]any)[0].(map[string]any)
	for _, f := range []string{"window", "seconds", "count", "errors", "error_ratio", "p50_ms", "p90_ms", "p99_ms"} {
		if _, ok := w[f]; !ok {
			t.Errorf("window JSON %s lacks %q", b, f)
		}
	}
	if w["window"] != "10s" || got[0]["version"] != 1.0 {
		t.Errorf("unexpected JSON %s", b)
	}
}

// Concurrent recording, in-flight tracking, reads and new series; run with
// -race. Totals must add up exactly.
func TestRecorderRace(t *testing.T) {
	clk := clock.NewFake(t0)
	r := New(prometheus.NewRegistry(), clk)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := Key{Model: "m", Environment: "production", Version: 1 + w%3}
			for i := range each {
				done := r.InFlight(k)
				status := 200
				if i%10 == 0 {
					status = 500
				}
				r.Observe(k, status, time.Duration(i)*time.Microsecond)
				r.ObserveTokens(k, 1, 1, Price{})
				done()
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 200 {
			_ = r.Snapshot("m", "production")
		}
	}()
	go func() {
		defer wg.Done()
		for range 50 {
			clk.Advance(100 * time.Millisecond)
		}
	}()
	wg.Wait()
	var total, errs uint64
	for _, v := range r.Snapshot("m", "production") {
		w, _ := v.Window("1m")
		total += w.Count
		errs += w.Errors
		if v.InFlight != 0 {
			t.Errorf("version %d: in flight %d after all done", v.Version, v.InFlight)
		}
	}
	if total != workers*each || errs != workers*each/10 {
		t.Errorf("count %d errors %d, want %d and %d", total, errs, workers*each, workers*each/10)
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	r := New(prometheus.NewRegistry(), clock.Real{})
	k := Key{Model: "m", Environment: "production", Version: 1}
	r.Observe(k, 200, time.Millisecond) // create the series and the code child
	allocs := testing.AllocsPerRun(1000, func() {
		r.Observe(k, 200, 3*time.Millisecond)
		done := r.InFlight(k)
		done()
	})
	if allocs != 0 {
		t.Errorf("Observe + InFlight allocate %v times per call, want 0", allocs)
	}
}

func BenchmarkObserve(b *testing.B) {
	r := New(prometheus.NewRegistry(), clock.Real{})
	k := Key{Model: "fraud-scorer", Environment: "production", Version: 3}
	r.Observe(k, 200, time.Millisecond)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Observe(k, 200, time.Duration(i%5000)*time.Microsecond)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	r := New(prometheus.NewRegistry(), clock.Real{})
	keys := []Key{{"m", "production", 1}, {"m", "production", 2}}
	for _, k := range keys {
		r.Observe(k, 200, time.Millisecond)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Observe(keys[i%2], 200, time.Duration(i%5000)*time.Microsecond)
			i++
		}
	})
}

func BenchmarkSnapshot(b *testing.B) {
	clk := clock.NewFake(t0)
	r := New(prometheus.NewRegistry(), clk)
	for s := range ringSeconds {
		for v := 1; v <= 2; v++ {
			r.Observe(Key{"m", "production", v}, 200, time.Duration(s)*time.Millisecond)
		}
		clk.Advance(time.Second)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Snapshot("m", "production")
	}
}

// gather flattens a registry into "name{label="value",…}" → value, with
// histograms as _count and _sum.
func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			ls := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[mf.GetName()+ls] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()+ls] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"+ls] = float64(m.Histogram.GetSampleCount())
				out[mf.GetName()+"_sum"+ls] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

func TestResilienceMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, clock.NewFake(t0))
	canary := Key{Model: "fraud", Environment: "production", Version: 2}
	stable := Key{Model: "fraud", Environment: "production", Version: 1}
	r.Observe(stable, 200, time.Millisecond)
	r.ObserveRetry(canary, RetryRetried)
	r.ObserveRetry(canary, RetryRetried)
	r.ObserveRetry(canary, RetryBudgetExhausted)
	r.ObserveFallback(canary, 1)
	r.SetBreaker(canary, BreakerOpen)

	got := gather(t, reg)
	for k, v := range map[string]float64{
		`slipway_gateway_retries_total{environment="production",model="fraud",outcome="retried",version="2"}`:          2,
		`slipway_gateway_retries_total{environment="production",model="fraud",outcome="budget_exhausted",version="2"}`: 1,
		`slipway_gateway_fallbacks_total{environment="production",from_version="2",model="fraud",to_version="1"}`:      1,
		`slipway_gateway_breaker_state{environment="production",model="fraud",version="2"}`:                            2,
		`slipway_gateway_breaker_state{environment="production",model="fraud",version="1"}`:                            0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	snap := r.Snapshot("fraud", "production")
	if len(snap) != 2 || snap[0].Breaker != BreakerClosed || snap[1].Breaker != BreakerOpen {
		t.Fatalf("snapshot breakers: %+v", snap)
	}
	b, _ := json.Marshal(snap[1])
	if !strings.Contains(string(b), `"breaker":"open"`) {
		t.Errorf("snapshot JSON %s lacks the breaker state", b)
	}
	r.SetBreaker(canary, BreakerHalfOpen)
	if r.Snapshot("fraud", "production")[1].Breaker != BreakerHalfOpen {
		t.Error("half-open not shown")
	}
	r.Forget(canary)
	for k := range gather(t, reg) {
		if strings.Contains(k, `version="2"`) || strings.Contains(k, `from_version="2"`) {
			t.Errorf("after Forget %s is still exported", k)
		}
	}
}
