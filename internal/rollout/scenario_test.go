package rollout

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Scenario files (testdata/scenarios/*.txt) drive Step the way the
// controller would. The first line names a spec under testdata/specs:
//
//	spec canary.yaml
//
// and each following line is one call of Step:
//
//	at 45s pass cmd:approve:bob:approver -> progressing step=5 traffic=75/25
//
// Before "->": the time since the start, then what was observed:
//
//	pass fail inconclusive error   the judge's verdict for the current run
//	                               (with the floor the last decision asked for)
//	stale-fail                     a Fail for the previous run
//	pass-few                       a Pass with a floor of 1 sample
//	smoke-ok smoke-bad             smoke results for the current run
//	cmd:KIND:BY:ROLE               a command
//	err:WORDS                      a controller error (_ for spaces)
//	metrics:CR/CE:BR/BE            the run's counters so far (candidate requests and
//	                               errors, baseline requests and errors), judged by
//	                               analysis.Judge as the last decision asked
//	noapply                        the controller does not carry out this decision
//
// After "->": the phase, then checks, each optional:
//
//	step=N run=N traffic=B/C shadow=P sticky=KEY retired=yes|no
//	events=TYPE,TYPE|none  changed=yes|no  apply=yes|no  judge=MODE|none
//	smoke=yes|no  wake=DURATION|none  verdicts=N  approvals=N
//	aliases=none|VERSION  from=VERSION  stable=VERSION
//	by=NAME|none (who caused the last transition)
//	reason=WORDS  cmderr=WORDS  (words with _ for spaces, matched as substrings)
//	outcome=OUTCOME (of the last verdict)
//
// After each call the runner stores the decision (bumping the revision
// when changed) and, unless told noapply, marks it in effect.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// scenarioRun is a scenario's state between lines.
type scenarioRun struct {
	t     *testing.T
	name  string
	st    State
	judge *JudgeRequest
	seen  map[[2]string]bool // (from phase, event) of every transition
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	seen := map[[2]string]bool{}
	strategies := map[Strategy]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s := runScenario(t, f, seen)
			strategies[s] = true
		})
	}
	// Every legal cell of the table is walked by some scenario, and
	// every strategy is covered.
	for _, p := range domain.RolloutPhases {
		for _, e := range Legal(p) {
			if !seen[[2]string{string(p), string(e)}] {
				t.Errorf("no scenario takes %s + %s", p, e)
			}
		}
	}
	for _, s := range []Strategy{Canary, BlueGreen, Shadow, ABTest} {
		if !strategies[s] {
			t.Errorf("no scenario covers the %s strategy", s)
		}
	}
}

func runScenario(t *testing.T, file string, seen map[[2]string]bool) Strategy {
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	run := &scenarioRun{t: t, name: filepath.Base(file), seen: seen}
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		where := fmt.Sprintf("%s:%d", run.name, lineNo)
		if spec, ok := strings.CutPrefix(line, "spec "); ok {
			run.load(where, strings.TrimSpace(spec))
			continue
		}
		if run.st.Rollout.Spec == "" {
			t.Fatalf("%s: the first line must be spec FILE", where)
		}
		run.line(where, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return run.st.Plan.Strategy
}

func (s *scenarioRun) load(where, name string) {
	data, err := os.ReadFile(filepath.Join("testdata/specs", name))
	if err != nil {
		s.t.Fatalf("%s: %v", where, err)
	}
	spec, err := ParseSpec(name, data)
	if err != nil {
		s.t.Fatalf("%s: %v", where, err)
	}
	candidate := 2
	if spec.Candidate.Version != 0 {
		candidate = spec.Candidate.Version
	}
	r, err := NewRollout(spec, 1, candidate, "carol", t0)
	if err != nil {
		s.t.Fatalf("%s: %v", where, err)
	}
	r.ID, r.Revision, r.PromotionID = 7, 1, 42
	st, err := Load(r)
	if err != nil {
		s.t.Fatalf("%s: %v", where, err)
	}
	s.st = st
}

func (s *scenarioRun) line(where, line string) {
	t := s.t
	in, out, ok := strings.Cut(line, "->")
	fields := strings.Fields(in)
	if !ok || len(fields) < 2 || fields[0] != "at" {
		t.Fatalf("%s: want \"at DURATION [observations] -> PHASE [checks]\"", where)
	}
	at, err := time.ParseDuration(fields[1])
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	now := t0.Add(at)
	obs, apply := s.observations(where, fields[2:])
	before := clone(s.st.Rollout)
	d := Step(now, s.st, obs)
	checkInvariants(t, where, s.st, obs, now, d)
	if !reflect.DeepEqual(before, s.st.Rollout) {
		t.Errorf("%s: Step modified its input", where)
	}
	s.check(where, strings.Fields(out), d)
	for _, n := range d.Notifications {
		s.seen[[2]string{string(n.From), string(n.Event)}] = true
	}
	s.st.Rollout = d.Rollout
	if d.Changed {
		s.st.Rollout.Revision++
	}
	if apply && !s.st.Rollout.InEffect {
		s.st.Rollout.InEffect = true
		s.st.Rollout.Revision++
	}
	s.judge = d.Judge
}

func (s *scenarioRun) observations(where string, tokens []string) (Observations, bool) {
	var obs Observations
	apply := true
	floor := 0
	if s.judge != nil {
		floor = s.judge.MinSamples
	}
	verdict := func(o analysis.Outcome, run, floor int) *Verdict {
		n := uint64(floor) + 10
		up := 0.03
		return &Verdict{Run: run, Verdict: analysis.Verdict{Outcome: o, Reason: "scripted " + strings.ToLower(string(o)), MinSamples: uint64(floor),
			Candidate: analysis.VersionTotal{Requests: n}, Baseline: analysis.VersionTotal{Requests: 9 * n},
			Checks: []analysis.Check{{Metric: "error_rate", Kind: "max", Method: analysis.RateSequence, Outcome: o, Observed: 0.01, Threshold: 0.02, CandidateSamples: n, Upper: &up}}}}
	}
	run := s.st.Rollout.Run
	for _, tok := range tokens {
		switch {
		case tok == "pass":
			obs.Analysis = verdict(analysis.Pass, run, floor)
		case tok == "fail":
			obs.Analysis = verdict(analysis.Fail, run, floor)
		case tok == "inconclusive":
			obs.Analysis = verdict(analysis.Inconclusive, run, floor)
		case tok == "error":
			obs.Analysis = verdict(analysis.Error, run, floor)
		case tok == "stale-fail":
			obs.Analysis = verdict(analysis.Fail, run-1, floor)
		case tok == "pass-few":
			obs.Analysis = verdict(analysis.Pass, run, 1)
		case tok == "smoke-ok":
			obs.Smoke = &SmokeResult{Run: run}
		case tok == "smoke-bad":
			obs.Smoke = &SmokeResult{Run: run, Failures: []string{`benign row: at $.outputs[0].data[0]: expected 0, got 1`}}
		case strings.HasPrefix(tok, "metrics:"):
			obs.Analysis = s.judged(where, strings.TrimPrefix(tok, "metrics:"))
		case tok == "noapply":
			apply = false
		case strings.HasPrefix(tok, "err:"):
			obs.Error = strings.ReplaceAll(strings.TrimPrefix(tok, "err:"), "_", " ")
		case strings.HasPrefix(tok, "cmd:"):
			parts := strings.Split(tok, ":")
			for len(parts) < 4 {
				parts = append(parts, "")
			}
			obs.Commands = append(obs.Commands, Command{Kind: CommandKind(parts[1]), By: parts[2], Role: domain.Role(parts[3]), Reason: strings.ReplaceAll(strings.Join(parts[4:], ":"), "_", " ")})
		default:
			s.t.Fatalf("%s: unknown observation %q", where, tok)
		}
	}
	return obs, apply
}

func (s *scenarioRun) check(where string, checks []string, d Decision) {
	t := s.t
	if len(checks) == 0 {
		t.Fatalf("%s: no phase after ->", where)
	}
	r := d.Rollout
	if string(r.Phase) != checks[0] {
		t.Errorf("%s: phase %s (reason %q), want %s", where, r.Phase, r.Reason, checks[0])
	}
	yesno := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	words := func(v string) string { return strings.ReplaceAll(v, "_", " ") }
	for _, c := range checks[1:] {
		key, want, ok := strings.Cut(c, "=")
		if !ok {
			t.Fatalf("%s: check %q is not KEY=VALUE", where, c)
		}
		var got string
		switch key {
		case "step":
			got = strconv.Itoa(r.Step)
		case "run":
			got = strconv.Itoa(r.Run)
		case "traffic":
			got = fmt.Sprintf("%d/%d", r.Traffic.Baseline, r.Traffic.Candidate)
		case "shadow":
			got = strconv.FormatFloat(r.Traffic.ShadowPercent, 'f', -1, 64)
		case "sticky":
			got = "none"
			if r.Traffic.Sticky != nil {
				got = r.Traffic.Sticky.String()
			}
		case "retired":
			got = yesno(r.Traffic.BaselineRetired)
		case "events":
			var types []string
			for _, n := range d.Notifications {
				types = append(types, n.Type)
			}
			got = strings.Join(types, ",")
			if got == "" {
				got = "none"
			}
		case "changed":
			got = yesno(d.Changed)
		case "apply":
			got = yesno(d.Apply != nil)
		case "judge":
			got = "none"
			if d.Judge != nil {
				got = string(d.Judge.Mode)
			}
		case "samples":
			got = "none"
			if d.Judge != nil {
				got = strconv.Itoa(d.Judge.MinSamples)
			}
		case "smoke":
			got = yesno(d.Smoke != nil)
		case "wake":
			got = "none"
			if !d.WakeAt.IsZero() {
				got = d.WakeAt.Sub(t0).String()
			}
			if w, err := time.ParseDuration(want); err == nil {
				want = w.String()
			}
		case "verdicts":
			got = strconv.Itoa(len(r.Verdicts))
		case "outcome":
			got = "none"
			if len(r.Verdicts) > 0 {
				got = string(r.Verdicts[len(r.Verdicts)-1].Outcome)
			}
		case "by":
			got = "none"
			if len(r.History) > 0 && r.History[len(r.History)-1].By != "" {
				got = r.History[len(r.History)-1].By
			}
		case "approvals":
			got = strconv.Itoa(len(r.Approvals))
		case "aliases", "from":
			a := Desired(r)
			got = "none"
			if a.Aliases != nil {
				got = strconv.Itoa(a.Aliases.To)
				if key == "from" {
					got = strconv.Itoa(a.Aliases.From)
				}
			}
		case "stable":
			got = strconv.Itoa(Desired(r).Stable)
		case "reason":
			if !strings.Contains(r.Reason, words(want)) {
				t.Errorf("%s: reason %q does not contain %q", where, r.Reason, words(want))
			}
			continue
		case "cmderr":
			var errs []string
			for _, res := range d.Commands {
				if res.Err != nil {
					errs = append(errs, res.Err.Error())
				}
			}
			if want == "none" {
				if len(errs) > 0 {
					t.Errorf("%s: commands refused: %v", where, errs)
				}
				continue
			}
			if len(errs) == 0 || !strings.Contains(strings.Join(errs, "; "), words(want)) {
				t.Errorf("%s: command errors %q do not contain %q", where, errs, words(want))
			}
			continue
		default:
			t.Fatalf("%s: unknown check %q", where, key)
		}
		if got != want {
			t.Errorf("%s: %s=%s, want %s", where, key, got, want)
		}
	}
}

// judged runs the real judge over a run's counters, as the controller
// does with the last JudgeRequest; nil when nothing is to be judged.
func (s *scenarioRun) judged(where, counts string) *Verdict {
	var cr, ce, br, be uint64
	if n, err := fmt.Sscanf(counts, "%d/%d:%d/%d", &cr, &ce, &br, &be); n != 4 || err != nil {
		s.t.Fatalf("%s: metrics %q is not CR/CE:BR/BE", where, counts)
	}
	j := s.judge
	if j == nil {
		return nil
	}
	spec := *j.Analysis
	spec.MinSamples = j.MinSamples
	v := analysis.Judge(spec, analysis.Observations{
		Candidate: analysis.Version{Requests: cr, Errors: ce},
		Baseline:  analysis.Version{Requests: br, Errors: be},
	})
	return &Verdict{Run: j.Run, Verdict: v}
}
