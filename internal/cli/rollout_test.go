package cli

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/controller"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/rollout"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func f(x float64) *float64 { return &x }

// canaryStatus is a canary of version 3 against 2 at its 25 % step,
// judged live, with a Fail recorded at an earlier run.
func canaryStatus() api.RolloutStatus {
	r := domain.Rollout{
		ID: 7, Model: "fraud", Environment: "production", Strategy: "canary", Baseline: 2, Candidate: 3, CandidateRef: "@challenger",
		Phase: domain.RolloutProgressing, Step: 4, StepStartedAt: t0.Add(90 * time.Second),
		Traffic: domain.RolloutTraffic{Baseline: 75, Candidate: 25}, Run: 2, InEffect: true,
		CreatedBy: "dan", CreatedAt: t0,
		Verdicts: []domain.RolloutVerdict{{
			Step: 2, Run: 1, Outcome: domain.AnalysisPass, Reason: "all 1 checks are within their thresholds",
			CandidateRequests: 210, BaselineRequests: 3900, At: t0.Add(80 * time.Second),
			Evidence: []domain.RolloutEvidence{{Rule: "error_rate max", Outcome: domain.AnalysisPass, Observed: f(0.004), Threshold: f(0.02), Candidate: f(0.004), CandidateSamples: 210}},
		}},
		History: []domain.RolloutTransition{
			{From: domain.RolloutPending, To: domain.RolloutProgressing, Event: "start", By: "dan", At: t0},
			{From: domain.RolloutProgressing, To: domain.RolloutProgressing, Event: "analysis-pass", Step: 2, At: t0.Add(80 * time.Second)},
		},
	}
	steps := []controller.PlanStep{
		{Kind: rollout.StepTraffic, Description: "start candidate at 0 %"},
		{Kind: rollout.StepTraffic, Description: "weight 5"},
		{Kind: rollout.StepAnalysis, Description: "analysis (200 samples)"},
		{Kind: rollout.StepTraffic, Description: "weight 25"},
		{Kind: rollout.StepAnalysis, Description: "analysis (200 samples)"},
		{Kind: rollout.StepApproval, Description: "approval by approver"},
		{Kind: rollout.StepTraffic, Description: "weight 100"},
		{Kind: rollout.StepPromote, Description: "promote"},
	}
	live := &controller.Live{Run: 2, Mode: rollout.JudgeLive, MinSamples: 200, At: t0.Add(95 * time.Second), Verdict: analysis.Verdict{
		Outcome: analysis.Inconclusive, Reason: "the candidate has served 40 of the 200 requests it needs",
		Candidate: analysis.VersionTotal{Requests: 40, Errors: 1}, Baseline: analysis.VersionTotal{Requests: 120, Errors: 2},
		Checks: []analysis.Check{
			{Metric: "error_rate", Kind: "max", Outcome: analysis.Inconclusive, Observed: 0.025, Threshold: 0.02, Candidate: f(0.025), CandidateSamples: 40},
			{Metric: "error_rate", Kind: "maxVsBaseline", Outcome: analysis.Inconclusive, Observed: 0.00833, Threshold: 0.005, Candidate: f(0.025), Baseline: f(0.01667), CandidateSamples: 40, BaselineSamples: 120},
			{Metric: "latency_p99_ms", Kind: "maxRatioVsBaseline", Outcome: analysis.Pass, Observed: 1.02, Threshold: 1.25, Candidate: f(41.5), Baseline: f(40.7), CandidateSamples: 40, BaselineSamples: 120},
		},
	}}
	return api.RolloutStatus{Rollout: r, Steps: steps, Live: live}
}

// rolledBack is canaryStatus after the judge failed the candidate.
func rolledBack() api.RolloutStatus {
	st := canaryStatus()
	r := &st.Rollout
	r.Phase, r.Reason = domain.RolloutRolledBack, "error_rate max: 0.3 is above 0.02"
	r.Traffic = domain.RolloutTraffic{Baseline: 100}
	r.Verdicts = append(r.Verdicts, domain.RolloutVerdict{
		Step: 4, Run: 2, Outcome: domain.AnalysisFail, Reason: "error_rate max: 0.3 is above 0.02",
		CandidateRequests: 30, BaselineRequests: 90, At: t0.Add(99 * time.Second),
		Evidence: []domain.RolloutEvidence{
			{Rule: "error_rate max", Outcome: domain.AnalysisFail, Observed: f(0.3), Threshold: f(0.02), Candidate: f(0.3), CandidateSamples: 30},
			{Rule: "latency_p99_ms maxRatioVsBaseline", Outcome: domain.AnalysisInconclusive, Observed: f(1.1), Threshold: f(1.25), Candidate: f(44), Baseline: f(40), CandidateSamples: 30, BaselineSamples: 90},
		},
	})
	r.History = append(r.History, domain.RolloutTransition{From: domain.RolloutProgressing, To: domain.RolloutRolledBack, Event: "analysis-fail", Step: 4, Reason: r.Reason, At: t0.Add(99 * time.Second)})
	st.Live = nil
	return st
}

// TestRolloutReport: status shows the step in the plan, a bar per
// version, each rule's values against its threshold, the verdict and the
// recorded verdicts with evidence.
func TestRolloutReport(t *testing.T) {
	live := rolloutReport(canaryStatus(), reportFull)
	for _, want := range []string{
		"▶  5 analysis (200 samples)", "✓  4 weight 25", "   6 approval by approver",
		"v2 baseline   ██████████████████████░░░░░░░░   75 %", "v3 candidate  ███████░░░░░░░░░░░░░░░░░░░░░░░   25 %",
		"error_rate maxVsBaseline           0.025      0.01667   0.00833   0.005      40/120   INCONCLUSIVE",
		"INCONCLUSIVE (run 2, live traffic, 12:01:35.000): the candidate has served 40 of the 200",
	} {
		if !strings.Contains(live, want) {
			t.Errorf("the report lacks %q:\n%s", want, live)
		}
	}
	golden(t, "rollout_status_live.txt", live)
	golden(t, "rollout_status_rolled_back.txt", rolloutReport(rolledBack(), reportFull))

	// Text people typed cannot reach the terminal as escape sequences.
	st := canaryStatus()
	st.Rollout.Reason = "paused by eve: \x1b[2Jgotcha\nsecond line"
	if out := rolloutReport(st, reportFull); strings.Contains(out, "\x1b") || strings.Contains(out, "gotcha\nsecond") {
		t.Errorf("typed text passed through:\n%q", out)
	}
}

// TestWatchLines: one plain line per change of phase, step, traffic,
// live outcome and recorded verdict; nothing when nothing changed, even
// when the live reason's counts move.
func TestWatchLines(t *testing.T) {
	first := canaryStatus()
	var all []string
	all = append(all, watchLines(nil, first, t0.Add(95*time.Second))...)

	same := canaryStatus()
	same.Live.Verdict.Reason = "the candidate has served 41 of the 200 requests it needs"
	same.Live.Verdict.Candidate.Requests = 41
	if got := watchLines(&first, same, t0.Add(96*time.Second)); len(got) != 0 {
		t.Errorf("an unchanged rollout printed %q", got)
	}
	failing := canaryStatus()
	failing.Live.Verdict.Outcome = analysis.Fail
	failing.Live.Verdict.Reason = "error_rate max: 0.3 is above 0.02"
	all = append(all, watchLines(&same, failing, t0.Add(98*time.Second))...)
	end := rolledBack()
	all = append(all, watchLines(&failing, end, t0.Add(99*time.Second))...)
	golden(t, "rollout_watch.txt", strings.Join(all, "\n")+"\n")
}

// TestWatcher runs the watch loop over a scripted server in plain mode:
// it survives a server that does not answer for a while, prints a final
// line, and fails unless the rollout succeeded.
func TestWatcher(t *testing.T) {
	down := &apiclient.Error{Status: http.StatusServiceUnavailable, Problem: api.Problem{Detail: "server is shutting down"}}
	cases := []struct {
		name  string
		steps []any // api.RolloutStatus or error
		final string
		err   string
	}{
		{"rolled back", []any{canaryStatus(), down, canaryStatus(), rolledBack()}, "rollout 7 ended rolled back: version 2 serves fraud in production again — error_rate max", "ended rolled back"},
		{"succeeded", []any{canaryStatus(), func() api.RolloutStatus {
			st := canaryStatus()
			st.Rollout.Phase, st.Rollout.Traffic, st.Live = domain.RolloutSucceeded, domain.RolloutTraffic{Candidate: 100, BaselineRetired: true}, nil
			return st
		}()}, "rollout 7 succeeded: version 3 serves fraud in production", ""},
		{"not found", []any{&apiclient.Error{Status: http.StatusNotFound, Problem: api.Problem{Detail: "rollout 7 not found"}}}, "", "not found"},
		{"not yet in effect", []any{func() api.RolloutStatus { st := rolledBack(); st.Rollout.InEffect = false; return st }(), rolledBack()}, "ended rolled back", "ended rolled back"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			i := 0
			w := &watcher{out: &out, id: 7, interval: time.Millisecond, status: func(context.Context) (api.RolloutStatus, error) {
				s := c.steps[min(i, len(c.steps)-1)]
				i++
				if err, ok := s.(error); ok {
					return api.RolloutStatus{}, err
				}
				return s.(api.RolloutStatus), nil
			}}
			err := w.run(t.Context())
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
			if c.final != "" && !strings.Contains(lastLine(out.String()), c.final) {
				t.Fatalf("final line %q, want %q; output:\n%s", lastLine(out.String()), c.final, out.String())
			}
			if strings.Contains(out.String(), "\x1b") {
				t.Fatalf("escape sequences in plain output:\n%q", out.String())
			}
			if c.name == "rolled back" && !strings.Contains(out.String(), "does not answer") {
				t.Fatalf("the outage was not reported:\n%s", out.String())
			}
		})
	}

	// On a terminal each look redraws the view in place, and the final
	// line follows the last view.
	var screen bytes.Buffer
	n := 0
	tty := &watcher{out: &screen, id: 7, interval: time.Millisecond, tty: true, status: func(context.Context) (api.RolloutStatus, error) {
		n++
		if n < 3 {
			return canaryStatus(), nil
		}
		return rolledBack(), nil
	}}
	if err := tty.run(t.Context()); err == nil {
		t.Fatal("a rolled back rollout watched on a terminal ended without an error")
	}
	views := strings.Split(screen.String(), "\x1b[H")
	if len(views) != 4 || !strings.HasPrefix(views[1], "watching rollout 7 every 1ms") || !strings.Contains(views[1], "▶  5 analysis") ||
		!strings.Contains(views[3], "\x1b[J\nrollout 7 ended rolled back") {
		t.Fatalf("terminal output:\n%q", screen.String())
	}

	// Interrupted: the error says where the rollout was.
	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	w := &watcher{out: &out, id: 7, interval: time.Millisecond, status: func(context.Context) (api.RolloutStatus, error) {
		cancel()
		return canaryStatus(), nil
	}}
	if err := w.run(ctx); err == nil || !strings.Contains(err.Error(), "stopped watching") {
		t.Fatalf("interrupted: %v", err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
