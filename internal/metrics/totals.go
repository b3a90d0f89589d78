package metrics

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
)

// Totals: the windows forget everything older than five minutes, so an
// analysis run that lasts longer cannot be judged from them. Each series
// therefore also keeps counters that only grow from the moment the series
// began — requests, errors and a count per latency bucket (the windows'
// buckets) — and the controller takes a reading when a run starts and
// judges the difference to every later reading (Totals.Since). Recording
// them is three increments under the lock Observe already holds.
//
// A series begins when its version first records traffic and ends with
// Forget or with the recorder (a restarted process has a new one). Every
// beginning gets a new random SeriesID, so two readings of different runs
// of a series are never subtracted from each other by mistake.

// LatencyBuckets is the number of latency buckets in Totals and in the
// windows' histograms.
const LatencyBuckets = latBuckets

// LatencyBucketMs is the value in milliseconds that bucket i (0 ≤ i <
// LatencyBuckets) stands for, the same value the windows' percentiles
// report: the geometric midpoint of the bucket's bounds, within 9.05 %
// (MaxPercentileError) of every latency in it between 50 µs and 31 s;
// 0.05 ms for bucket 0 (anything faster) and about 31,100 ms for the last
// (anything slower). Values strictly increase with i.
func LatencyBucketMs(i int) float64 { return ms(latValue(i)) }

// SeriesID identifies one run of a series, from its first recorded
// request until Forget or the end of the recorder. It is random and never
// zero; zero means "no series".
type SeriesID uint64

// ErrRestarted is returned by Totals.Since when the two readings belong to
// different runs of a series: the version was forgotten and recorded
// again, or the process restarted, in between.
var ErrRestarted = errors.New("the series restarted between the two readings")

// Totals are one version's counters since its series began. Requests and
// Errors count as the windows do (IsError); Latency[i] counts the
// requests whose latency fell in bucket i (LatencyBucketMs). A reading is
// consistent: Errors ≤ Requests and the buckets sum to Requests.
type Totals struct {
	Key Key
	// Series is the run these counters belong to, zero for a reading of a
	// version with no series (nothing recorded since it was forgotten or
	// since the recorder began).
	Series SeriesID
	// Began is when the series recorded its first request, by the
	// recorder's clock.
	Began            time.Time
	Requests, Errors uint64
	// ClientErrors counts the requests answered 4xx.
	ClientErrors uint64
	Latency      [LatencyBuckets]uint64
	// Refused counts the requests routed to the version that the gateway
	// did not send it — its circuit breaker was open or it was at its
	// concurrency limit — and answered from the stable version instead
	// (ObserveRefused). They are in neither Requests nor Latency: the
	// version gave no answer to time. The judge counts each as a failed
	// request of the version (Analysis).
	Refused uint64
	// Shadow is the series' shadow traffic, nil when it never got a
	// mirrored request or drop.
	Shadow *ShadowTotals
}

// ShadowTotals are a shadow version's counters since its series began,
// counted as the shadow windows count them: Errors are 5xx answers,
// transport failures and timeouts; Compared answers agreed or disagreed
// with the primary's, Skipped ones could not be compared.
type ShadowTotals struct {
	Requests, Errors, Dropped      uint64
	Agreed, Disagreed, Skipped     uint64
	LabelElements, LabelMismatches uint64
	ScoreElements                  uint64
	AbsDiff                        float64 // sum of |primary − shadow| over ScoreElements
	Latency                        [LatencyBuckets]uint64
}

// cumulative is the totals' state in a series. id and began are set once
// before the series is published; the counts are guarded by the series
// mutex.
type cumulative struct {
	id               SeriesID
	began            time.Time
	requests, errors uint64
	clientErrors     uint64
	refused          uint64
	lat              [latBuckets]uint64
}

func (c *cumulative) begin(now time.Time) {
	c.began = now
	for c.id == 0 {
		c.id = SeriesID(rand.Uint64())
	}
}

// add counts one request; the caller holds the series mutex.
func (c *cumulative) add(status int, isErr bool, latIdx int) {
	c.requests++
	if isErr {
		c.errors++
	}
	if status >= 400 && status < 500 {
		c.clientErrors++
	}
	c.lat[latIdx]++
}

// observe counts one mirrored call; the caller holds the series mutex.
func (t *ShadowTotals) observe(c ShadowCall) {
	t.Requests++
	if c.failed() {
		t.Errors++
	}
	t.Latency[latIndex(c.Latency)]++
	switch c.Compare.Result {
	case CompareAgree:
		t.Agreed++
	case CompareDisagree:
		t.Disagreed++
	default:
		t.Skipped++
	}
	t.LabelElements += c.Compare.Labels
	t.LabelMismatches += c.Compare.LabelMismatches
	t.ScoreElements += c.Compare.Scores
	t.AbsDiff += c.Compare.AbsDiff
}

// Totals reads version k's counters since its series began, all at one
// instant. It reports false, with only Key set, when k has no series.
func (r *Recorder) Totals(k Key) (Totals, bool) {
	s := (*r.series.Load())[k]
	if s == nil {
		return Totals{Key: k}, false
	}
	t := Totals{Key: k, Series: s.total.id, Began: s.total.began}
	s.mu.Lock()
	t.Requests, t.Errors, t.Latency, t.Refused = s.total.requests, s.total.errors, s.total.lat, s.total.refused
	t.ClientErrors = s.total.clientErrors
	if s.shadow != nil {
		sh := s.shadow.total
		t.Shadow = &sh
	}
	s.mu.Unlock()
	return t, true
}

// Analysis is the reading as the judge takes it: the counts, with each
// refused request as a failed one (a candidate whose breaker is open
// serves nobody, and must not look healthy for it), and every non-empty
// latency bucket as a bin at its LatencyBucketMs value. Two readings'
// Analysis may be subtracted with analysis.Version.Since when they are of
// the same series; Totals.Since checks that.
func (t Totals) Analysis() analysis.Version {
	return analysis.Version{Requests: t.Requests + t.Refused, Errors: t.Errors + t.Refused, ClientErrors: t.ClientErrors, Latency: histogram(&t.Latency)}
}

// ObserveRefused counts a request routed to version k that the gateway
// did not send it (open breaker, concurrency limit) and answered from the
// stable version instead. Only the totals count it (Totals.Refused); the
// fallback itself is counted by ObserveFallback.
func (r *Recorder) ObserveRefused(k Key) {
	s := r.get(k)
	s.mu.Lock()
	s.total.refused++
	s.mu.Unlock()
}

// Analysis is the shadow's own traffic as the judge takes it: its calls,
// failed calls and latency histogram.
func (s ShadowTotals) Analysis() analysis.Version {
	return analysis.Version{Requests: s.Requests, Errors: s.Errors, Latency: histogram(&s.Latency)}
}

func histogram(lat *[latBuckets]uint64) analysis.Histogram {
	var h analysis.Histogram
	for i, n := range lat {
		if n > 0 {
			h = append(h, analysis.Bin{Ms: LatencyBucketMs(i), Count: n})
		}
	}
	return h
}

// Since is the traffic between the reading start, taken when an analysis
// run began, and t, for the judge.
//
// A start with no series (the version had served nothing yet, so Totals
// reported false) counts from the series' beginning: everything t holds
// came after it. When start and t are of different runs of the series
// (ErrRestarted: the version was forgotten and served again, or the
// process restarted and start was stored), what happened between start
// and the restart is gone. The controller then begins a new analysis run
// from the zero reading of t's key — everything the new run counted came
// after start — knowing that falseRollbackRate is spent once per run.
func (t Totals) Since(start Totals) (analysis.Version, error) {
	if err := t.sameSeries(start); err != nil {
		return analysis.Version{}, err
	}
	if start.Series == 0 {
		return t.Analysis(), nil
	}
	v, err := t.Analysis().Since(start.Analysis())
	if err != nil {
		return analysis.Version{}, fmt.Errorf("totals of %s: %w", keyName(t.Key), err)
	}
	return v, nil
}

// ShadowSince is the shadow traffic between the reading start and t, as
// Since is for live traffic; zero when t has no shadow traffic.
func (t Totals) ShadowSince(start Totals) (ShadowTotals, error) {
	if err := t.sameSeries(start); err != nil {
		return ShadowTotals{}, err
	}
	var now, then ShadowTotals
	if t.Shadow != nil {
		now = *t.Shadow
	}
	if start.Series != 0 && start.Shadow != nil {
		then = *start.Shadow
	}
	d, ok := now.sub(then)
	if !ok {
		return ShadowTotals{}, fmt.Errorf("shadow totals of %s went backwards between the two readings", keyName(t.Key))
	}
	return d, nil
}

// sameSeries reports why start cannot be subtracted from t: another
// version, or another run of the series. A start with no series fits any
// run of t's version.
func (t Totals) sameSeries(start Totals) error {
	if start.Key != t.Key {
		return fmt.Errorf("readings of %s and %s: not the same version", keyName(start.Key), keyName(t.Key))
	}
	if start.Series != 0 && start.Series != t.Series {
		return fmt.Errorf("totals of %s: %w", keyName(t.Key), ErrRestarted)
	}
	return nil
}

// sub is s − start, false when a counter of start exceeds s's.
func (s ShadowTotals) sub(start ShadowTotals) (ShadowTotals, bool) {
	ok := true
	minus := func(a, b uint64) uint64 {
		if b > a {
			ok = false
			return 0
		}
		return a - b
	}
	d := ShadowTotals{
		Requests: minus(s.Requests, start.Requests), Errors: minus(s.Errors, start.Errors),
		Dropped: minus(s.Dropped, start.Dropped),
		Agreed:  minus(s.Agreed, start.Agreed), Disagreed: minus(s.Disagreed, start.Disagreed),
		Skipped:       minus(s.Skipped, start.Skipped),
		LabelElements: minus(s.LabelElements, start.LabelElements), LabelMismatches: minus(s.LabelMismatches, start.LabelMismatches),
		ScoreElements: minus(s.ScoreElements, start.ScoreElements),
		AbsDiff:       max(s.AbsDiff-start.AbsDiff, 0),
	}
	for i := range s.Latency {
		d.Latency[i] = minus(s.Latency[i], start.Latency[i])
	}
	return d, ok
}

// keyName names a version in messages.
func keyName(k Key) string {
	return fmt.Sprintf("%s v%d in %s", k.Model, k.Version, k.Environment)
}
