package metrics

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/clock"
)

// obs is one request to observe.
type obs struct {
	status  int
	latency time.Duration
}

// someTraffic is requests of every kind: answers, client errors (not
// errors), server errors and transport failures (errors), latencies from
// below the first bucket to above the last.
var someTraffic = []obs{
	{200, 2 * time.Millisecond}, {200, 2 * time.Millisecond}, {200, 3 * time.Millisecond},
	{404, time.Millisecond}, {500, 40 * time.Millisecond}, {503, 40 * time.Millisecond},
	{0, 10 * time.Second}, {200, 10 * time.Microsecond}, {200, time.Minute}, {429, 0},
}

// expect is what Analysis should give for traffic, computed without the
// recorder: counts by IsError and 4xx, latencies at their buckets' values.
func expect(traffic []obs) analysis.Version {
	var v analysis.Version
	var vals []float64
	for _, o := range traffic {
		v.Requests++
		if IsError(o.status) {
			v.Errors++
		}
		if o.status >= 400 && o.status < 500 {
			v.ClientErrors++
		}
		vals = append(vals, LatencyBucketMs(latIndex(o.latency)))
	}
	v.Latency = analysis.FromSamples(vals)
	return v
}

func observeAll(r *Recorder, k Key, traffic []obs) {
	for _, o := range traffic {
		r.Observe(k, o.status, o.latency)
	}
}

func TestTotalsHoldEverythingObservedPastTheWindows(t *testing.T) {
	clk := clock.NewFake(t0)
	r := New(nil, clk)
	k := Key{Model: "fraud", Environment: "production", Version: 3}
	other := Key{Model: "fraud", Environment: "production", Version: 4}

	if tot, ok := r.Totals(k); ok || tot.Series != 0 || tot.Key != k || tot.Requests != 0 {
		t.Fatalf("Totals before any traffic = %+v, %v; want only the key and false", tot, ok)
	}
	// Spread the traffic over 20 minutes: the 5m window forgets the
	// first half, the totals must not.
	for i, o := range someTraffic {
		r.Observe(k, o.status, o.latency)
		r.Observe(other, 200, time.Millisecond) // another version's traffic stays apart
		if i == len(someTraffic)/2 {
			clk.Advance(15 * time.Minute)
		}
	}
	clk.Advance(time.Minute)
	r.ObserveTokens(k, 10, 10, Price{}) // tokens are no requests

	tot, ok := r.Totals(k)
	if !ok {
		t.Fatal("Totals reports no series after traffic")
	}
	if !tot.Began.Equal(t0) || tot.Series == 0 || tot.Shadow != nil {
		t.Errorf("Began %v, Series %d, Shadow %+v; want %v, non-zero, nil", tot.Began, tot.Series, tot.Shadow, t0)
	}
	if got, want := tot.Analysis(), expect(someTraffic); !reflect.DeepEqual(got, want) {
		t.Errorf("Analysis\n got %+v\nwant %+v", got, want)
	}
	if tot.Requests != 10 || tot.Errors != 3 {
		t.Errorf("%d requests, %d errors; want 10 and 3 (404 and 429 are not errors)", tot.Requests, tot.Errors)
	}
	w, _ := r.Snapshot("fraud", "production")[0].Window("5m")
	if w.Count >= tot.Requests {
		t.Errorf("the 5m window holds %d of %d requests; the test means to outlast it", w.Count, tot.Requests)
	}
	if o, _ := r.Totals(other); o.Requests != 10 || o.Errors != 0 || o.Series == tot.Series {
		t.Errorf("the other version's totals %+v", o)
	}
}

// The bins Analysis gives are what the judge accepts: increasing values,
// each inside its own bucket, and percentiles from them agree with the
// windows'.
func TestLatencyBucketValues(t *testing.T) {
	for i := 1; i < LatencyBuckets; i++ {
		if !(LatencyBucketMs(i) > LatencyBucketMs(i-1)) {
			t.Fatalf("bucket %d value %g ms is not above bucket %d's %g ms", i, LatencyBucketMs(i), i-1, LatencyBucketMs(i-1))
		}
		if d := latValue(i); latIndex(d) != i {
			t.Errorf("bucket %d's value %v falls in bucket %d", i, d, latIndex(d))
		}
	}
	if LatencyBucketMs(0) != 0.05 {
		t.Errorf("bucket 0 stands for %g ms, want 0.05", LatencyBucketMs(0))
	}

	r := New(nil, clock.NewFake(t0))
	k := Key{Model: "m", Environment: "e", Version: 1}
	for i := range 1000 {
		r.Observe(k, 200, time.Duration(i+1)*37*time.Microsecond)
	}
	tot, _ := r.Totals(k)
	v := tot.Analysis()
	// A judge with only a p99 ceiling at the window's p99: the verdict
	// reads the candidate's p99 from the same bins.
	w, _ := r.Snapshot("m", "e")[0].Window("10s")
	ceiling := w.P99Ms
	verdict := analysis.Judge(analysis.Spec{Rules: []analysis.Rule{{Metric: analysis.LatencyP99Ms, Max: &ceiling}}},
		analysis.Observations{Baseline: v, Candidate: v})
	if verdict.Outcome == analysis.Error {
		t.Fatalf("the judge refused the bins: %s", verdict.Reason)
	}
	if c := verdict.Checks[0].Candidate; c == nil || *c != w.P99Ms {
		t.Errorf("judge's p99 %v, window's %v ms", c, w.P99Ms)
	}
}

func TestTotalsSinceIsTheTrafficBetweenReadings(t *testing.T) {
	clk := clock.NewFake(t0)
	r := New(nil, clk)
	k := Key{Model: "fraud", Environment: "production", Version: 3}
	before := someTraffic[:4]
	between := append(append([]obs(nil), someTraffic[4:]...), obs{200, 2 * time.Millisecond}, obs{502, time.Second})

	observeAll(r, k, before)
	start, _ := r.Totals(k)
	clk.Advance(10 * time.Minute)
	observeAll(r, k, between)
	now, _ := r.Totals(k)

	got, err := now.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if want := expect(between); !reflect.DeepEqual(got, want) {
		t.Errorf("Since\n got %+v\nwant %+v", got, want)
	}
	if same, err := now.Since(now); err != nil || same.Requests != 0 || same.Errors != 0 || len(same.Latency) != 0 {
		t.Errorf("a reading since itself = %+v, %v; want nothing", same, err)
	}
	// A start taken before the version served anything counts from the
	// series' beginning.
	empty := Totals{Key: k}
	if all, err := now.Since(empty); err != nil || !reflect.DeepEqual(all, now.Analysis()) {
		t.Errorf("Since a reading with no series = %+v, %v; want all of %+v", all, err, now.Analysis())
	}
	// Readings of two versions are not subtracted.
	if _, err := now.Since(Totals{Key: Key{Model: "fraud", Environment: "production", Version: 4}}); err == nil {
		t.Error("Since a reading of another version: no error")
	}
	// Readings in the wrong order are refused, not wrapped around.
	if _, err := start.Since(now); err == nil {
		t.Error("Since a later reading: no error")
	}
}

// A series that restarts (Forget, or a new recorder after a restart)
// gets a new SeriesID; subtracting an old reading from a new one is
// ErrRestarted, and the controller starts over from the zero reading.
func TestTotalsRestart(t *testing.T) {
	clk := clock.NewFake(t0)
	r := New(nil, clk)
	k := Key{Model: "fraud", Environment: "production", Version: 3}
	observeAll(r, k, someTraffic[:2])
	start, _ := r.Totals(k)

	r.Forget(k)
	if tot, ok := r.Totals(k); ok || tot.Requests != 0 {
		t.Errorf("Totals after Forget = %+v, %v; want none", tot, ok)
	}
	clk.Advance(time.Second)
	// More requests than before, so plain counters would not even look
	// as if they went backwards.
	observeAll(r, k, someTraffic)
	now, _ := r.Totals(k)
	if now.Series == start.Series || !now.Began.Equal(t0.Add(time.Second)) {
		t.Errorf("after a restart Series %d (was %d), Began %v", now.Series, start.Series, now.Began)
	}
	if _, err := now.Since(start); !errors.Is(err, ErrRestarted) {
		t.Errorf("Since across Forget: %v, want ErrRestarted", err)
	}
	if _, err := now.ShadowSince(start); !errors.Is(err, ErrRestarted) {
		t.Errorf("ShadowSince across Forget: %v, want ErrRestarted", err)
	}
	v, err := now.Since(Totals{Key: k})
	if err != nil || !reflect.DeepEqual(v, expect(someTraffic)) {
		t.Errorf("Since the zero reading after a restart = %+v, %v", v, err)
	}

	// A stored reading from before a process restart.
	r2 := New(nil, clk)
	observeAll(r2, k, someTraffic)
	later, _ := r2.Totals(k)
	if _, err := later.Since(now); !errors.Is(err, ErrRestarted) {
		t.Errorf("Since a reading of another recorder: %v, want ErrRestarted", err)
	}
}

func TestShadowTotals(t *testing.T) {
	clk := clock.NewFake(t0)
	r := New(nil, clk)
	k := Key{Model: "fraud", Environment: "production", Version: 2}
	r.Observe(k, 200, time.Millisecond) // live traffic before the version is shadowed
	start, _ := r.Totals(k)
	if start.Shadow != nil {
		t.Fatalf("shadow totals %+v before any mirror", start.Shadow)
	}
	calls := []ShadowCall{
		{Status: 200, Latency: 2 * time.Millisecond, Compare: ShadowComparison{Result: CompareDisagree, Labels: 10, LabelMismatches: 3, Scores: 4, AbsDiff: 1}},
		{Status: 200, Latency: 2 * time.Millisecond, Compare: ShadowComparison{Result: CompareAgree, Labels: 10, Scores: 4, AbsDiff: 0.5}},
		{Status: 503, Latency: time.Millisecond, Compare: ShadowComparison{Result: CompareSkipped, Skip: SkipShadowFailed}},
		{TimedOut: true, Latency: time.Second, Compare: ShadowComparison{Result: CompareSkipped, Skip: SkipShadowFailed}},
	}
	for _, c := range calls {
		r.ObserveShadow(k, c)
		clk.Advance(4 * time.Minute) // past the 5m window by the end
	}
	r.ObserveShadowDropped(k, ShadowDropQueueFull)
	mid, _ := r.Totals(k)
	r.ObserveShadow(k, calls[0])
	now, _ := r.Totals(k)

	want := ShadowTotals{Requests: 4, Errors: 2, Dropped: 1, Agreed: 1, Disagreed: 1, Skipped: 2,
		LabelElements: 20, LabelMismatches: 3, ScoreElements: 8, AbsDiff: 1.5}
	want.Latency[latIndex(2*time.Millisecond)] = 2
	want.Latency[latIndex(time.Millisecond)] = 1
	want.Latency[latIndex(time.Second)] = 1
	if mid.Shadow == nil || *mid.Shadow != want {
		t.Errorf("shadow totals\n got %+v\nwant %+v", mid.Shadow, want)
	}
	if mid.Requests != 1 {
		t.Errorf("live requests %d; mirrored calls are not live traffic", mid.Requests)
	}
	sv := mid.Shadow.Analysis()
	if sv.Requests != 4 || sv.Errors != 2 || sv.Latency.Total() != 4 {
		t.Errorf("shadow Analysis %+v", sv)
	}
	d, err := mid.ShadowSince(start)
	if err != nil || d != want {
		t.Errorf("ShadowSince a reading before any mirror = %+v, %v; want all", d, err)
	}
	d, err = now.ShadowSince(mid)
	one := ShadowTotals{Requests: 1, Disagreed: 1, LabelElements: 10, LabelMismatches: 3, ScoreElements: 4, AbsDiff: 1}
	one.Latency[latIndex(2*time.Millisecond)] = 1
	if err != nil || d != one {
		t.Errorf("ShadowSince\n got %+v, %v\nwant %+v", d, err, one)
	}
	if _, err := mid.ShadowSince(now); err == nil {
		t.Error("ShadowSince a later reading: no error")
	}
}

// Readings taken while requests are recorded are each consistent (the
// buckets add up to the requests) and never go backwards.
func TestTotalsConsistentUnderConcurrency(t *testing.T) {
	r := New(nil, clock.NewFake(t0))
	k := Key{Model: "m", Environment: "e", Version: 1}
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				status := 200
				if i%5 == 0 {
					status = 500
				}
				r.Observe(k, status, time.Duration(w*each+i)*time.Microsecond)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var prev Totals
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		tot, ok := r.Totals(k)
		if !ok {
			continue
		}
		var sum uint64
		for _, n := range tot.Latency {
			sum += n
		}
		if sum != tot.Requests || tot.Errors > tot.Requests {
			t.Fatalf("inconsistent reading: %d requests, %d errors, %d in buckets", tot.Requests, tot.Errors, sum)
		}
		if prev.Series != 0 {
			if _, err := tot.Since(prev); err != nil {
				t.Fatalf("a reading went backwards: %v", err)
			}
		}
		prev = tot
	}
	final, _ := r.Totals(k)
	if final.Requests != writers*each || final.Errors != writers*each/5 {
		t.Errorf("final %d requests, %d errors; want %d and %d", final.Requests, final.Errors, writers*each, writers*each/5)
	}
}
