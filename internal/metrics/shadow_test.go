package metrics

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/clock"
)

func TestShadowWindowsAndExport(t *testing.T) {
	reg := prometheus.NewRegistry()
	clk := clock.NewFake(t0)
	r := New(reg, clk)
	k := Key{Model: "fraud", Environment: "production", Version: 2}

	// 70 s ago: one call that only the 5m window still holds.
	r.ObserveShadow(k, ShadowCall{Status: 200, Latency: time.Millisecond,
		Compare: ShadowComparison{Result: CompareDisagree, Labels: 4, LabelMismatches: 4}})
	clk.Advance(70 * time.Second)
	r.ObserveShadow(k, ShadowCall{Status: 200, Latency: 2 * time.Millisecond,
		Compare: ShadowComparison{Result: CompareDisagree, Labels: 10, LabelMismatches: 3, Scores: 4, AbsDiff: 1}})
	r.ObserveShadow(k, ShadowCall{Status: 200, Latency: 2 * time.Millisecond,
		Compare: ShadowComparison{Result: CompareAgree, Labels: 10, Scores: 4}})
	r.ObserveShadow(k, ShadowCall{Status: 503, Latency: time.Millisecond,
		Compare: ShadowComparison{Result: CompareSkipped, Skip: SkipShadowFailed}})
	r.ObserveShadow(k, ShadowCall{TimedOut: true, Latency: time.Second,
		Compare: ShadowComparison{Result: CompareSkipped, Skip: SkipShadowFailed}})
	r.ObserveShadowDropped(k, ShadowDropQueueFull)
	r.ObserveShadowDropped(k, ShadowDropQueueFull)

	snap := r.Snapshot("fraud", "production")
	if len(snap) != 1 || len(snap[0].Shadow) != 3 {
		t.Fatalf("snapshot %+v, want one version with three shadow windows", snap)
	}
	w := snap[0].Shadow[0]
	want := ShadowWindow{
		Window: "10s", Seconds: 10, Requests: 4, Errors: 2, ErrorRatio: 0.5,
		Dropped: 2, Compared: 2, Disagreed: 1, DisagreementRatio: 0.5, Skipped: 2,
		LabelElements: 20, LabelMismatches: 3, LabelMismatchRate: 0.15,
		ScoreElements: 8, MeanAbsDiff: 0.125,
	}
	w.P50Ms, w.P90Ms, w.P99Ms = 0, 0, 0
	if w != want {
		t.Errorf("10s shadow window\n got %+v\nwant %+v", w, want)
	}
	if p50 := snap[0].Shadow[0].P50Ms; p50 < 1.8 || p50 > 2.2 {
		t.Errorf("p50 = %v ms, want about 2", p50)
	}
	if p99 := snap[0].Shadow[0].P99Ms; p99 < 900 {
		t.Errorf("p99 = %v ms, want about 1000", p99)
	}
	if w5 := snap[0].Shadow[2]; w5.Requests != 5 || w5.LabelElements != 24 || w5.LabelMismatches != 7 || w5.Disagreed != 2 {
		t.Errorf("5m shadow window %+v, want the old call too", w5)
	}
	if c := snap[0].Windows[0].Count; c != 0 {
		t.Errorf("live window count = %d; mirrored calls are not live traffic", c)
	}

	got := gather(t, reg)
	l := `environment="production",model="fraud",`
	wantProm := map[string]float64{
		NameShadowRequests + `{` + l + `outcome="ok",version="2"}`:              3,
		NameShadowRequests + `{` + l + `outcome="server_error",version="2"}`:    1,
		NameShadowRequests + `{` + l + `outcome="timeout",version="2"}`:         1,
		NameShadowDropped + `{` + l + `reason="queue_full",version="2"}`:        2,
		NameShadowComparisons + `{` + l + `result="agree",version="2"}`:         1,
		NameShadowComparisons + `{` + l + `result="disagree",version="2"}`:      2,
		NameShadowComparisons + `{` + l + `result="skipped",version="2"}`:       2,
		NameShadowSkipped + `{` + l + `reason="shadow_failed",version="2"}`:     2,
		NameShadowLabelElements + `{` + l + `result="match",version="2"}`:       17,
		NameShadowLabelElements + `{` + l + `result="mismatch",version="2"}`:    7,
		NameShadowScoreElements + `{` + l + `version="2"}`:                      8,
		NameShadowAbsDiff + `{` + l + `version="2"}`:                            1,
		NameShadowDuration + `_count{` + l + `version="2"}`:                     5,
		`slipway_gateway_request_duration_seconds_count{` + l + `version="2"}`:  0,
		`slipway_gateway_requests_total{code="200",` + l + `version="2"}`:       0,
		NameShadowRequests + `{` + l + `outcome="transport_error",version="2"}`: 0,
	}
	for name, v := range wantProm {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}

	b, err := json.Marshal(snap[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{`"shadow":[`, `"label_mismatch_rate":0.15`, `"mean_abs_diff":0.125`, `"dropped":2`} {
		if !strings.Contains(string(b), f) {
			t.Errorf("snapshot JSON %s lacks %s", b, f)
		}
	}

	r.Forget(k)
	for name := range gather(t, reg) {
		if strings.Contains(name, `model="fraud"`) {
			t.Errorf("after Forget %s is still exported", name)
		}
	}
}

// A version never shadowed has no shadow windows, and its JSON says
// nothing about shadows.
func TestNoShadowWindowsUnlessShadowed(t *testing.T) {
	r := New(nil, clock.NewFake(t0))
	r.Observe(Key{"m", "production", 1}, 200, time.Millisecond)
	snap := r.Snapshot("m", "production")
	if snap[0].Shadow != nil {
		t.Fatalf("shadow windows %+v on a version never shadowed", snap[0].Shadow)
	}
	b, _ := json.Marshal(snap[0])
	if strings.Contains(string(b), "shadow") {
		t.Errorf("JSON %s mentions shadow", b)
	}
}
