package metrics

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Shadow traffic: the gateway mirrors a fraction of a deployment's
// requests to a shadow version whose answers nobody sees, and records
// here how the shadow did — its calls, errors and latency, the mirrors
// it had to drop, and how far its answers were from the primary's. The
// figures are kept per shadow version, like live traffic, in Prometheus
// collectors and in a second ring of per-second buckets that a version
// gets only once it is shadowed, so versions that never are pay nothing.

// Shadow metric names.
const (
	NameShadowRequests      = "slipway_gateway_shadow_requests_total"
	NameShadowDropped       = "slipway_gateway_shadow_dropped_total"
	NameShadowDuration      = "slipway_gateway_shadow_duration_seconds"
	NameShadowComparisons   = "slipway_gateway_shadow_comparisons_total"
	NameShadowSkipped       = "slipway_gateway_shadow_comparisons_skipped_total"
	NameShadowLabelElements = "slipway_gateway_shadow_label_elements_total"
	NameShadowScoreElements = "slipway_gateway_shadow_score_elements_total"
	NameShadowAbsDiff       = "slipway_gateway_shadow_score_abs_diff_total"
)

// CompareResult is the verdict of comparing one shadow answer with the
// primary's.
type CompareResult string

// Comparison results.
const (
	// CompareAgree: every label matched and every score was within the
	// comparison's tolerance.
	CompareAgree CompareResult = "agree"
	// CompareDisagree: a label differed, a score differed by more than
	// the tolerance, or the answers' outputs did not line up.
	CompareDisagree CompareResult = "disagree"
	// CompareSkipped: there was nothing to compare (see SkipReason).
	CompareSkipped CompareResult = "skipped"
)

// SkipReason says why a shadow answer was not compared.
type SkipReason string

// Reasons a comparison is skipped.
const (
	SkipPrimaryFailed    SkipReason = "primary_failed"    // the client's answer was not a 2xx
	SkipPrimaryTruncated SkipReason = "primary_truncated" // the client's answer was too large to keep
	SkipShadowFailed     SkipReason = "shadow_failed"     // the shadow answered no 2xx, or nothing
	SkipShadowTruncated  SkipReason = "shadow_truncated"  // the shadow's answer was too large to read
	SkipUndecodable      SkipReason = "undecodable"       // an answer is not the protocol's JSON
)

// ShadowComparison is how one shadow answer compared with the primary's.
// Labels are discrete outputs (integer, boolean and bytes tensors;
// OpenAI choices' text) compared for equality; scores are continuous
// outputs (floating-point tensors, embedding vectors) whose absolute
// differences are summed.
type ShadowComparison struct {
	Result          CompareResult
	Skip            SkipReason // set when Result is CompareSkipped
	Labels          uint64     // label elements compared
	LabelMismatches uint64
	Scores          uint64  // score elements compared
	AbsDiff         float64 // sum of |primary − shadow| over those
}

// ShadowCall is one mirrored call and how it compared.
type ShadowCall struct {
	// Status is the shadow's HTTP status, 0 when it gave none (a
	// transport failure or a timeout).
	Status   int
	TimedOut bool // the shadow timeout fired
	Latency  time.Duration
	Compare  ShadowComparison
}

// outcome is the call's outcome label.
func (c ShadowCall) outcome() string {
	switch {
	case c.TimedOut:
		return "timeout"
	case c.Status == 0:
		return "transport_error"
	case c.Status >= 500:
		return "server_error"
	case c.Status >= 400:
		return "client_error"
	}
	return "ok"
}

// failed reports a call that counts as an error: 5xx, no answer, timeout.
func (c ShadowCall) failed() bool { return c.TimedOut || IsError(c.Status) }

// ShadowDrop says why a mirror was dropped before it was sent.
type ShadowDrop string

// Reasons a mirror is dropped.
const (
	ShadowDropQueueFull ShadowDrop = "queue_full"
	ShadowDropShutdown  ShadowDrop = "shutdown"
)

// ObserveShadow records one mirrored call to shadow version k.
func (r *Recorder) ObserveShadow(k Key, c ShadowCall) {
	s := r.get(k)
	now := r.clock.Now().Unix()
	cmp := c.Compare
	s.mu.Lock()
	if s.shadow == nil {
		s.shadow = &shadowRing{}
	}
	b := s.shadow.at(now)
	b.requests++
	if c.failed() {
		b.errors++
	}
	b.lat[latIndex(c.Latency)]++
	switch cmp.Result {
	case CompareAgree:
		b.agreed++
	case CompareDisagree:
		b.disagreed++
	default:
		b.skipped++
	}
	b.labels += cmp.Labels
	b.labelMismatches += cmp.LabelMismatches
	b.scores += cmp.Scores
	b.absDiff += cmp.AbsDiff
	s.shadow.total.observe(c)
	s.mu.Unlock()

	p := r.prom.shadow
	v := strconv.Itoa(k.Version)
	p.requests.WithLabelValues(k.Model, v, k.Environment, c.outcome()).Inc()
	p.duration.WithLabelValues(k.Model, v, k.Environment).Observe(c.Latency.Seconds())
	result := cmp.Result
	if result == "" {
		result = CompareSkipped
	}
	p.comparisons.WithLabelValues(k.Model, v, k.Environment, string(result)).Inc()
	if result == CompareSkipped {
		p.skipped.WithLabelValues(k.Model, v, k.Environment, string(cmp.Skip)).Inc()
	}
	if cmp.Labels > 0 {
		p.labels.WithLabelValues(k.Model, v, k.Environment, "match").Add(float64(cmp.Labels - cmp.LabelMismatches))
		p.labels.WithLabelValues(k.Model, v, k.Environment, "mismatch").Add(float64(cmp.LabelMismatches))
	}
	if cmp.Scores > 0 {
		p.scores.WithLabelValues(k.Model, v, k.Environment).Add(float64(cmp.Scores))
		p.absDiff.WithLabelValues(k.Model, v, k.Environment).Add(cmp.AbsDiff)
	}
}

// ObserveShadowDropped counts a mirror to shadow version k that was
// dropped before it was sent.
func (r *Recorder) ObserveShadowDropped(k Key, why ShadowDrop) {
	s := r.get(k)
	now := r.clock.Now().Unix()
	s.mu.Lock()
	if s.shadow == nil {
		s.shadow = &shadowRing{}
	}
	s.shadow.at(now).dropped++
	s.shadow.total.Dropped++
	s.mu.Unlock()
	r.prom.shadow.dropped.WithLabelValues(k.Model, strconv.Itoa(k.Version), k.Environment, string(why)).Inc()
}

// ShadowWindow is what a shadow version did over the last Seconds
// seconds, aligned like Window. Ratios and percentiles are zero when
// their denominators are; callers must treat that as "no data".
type ShadowWindow struct {
	Window   string `json:"window"`
	Seconds  int    `json:"seconds"`
	Requests uint64 `json:"requests"`
	// Errors counts 5xx answers, transport failures and timeouts.
	Errors     uint64  `json:"errors"`
	ErrorRatio float64 `json:"error_ratio"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	// Dropped mirrors never reached the shadow (queue full, shutdown).
	Dropped uint64 `json:"dropped"`
	// Compared answers were compared with the primary's (agreed or
	// not); Skipped ones could not be.
	Compared          uint64  `json:"compared"`
	Disagreed         uint64  `json:"disagreed"`
	DisagreementRatio float64 `json:"disagreement_ratio"`
	Skipped           uint64  `json:"skipped"`
	// LabelMismatchRate is LabelMismatches / LabelElements.
	LabelElements     uint64  `json:"label_elements"`
	LabelMismatches   uint64  `json:"label_mismatches"`
	LabelMismatchRate float64 `json:"label_mismatch_rate"`
	// MeanAbsDiff is the mean absolute difference of the ScoreElements
	// compared.
	ScoreElements uint64  `json:"score_elements"`
	MeanAbsDiff   float64 `json:"mean_abs_diff"`
}

// shadowSecond is one wall-clock second of one shadow version.
type shadowSecond struct {
	sec                        int64
	requests, errors, dropped  uint32
	agreed, disagreed, skipped uint32
	labels, labelMismatches    uint64
	scores                     uint64
	absDiff                    float64
	lat                        [latBuckets]uint32
}

// shadowRing is the last ringSeconds seconds of one shadow version,
// guarded by its series' mutex.
type shadowRing struct {
	buckets [ringSeconds]shadowSecond
	total   ShadowTotals // counts since the series began (totals.go)
}

func (r *shadowRing) at(sec int64) *shadowSecond {
	b := &r.buckets[((sec%ringSeconds)+ringSeconds)%ringSeconds]
	if b.sec != sec {
		*b = shadowSecond{sec: sec}
	}
	return b
}

// windows merges the ring into every window at Unix second now.
func (r *shadowRing) windows(now int64) []ShadowWindow {
	var acc [len(windowSpecs)]struct {
		lat                        accum // requests and the latency histogram
		errors, dropped            uint64
		agreed, disagreed, skipped uint64
		labels, mismatches, scores uint64
		absDiff                    float64
	}
	for i := range r.buckets {
		b := &r.buckets[i]
		if b.requests == 0 && b.dropped == 0 {
			continue
		}
		age := now - b.sec
		for k, spec := range windowSpecs {
			if age < 0 || age >= spec.seconds {
				continue
			}
			a := &acc[k]
			a.lat.count += uint64(b.requests)
			for j, n := range b.lat {
				a.lat.lat[j] += uint64(n)
			}
			a.errors += uint64(b.errors)
			a.dropped += uint64(b.dropped)
			a.agreed += uint64(b.agreed)
			a.disagreed += uint64(b.disagreed)
			a.skipped += uint64(b.skipped)
			a.labels += b.labels
			a.mismatches += b.labelMismatches
			a.scores += b.scores
			a.absDiff += b.absDiff
		}
	}
	out := make([]ShadowWindow, len(windowSpecs))
	for k, spec := range windowSpecs {
		a := &acc[k]
		w := ShadowWindow{
			Window: spec.name, Seconds: int(spec.seconds),
			Requests: a.lat.count, Errors: a.errors, Dropped: a.dropped,
			Compared: a.agreed + a.disagreed, Disagreed: a.disagreed, Skipped: a.skipped,
			LabelElements: a.labels, LabelMismatches: a.mismatches, ScoreElements: a.scores,
		}
		if a.lat.count > 0 {
			w.ErrorRatio = float64(a.errors) / float64(a.lat.count)
			w.P50Ms = ms(a.lat.percentile(0.50))
			w.P90Ms = ms(a.lat.percentile(0.90))
			w.P99Ms = ms(a.lat.percentile(0.99))
		}
		w.DisagreementRatio = ratio(float64(w.Disagreed), w.Compared)
		w.LabelMismatchRate = ratio(float64(a.mismatches), a.labels)
		w.MeanAbsDiff = ratio(a.absDiff, a.scores)
		out[k] = w
	}
	return out
}

func ratio(num float64, den uint64) float64 {
	if den == 0 || math.IsNaN(num) {
		return 0
	}
	return num / float64(den)
}

// shadowCollectors are the Prometheus side of shadow traffic. Their
// children are looked up per call: mirrors run off the request path.
type shadowCollectors struct {
	requests, dropped, comparisons, skipped *prometheus.CounterVec
	labels, scores, absDiff                 *prometheus.CounterVec
	duration                                *prometheus.HistogramVec
}

func newShadowCollectors(reg prometheus.Registerer) *shadowCollectors {
	l := []string{"model", "version", "environment"}
	with := func(extra string) []string { return append(append([]string(nil), l...), extra) }
	c := &shadowCollectors{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameShadowRequests,
			Help: "Mirrored requests sent to a shadow version, by outcome (ok, client_error, server_error, transport_error, timeout).",
		}, with("outcome")),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameShadowDropped,
			Help: "Mirrored requests dropped before they were sent, by reason (queue_full, shutdown).",
		}, with("reason")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameShadowDuration,
			Help:    "Latency of mirrored requests at the shadow version, whole answer read.",
			Buckets: DurationBuckets,
		}, l),
		comparisons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameShadowComparisons,
			Help: "Shadow answers compared with the primary's, by result (agree, disagree, skipped).",
		}, with("result")),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameShadowSkipped,
			Help: "Shadow answers not compared, by reason (primary_failed, primary_truncated, shadow_failed, shadow_truncated, undecodable).",
		}, with("reason")),
		labels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameShadowLabelElements,
			Help: "Label elements (integer, boolean, bytes outputs; OpenAI choices' text) compared between shadow and primary, by result (match, mismatch).",
		}, with("result")),
		scores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameShadowScoreElements,
			Help: "Score elements (floating-point outputs, embedding values) compared between shadow and primary.",
		}, l),
		absDiff: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameShadowAbsDiff,
			Help: "Sum of absolute differences of the score elements compared; divide by " + NameShadowScoreElements + " for the mean.",
		}, l),
	}
	reg.MustRegister(c.requests, c.dropped, c.duration, c.comparisons, c.skipped, c.labels, c.scores, c.absDiff)
	return c
}

// forget deletes every shadow child of one version.
func (c *shadowCollectors) forget(l prometheus.Labels) {
	for _, v := range []*prometheus.CounterVec{c.requests, c.dropped, c.comparisons, c.skipped, c.labels, c.scores, c.absDiff} {
		v.DeletePartialMatch(l)
	}
	c.duration.Delete(l)
}
