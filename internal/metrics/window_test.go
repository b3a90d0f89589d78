package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestLatIndexBoundaries(t *testing.T) {
	if got := latIndex(0); got != 0 {
		t.Errorf("latIndex(0) = %d, want 0", got)
	}
	if got := latIndex(latMin - 1); got != 0 {
		t.Errorf("latIndex(latMin-1) = %d, want 0", got)
	}
	for j, b := range latBounds {
		if got := latIndex(time.Duration(b)); got != j+1 {
			t.Errorf("latIndex(bound %d = %d ns) = %d, want %d", j, b, got, j+1)
		}
		if j > 0 {
			if got := latIndex(time.Duration(b - 1)); got != j {
				t.Errorf("latIndex(bound %d - 1 ns) = %d, want %d", j, got, j)
			}
		}
	}
	if got := latIndex(time.Hour); got != latBuckets-1 {
		t.Errorf("latIndex(1h) = %d, want overflow %d", got, latBuckets-1)
	}
	if latMax < 30*time.Second {
		t.Errorf("latMax = %v, want at least 30s", latMax)
	}
}

// Every latency in range is reported within MaxPercentileError.
func TestLatValueWithinDocumentedError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lo, hi := math.Log(float64(latMin)), math.Log(float64(latMax))
	for range 100_000 {
		d := time.Duration(math.Exp(lo + rng.Float64()*(hi-lo)))
		got := latValue(latIndex(d))
		if rel := math.Abs(float64(got-d)) / float64(d); rel > MaxPercentileError+1e-9 {
			t.Fatalf("latency %v reported as %v: relative error %.4f > %.4f", d, got, rel, MaxPercentileError)
		}
	}
	if MaxPercentileError > 0.0906 || MaxPercentileError < 0.09 {
		t.Errorf("MaxPercentileError = %v, documented as 9.05%%", MaxPercentileError)
	}
}

// event is one step of a window scenario: move the clock, then record n
// requests with the same status and latency.
type event struct {
	advance time.Duration
	n       int
	status  int
	latency time.Duration
}

func TestWindowsExpireAndCount(t *testing.T) {
	type want struct{ count, errors [3]uint64 } // 10s, 1m, 5m
	tests := []struct {
		name   string
		events []event
		after  time.Duration // clock move before the snapshot
		want   want
	}{
		{
			name:   "fresh requests are in every window",
			events: []event{{n: 5, status: 200, latency: time.Millisecond}},
			want:   want{count: [3]uint64{5, 5, 5}},
		},
		{
			name:   "9s old is still in the 10s window",
			events: []event{{n: 3, status: 200, latency: time.Millisecond}},
			after:  9 * time.Second,
			want:   want{count: [3]uint64{3, 3, 3}},
		},
		{
			name:   "10s old has left the 10s window",
			events: []event{{n: 3, status: 200, latency: time.Millisecond}},
			after:  10 * time.Second,
			want:   want{count: [3]uint64{0, 3, 3}},
		},
		{
			name:   "60s old has left the 1m window",
			events: []event{{n: 3, status: 500, latency: time.Millisecond}},
			after:  60 * time.Second,
			want:   want{count: [3]uint64{0, 0, 3}, errors: [3]uint64{0, 0, 3}},
		},
		{
			name:   "300s old is gone",
			events: []event{{n: 3, status: 200, latency: time.Millisecond}},
			after:  300 * time.Second,
			want:   want{},
		},
		{
			name: "a reused ring slot forgets the old second",
			events: []event{
				{n: 7, status: 503, latency: time.Millisecond},
				{advance: 300 * time.Second, n: 2, status: 200, latency: time.Millisecond},
			},
			want: want{count: [3]uint64{2, 2, 2}},
		},
		{
			name: "4xx are not errors, 5xx and transport failures are",
			events: []event{
				{n: 10, status: 200, latency: time.Millisecond},
				{n: 4, status: 404, latency: time.Millisecond},
				{n: 3, status: 502, latency: time.Millisecond},
				{n: 1, status: 0, latency: time.Millisecond},
			},
			want: want{count: [3]uint64{18, 18, 18}, errors: [3]uint64{4, 4, 4}},
		},
		{
			name: "spread over five minutes",
			events: []event{
				{n: 1, status: 500, latency: time.Millisecond},  // t=0
				{advance: 100 * time.Second, n: 2, status: 200}, // t=100
				{advance: 150 * time.Second, n: 4, status: 200}, // t=250
				{advance: 45 * time.Second, n: 8, status: 500},  // t=295
				{advance: 4 * time.Second, n: 16, status: 200},  // t=299
			},
			want: want{count: [3]uint64{24, 28, 31}, errors: [3]uint64{8, 8, 9}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			r := New(nil, clk)
			k := Key{Model: "m", Environment: "production", Version: 1}
			for _, e := range tt.events {
				clk.Advance(e.advance)
				for range e.n {
					r.Observe(k, e.status, e.latency)
				}
			}
			clk.Advance(tt.after)
			snap := r.Snapshot("m", "production")
			if len(snap) != 1 {
				t.Fatalf("snapshot has %d versions, want 1", len(snap))
			}
			for i, w := range snap[0].Windows {
				if w.Count != tt.want.count[i] || w.Errors != tt.want.errors[i] {
					t.Errorf("window %s: count %d errors %d, want %d and %d", w.Window, w.Count, w.Errors, tt.want.count[i], tt.want.errors[i])
				}
				wantRatio := 0.0
				if tt.want.count[i] > 0 {
					wantRatio = float64(tt.want.errors[i]) / float64(tt.want.count[i])
				}
				if w.ErrorRatio != wantRatio {
					t.Errorf("window %s: error ratio %v, want %v", w.Window, w.ErrorRatio, wantRatio)
				}
				if w.Count == 0 && (w.P50Ms != 0 || w.P99Ms != 0) {
					t.Errorf("window %s: empty window reports percentiles %v/%v", w.Window, w.P50Ms, w.P99Ms)
				}
			}
		})
	}
}

// nearestRank is the exact nearest-rank quantile of sorted samples.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	i := max(int(math.Ceil(p*float64(len(sorted))))-1, 0)
	return sorted[i]
}

func TestPercentilesWithinDocumentedError(t *testing.T) {
	tests := []struct {
		name    string
		samples func(rng *rand.Rand) []time.Duration
	}{
		{"uniform 1..1000 ms", func(*rand.Rand) []time.Duration {
			var s []time.Duration
			for i := 1; i <= 1000; i++ {
				s = append(s, time.Duration(i)*time.Millisecond)
			}
			return s
		}},
		{"log-normal around 2 ms", func(rng *rand.Rand) []time.Duration {
			var s []time.Duration
			for range 5000 {
				s = append(s, time.Duration(2e6*math.Exp(rng.NormFloat64())))
			}
			return s
		}},
		{"bimodal: fast path and slow tail", func(rng *rand.Rand) []time.Duration {
			var s []time.Duration
			for i := range 2000 {
				if i%20 == 0 {
					s = append(s, time.Duration(800+rng.IntN(400))*time.Millisecond)
				} else {
					s = append(s, time.Duration(100+rng.IntN(200))*time.Microsecond)
				}
			}
			return s
		}},
		{"single sample", func(*rand.Rand) []time.Duration { return []time.Duration{42 * time.Millisecond} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 9))
			samples := tt.samples(rng)
			clk := clock.NewFake(t0)
			r := New(nil, clk)
			k := Key{Model: "m", Environment: "staging", Version: 3}
			// Spread the samples over 8 seconds so reads merge buckets.
			for i, d := range samples {
				if i > 0 && i%(len(samples)/8+1) == 0 {
					clk.Advance(time.Second)
				}
				r.Observe(k, 200, d)
			}
			slices.Sort(samples)
			w, _ := r.Snapshot("m", "staging")[0].Window("10s")
			if w.Count != uint64(len(samples)) {
				t.Fatalf("count %d, want %d", w.Count, len(samples))
			}
			for _, c := range []struct {
				p   float64
				got float64
			}{{0.50, w.P50Ms}, {0.90, w.P90Ms}, {0.99, w.P99Ms}} {
				exact := ms(nearestRank(samples, c.p))
				if rel := math.Abs(c.got-exact) / exact; rel > MaxPercentileError+1e-9 {
					t.Errorf("p%.0f = %.4f ms, exact %.4f ms: relative error %.4f > %.4f", c.p*100, c.got, exact, rel, MaxPercentileError)
				}
			}
		})
	}
}

func TestTokensAndCost(t *testing.T) {
	clk := clock.NewFake(t0)
	r := New(nil, clk)
	k := Key{Model: "llm", Environment: "production", Version: 2}
	price := Price{PerMTokPrompt: 0.5, PerMTokCompletion: 2}
	r.ObserveTokens(k, 1000, 200, price)
	clk.Advance(30 * time.Second)
	r.ObserveTokens(k, 3000, 800, price)
	r.ObserveTokens(k, -5, 0, price) // ignored
	w := r.Snapshot("llm", "production")[0]
	ten, _ := w.Window("10s")
	minute, _ := w.Window("1m")
	if ten.PromptTokens != 3000 || ten.CompletionTokens != 800 {
		t.Errorf("10s tokens %d/%d, want 3000/800", ten.PromptTokens, ten.CompletionTokens)
	}
	if minute.PromptTokens != 4000 || minute.CompletionTokens != 1000 {
		t.Errorf("1m tokens %d/%d, want 4000/1000", minute.PromptTokens, minute.CompletionTokens)
	}
	wantCost := 4000*0.5/1e6 + 1000*2/1e6
	if math.Abs(minute.Cost-wantCost) > 1e-12 {
		t.Errorf("1m cost %v, want %v", minute.Cost, wantCost)
	}
	if minute.Count != 0 {
		t.Errorf("tokens alone must not count requests; count %d", minute.Count)
	}
}

func TestSnapshotSeparatesVersionsAndEnvironments(t *testing.T) {
	clk := clock.NewFake(t0)
	r := New(nil, clk)
	r.Observe(Key{"m", "production", 2}, 200, time.Millisecond)
	r.Observe(Key{"m", "production", 1}, 200, time.Millisecond)
	r.Observe(Key{"m", "production", 1}, 200, time.Millisecond)
	r.Observe(Key{"m", "staging", 1}, 200, time.Millisecond)
	r.Observe(Key{"other", "production", 1}, 200, time.Millisecond)
	done := r.InFlight(Key{"m", "production", 2})
	snap := r.Snapshot("m", "production")
	if len(snap) != 2 || snap[0].Version != 1 || snap[1].Version != 2 {
		t.Fatalf("snapshot = %+v, want versions 1 and 2 in order", snap)
	}
	if snap[0].Windows[0].Count != 2 || snap[1].Windows[0].Count != 1 {
		t.Errorf("counts %d/%d, want 2/1", snap[0].Windows[0].Count, snap[1].Windows[0].Count)
	}
	if snap[1].InFlight != 1 {
		t.Errorf("in flight %d, want 1", snap[1].InFlight)
	}
	done()
	if got := r.Snapshot("m", "production")[1].InFlight; got != 0 {
		t.Errorf("in flight after done %d, want 0", got)
	}
	r.Forget(Key{"m", "production", 2})
	if got := r.Snapshot("m", "production"); len(got) != 1 {
		t.Errorf("after Forget: %d versions, want 1", len(got))
	}
	if got := r.Snapshot("nope", "production"); got != nil {
		t.Errorf("unknown model snapshot = %v, want nil", got)
	}
}
