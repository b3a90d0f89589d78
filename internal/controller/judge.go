package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/rollout"
)

// judgeState is what the judge remembers of the current analysis run:
// the two versions' counters when the run began (so every verdict is over
// the run's traffic alone), the latest Prometheus answers, and the latest
// verdict for status and watch.
type judgeState struct {
	req            *rollout.JudgeRequest
	run            int
	started        bool
	startB, startC metrics.Totals

	promMu sync.Mutex
	prom   map[string]analysis.PromResult
	// promAt is when the latest query was sent, promRead when the
	// answers in prom were asked for.
	promAt, promRead time.Time
	promBusy         bool
	last             *rollout.Verdict
	lastAt           time.Time
	lastMode         rollout.JudgeMode
	lastFloor        uint64
}

// judgeNow is the judge's verdict on the current run over the live
// counters read now, or nil when nothing is judged (no analysis, no
// traffic to judge, the state not yet in effect).
func (rn *runner) judgeNow(ctx context.Context, now time.Time) *rollout.Verdict {
	j := &rn.judge
	req := j.req
	r := rn.st.Rollout
	if req == nil || !r.InEffect || req.Run != r.Run || req.Analysis == nil {
		return nil
	}
	kb := metrics.Key{Model: r.Model, Environment: r.Environment, Version: req.Baseline}
	kc := metrics.Key{Model: r.Model, Environment: r.Environment, Version: req.Candidate}
	m := rn.c.cfg.Metrics
	if !j.started || j.run != req.Run {
		// A run whose start the controller did not see (it began before a
		// restart, whose recorder is new): it counts from here.
		rn.startRun(req)
	}
	nowB, _ := m.Totals(kb)
	nowC, _ := m.Totals(kc)
	base, errB := since(nowB, &j.startB, kb)
	var cand analysis.Version
	var cmp *analysis.Comparison
	var errC error
	if req.Mode == rollout.JudgeShadow {
		cand, cmp, errC = shadowSince(nowC, &j.startC, kc)
	} else {
		cand, errC = since(nowC, &j.startC, kc)
	}
	spec := *req.Analysis
	spec.MinSamples = req.MinSamples
	spec.FalseRollbackRate = req.Analysis.FalseRollbackRate / float64(judgedRuns(rn.st.Plan))
	var v analysis.Verdict
	if err := errors.Join(errB, errC); err != nil {
		v = analysis.Verdict{Outcome: analysis.Error, Reason: "the live counters cannot be read: " + err.Error()}
	} else {
		v = analysis.Judge(spec, analysis.Observations{Baseline: base, Candidate: cand, Comparison: cmp, Prometheus: rn.prometheus(ctx, &spec, now, req.RunStartedAt)})
	}
	out := &rollout.Verdict{Run: req.Run, Verdict: v}
	j.promMu.Lock()
	j.last, j.lastAt, j.lastMode, j.lastFloor = out, now, req.Mode, uint64(req.MinSamples)
	j.promMu.Unlock()
	return out
}

// startRun takes the readings a new analysis run counts from, unless
// they were taken for it already.
func (rn *runner) startRun(req *rollout.JudgeRequest) {
	j := &rn.judge
	if req == nil || j.started && j.run == req.Run {
		return
	}
	r := rn.st.Rollout
	m := rn.c.cfg.Metrics
	j.startB, _ = m.Totals(metrics.Key{Model: r.Model, Environment: r.Environment, Version: req.Baseline})
	j.startC, _ = m.Totals(metrics.Key{Model: r.Model, Environment: r.Environment, Version: req.Candidate})
	j.run, j.started = req.Run, true
}

// since is the live traffic of k since *start; when the series restarted
// in between (the version was forgotten, the process restarted), the run
// counts from the new series' beginning, all of which came after start.
func since(now metrics.Totals, start *metrics.Totals, k metrics.Key) (analysis.Version, error) {
	v, err := now.Since(*start)
	if errors.Is(err, metrics.ErrRestarted) {
		*start = metrics.Totals{Key: k}
		v, err = now.Since(*start)
	}
	return v, err
}

// shadowSince is since for the mirrored traffic of k: the mirrored
// calls, and how their answers compared with the primary's.
func shadowSince(now metrics.Totals, start *metrics.Totals, k metrics.Key) (analysis.Version, *analysis.Comparison, error) {
	s, err := now.ShadowSince(*start)
	if errors.Is(err, metrics.ErrRestarted) {
		*start = metrics.Totals{Key: k}
		s, err = now.ShadowSince(*start)
	}
	return s.Analysis(), &analysis.Comparison{Compared: s.Agreed + s.Disagreed, Disagreed: s.Disagreed}, err
}

// judgedRuns is how many analysis runs a plan judges: one per step that
// sets traffic the judge sees. falseRollbackRate is the chance of a
// false rollback over the whole rollout, so each run gets its share
// (Bonferroni); a resume starts one more run, with one more share.
func judgedRuns(p rollout.Plan) int {
	n := 0
	for _, s := range p.Steps {
		if s.Kind == rollout.StepTraffic && (s.Traffic.Candidate > 0 || s.Traffic.ShadowPercent > 0) {
			n++
		}
	}
	return max(n, 1)
}

// prometheus returns the latest answers to the spec's Prometheus
// queries, asking again in the background every PrometheusEvery, so a
// slow Prometheus never delays a verdict on the live counters. Until the
// first answers arrive the queries read as having no data. Answers asked
// for before Prometheus could have scraped the run's traffic (two scrape
// intervals after runStart) are marked Early: they can fail the
// candidate, not pass it.
func (rn *runner) prometheus(ctx context.Context, spec *analysis.Spec, now, runStart time.Time) map[string]analysis.PromResult {
	hasRule := false
	for _, r := range spec.Rules {
		hasRule = hasRule || r.Prometheus != nil
	}
	if !hasRule {
		return nil
	}
	j := &rn.judge
	j.promMu.Lock()
	defer j.promMu.Unlock()
	if !j.promBusy && (j.promAt.IsZero() || now.Sub(j.promAt) >= rn.c.cfg.PrometheusEvery) {
		j.promBusy, j.promAt = true, now
		s := *spec
		go func() {
			qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			res := analysis.QueryPrometheus(qctx, rn.c.cfg.Prometheus, s, now)
			j.promMu.Lock()
			j.prom, j.promRead, j.promBusy = res, now, false
			j.promMu.Unlock()
		}()
	}
	if j.prom == nil {
		out := map[string]analysis.PromResult{}
		for _, r := range spec.Rules {
			if r.Prometheus != nil {
				out[r.Prometheus.Query] = analysis.PromResult{Err: fmt.Errorf("the first query is under way: %w", analysis.ErrNoData)}
			}
		}
		return out
	}
	if !j.promRead.Before(runStart.Add(2 * rn.c.cfg.PrometheusScrape)) {
		return j.prom
	}
	early := make(map[string]analysis.PromResult, len(j.prom))
	for q, r := range j.prom {
		r.Early = true
		early[q] = r
	}
	return early
}

// Live is the judge's latest verdict on a rollout's current run.
type Live struct {
	Run  int               `json:"run"`
	Mode rollout.JudgeMode `json:"mode"`
	// MinSamples is the floor the current gate asks for.
	MinSamples uint64           `json:"min_samples"`
	At         time.Time        `json:"at"`
	Verdict    analysis.Verdict `json:"verdict"`
}

// live is the latest verdict, or nil.
func (rn *runner) live() *Live {
	j := &rn.judge
	j.promMu.Lock()
	defer j.promMu.Unlock()
	if j.last == nil {
		return nil
	}
	return &Live{Run: j.last.Run, Mode: j.lastMode, MinSamples: j.lastFloor, At: j.lastAt, Verdict: j.last.Verdict}
}
