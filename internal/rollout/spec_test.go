package rollout

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/yamldoc"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// describePlan is the golden form of a parsed spec and its plan.
func describePlan(s Spec) string {
	p := NewPlan(s)
	var b strings.Builder
	fmt.Fprintf(&b, "model %s in %s, candidate %s\n", s.Model, s.Environment, s.Candidate)
	fmt.Fprintf(&b, "strategy %s, rollback %s, progressDeadline %s, keepPrevious %s\n", p.Strategy, p.Rollback, p.ProgressDeadline, p.KeepPrevious)
	if a := p.Analysis; a != nil {
		fmt.Fprintf(&b, "analysis: minSamples %d, falseRollbackRate %g, %d rules\n", a.MinSamples, a.FalseRollbackRate, len(a.Rules))
	}
	for _, c := range p.Smoke {
		fmt.Fprintf(&b, "smoke %q: %s expects %s ±%g\n", c.Name, c.Request, c.Expect, c.Tolerance)
	}
	for i, st := range p.Steps {
		fmt.Fprintf(&b, "%2d %-9s %s\n", i, st.Kind, st)
	}
	return b.String()
}

// TestParseSpecGolden parses every spec under testdata/specs and
// compares the result and its plan with the .plan file beside it.
func TestParseSpecGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/specs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no specs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParseSpec(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if s.Source != string(data) {
				t.Error("Source is not the document")
			}
			got := describePlan(s)
			golden := strings.TrimSuffix(f, ".yaml") + ".plan"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("plan of %s:\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}

// TestParseSpecFields checks the example field by field.
func TestParseSpecFields(t *testing.T) {
	data, err := os.ReadFile("testdata/specs/canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSpec("canary.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Model != "breast-cancer" || s.Environment != "production" || s.Candidate != (CandidateRef{Alias: "challenger"}) {
		t.Errorf("header: %+v", s)
	}
	if s.Strategy != Canary || s.Canary == nil || s.BlueGreen != nil || s.Shadow != nil || s.ABTest != nil {
		t.Fatalf("strategy: %+v", s)
	}
	want := []CanaryStep{
		{Weight: 5, Pause: 30 * time.Second}, {Weight: 25, Pause: time.Minute},
		{Approval: &ApprovalStep{Role: domain.RoleApprover}}, {Weight: 100},
	}
	if len(s.Canary.Steps) != len(want) {
		t.Fatalf("steps = %+v, want %+v", s.Canary.Steps, want)
	}
	for i, g := range s.Canary.Steps {
		w := want[i]
		if g.Weight != w.Weight || g.Pause != w.Pause || g.Analysis != nil || (g.Approval == nil) != (w.Approval == nil) || g.Approval != nil && *g.Approval != *w.Approval {
			t.Errorf("step %d = %+v, want %+v", i+1, g, w)
		}
	}
	a := s.Analysis
	if a == nil || a.MinSamples != 200 || a.FalseRollbackRate != 0.01 || len(a.Rules) != 3 {
		t.Fatalf("analysis = %+v", a)
	}
	r0, r1, r2 := a.Rules[0], a.Rules[1], a.Rules[2]
	if r0.Metric != "error_rate" || *r0.Max != 0.02 || *r0.MaxVsBaseline != 0.005 || r0.MaxRatioVsBaseline != nil {
		t.Errorf("rule 1 = %+v", r0)
	}
	if r1.Metric != "latency_p99_ms" || *r1.MaxRatioVsBaseline != 1.25 {
		t.Errorf("rule 2 = %+v", r1)
	}
	if r2.Prometheus == nil || r2.Prometheus.Query != "sum(rate(app_checkout_failures_total[1m]))" || *r2.Prometheus.Max != 3 {
		t.Errorf("rule 3 = %+v", r2)
	}
	wantPlan := "start candidate at 0 % → weight 5 → pause 30s → analysis (200 samples) → weight 25 → pause 1m0s → analysis (200 samples) → approval by approver → weight 100 → promote"
	if got := NewPlan(s).String(); got != wantPlan {
		t.Errorf("plan %s\nwant %s", got, wantPlan)
	}
	if s.Rollback != RollbackAutomatic || s.ProgressDeadline != 10*time.Minute {
		t.Errorf("rollback %s, deadline %s", s.Rollback, s.ProgressDeadline)
	}
}

// TestParseSpecRefuses: each bad document is refused with the line of
// the offending field and a reason a person can act on.
func TestParseSpecRefuses(t *testing.T) {
	head := "kind: Rollout\nmodel: m\nenvironment: production\ncandidate: 2\n"
	canary := "strategy:\n  canary:\n    steps:\n      - weight: 5\n"
	rules := "analysis:\n  rules:\n    - metric: error_rate\n      max: 0.02\n"
	for _, c := range []struct {
		name, doc string
		line      int
		want      string
	}{
		{"empty", "", 0, "not valid YAML"},
		{"list", "- a\n", 1, "is a mapping"},
		{"two docs", head + canary + "---\nkind: Rollout\n", 9, "more than one YAML document"},
		{"kind", "kind: GatePolicy\nmodel: m\n", 1, "needs kind: Rollout"},
		{"unknown top", head + canary + "color: red\n", 9, `unknown field "color"`},
		{"twice", head + "model: n\n" + canary, 5, `"model" is given twice`},
		{"model", "kind: Rollout\nmodel: Bad Name\n", 2, "model name"},
		{"environment", "kind: Rollout\nmodel: m\nenvironment: ''\n", 3, "environment name is empty"},
		{"no candidate", "kind: Rollout\nmodel: m\nenvironment: e\n" + canary, 0, "candidate is missing"},
		{"candidate zero", "kind: Rollout\nmodel: m\nenvironment: e\ncandidate: 0\n" + canary, 4, "version number from 1"},
		{"candidate leading zero", "kind: Rollout\nmodel: m\nenvironment: e\ncandidate: '03'\n" + canary, 4, "version number"},
		{"candidate alias", "kind: Rollout\nmodel: m\nenvironment: e\ncandidate: '@Champion'\n" + canary, 4, "alias name"},
		{"candidate map", "kind: Rollout\nmodel: m\nenvironment: e\ncandidate: {a: 1}\n" + canary, 4, "candidate is"},
		{"no strategy", head, 0, "strategy is missing"},
		{"empty strategy", head + "strategy: {}\n", 5, "strategy is empty"},
		{"two strategies", head + canary + "  abTest: {key: 'header:X', duration: 1h}\n", 9, "exactly one strategy"},
		{"unknown strategy", head + "strategy:\n  linear: {}\n", 6, `unknown field "linear"`},
		{"rollback", head + canary + "rollback: sometimes\n", 9, "automatic or manual"},
		{"deadline unit", head + canary + "progressDeadline: 10\n", 9, "not a duration"},
		{"deadline short", head + canary + "progressDeadline: 1s\n", 9, "from 10s to 24h0m0s"},
		{"no steps", head + "strategy:\n  canary: {steps: []}\n", 6, "steps is missing or empty"},
		{"weight zero", head + "strategy:\n  canary:\n    steps:\n      - weight: 0\n", 8, "from 1 to 100"},
		{"weight over", head + "strategy:\n  canary:\n    steps:\n      - weight: 101\n", 8, "from 1 to 100"},
		{"weight percent", head + "strategy:\n  canary:\n    steps:\n      - weight: 5%\n", 8, "cannot unmarshal"},
		{"weight down", head + canary + "      - weight: 5\n", 9, "must be above the previous step's 5"},
		{"weight fraction", head + "strategy:\n  canary:\n    steps:\n      - weight: 10.5\n", 8, "must be a whole percent"},
		{"ab split fraction", head + "strategy:\n  abTest: {key: 'header:X', duration: 1h, split: 30.5}\n" + rules, 6, "must be a whole percent"},
		{"pause unit", head + canary + "        pause: 30\n", 9, "not a duration"},
		{"pause negative", head + canary + "        pause: -1s\n", 9, "must be from"},
		{"pause long", head + canary + "        pause: 25h\n", 9, "must be from"},
		{"empty step", head + canary + "      - {}\n", 9, "step 2 is empty"},
		{"unknown step field", head + canary + "        wait: 1s\n", 9, `unknown field "wait"`},
		{"role", head + canary + "      - approval: {role: boss}\n", 9, "not one of viewer"},
		{"viewer", head + canary + "      - approval: {role: viewer}\n", 9, "a viewer may not approve"},
		{"approval null", head + canary + "      - approval:\n", 9, "expected a mapping"},
		{"analysis step without block", head + canary + "      - analysis: {}\n", 9, "needs the rollout's analysis block"},
		{"analysis before weight", head + "strategy:\n  canary:\n    steps:\n      - analysis: {}\n" + rules, 8, "no traffic to judge"},
		{"analysis step samples", head + canary + "      - analysis: {minSamples: 0}\n" + rules, 9, "minSamples 0"},
		{"no rules", head + canary + "analysis: {minSamples: 5}\n", 9, "no rules"},
		{"min samples", head + canary + "analysis:\n  minSamples: 0\n", 10, "minSamples is 0"},
		{"false rate", head + canary + "analysis:\n  falseRollbackRate: 0.9\n", 10, "falseRollbackRate: is 0.9"},
		{"rule metric", head + canary + "analysis:\n  rules:\n    - metric: Error Rate\n      max: 1\n", 11, `"Error Rate" is not one of error_rate`},
		{"rule threshold", head + canary + "analysis:\n  rules:\n    - metric: error_rate\n", 11, "has no threshold"},
		{"rule nan", head + canary + "analysis:\n  rules:\n    - metric: error_rate\n      max: .nan\n", 12, "max: must be a finite number"},
		{"rule min", head + canary + "analysis:\n  rules:\n    - {metric: error_rate, min: 2, max: 1}\n", 11, `unknown field "min"`},
		{"rule field line", head + canary + "analysis:\n  rules:\n    - metric: error_rate\n      max: 0.01\n    - metric: latency_p99_ms\n      max: 200\n      maxRatioVsBaseline: 0.5\n", 15, "rules[1].maxRatioVsBaseline: is 0.5"},
		{"rule duplicate", head + canary + "analysis:\n  rules:\n    - {metric: error_rate, max: 0.01}\n    - {metric: error_rate, maxVsBaseline: 0.01}\n", 12, "already judged"},
		{"prometheus min above max", head + canary + "analysis:\n  rules:\n    - prometheus:\n        query: up\n        max: 1\n        min: 2\n", 11, "min 2 is above max 1"},
		{"prometheus blank query", head + canary + "analysis:\n  rules:\n    - prometheus:\n        query: ' '\n        max: 1\n", 12, "prometheus.query: missing"},
		{"prometheus unknown", head + canary + "analysis:\n  rules:\n    - prometheus: {query: up, max: 1, step: 5}\n", 11, `unknown field "step"`},
		{"rule ratio", head + canary + "analysis:\n  rules:\n    - {metric: latency_p99_ms, maxRatioVsBaseline: 0}\n", 11, "from 1 to 1000"},
		{"rule unknown", head + canary + "analysis:\n  rules:\n    - {metric: error_rate, max: 1, mx: 2}\n", 11, `unknown field "mx"`},
		{"prometheus mixed", head + canary + "analysis:\n  rules:\n    - {metric: x, prometheus: {query: up, max: 1}}\n", 11, "either a metric or a prometheus query"},
		{"prometheus bound", head + canary + "analysis:\n  rules:\n    - prometheus: {query: up}\n", 11, "no bound"},
		{"prometheus query", head + canary + "analysis:\n  rules:\n    - prometheus: {query: '', max: 1}\n", 11, "prometheus.query: missing"},
		{"bg nothing", head + "strategy:\n  blueGreen: {keepPrevious: 5m}\n", 6, "checks nothing"},
		{"bg keep", head + "strategy:\n  blueGreen:\n    keepPrevious: 48h\n", 7, "keepPrevious"},
		{"bg preswitch needs analysis", head + "strategy:\n  blueGreen:\n    preSwitch: {duration: 1m}\n", 7, "needs the rollout's analysis block"},
		{"bg preswitch duration", head + "strategy:\n  blueGreen:\n    preSwitch: {percent: 5}\n" + rules, 7, "duration is missing"},
		{"bg preswitch percent", head + "strategy:\n  blueGreen:\n    preSwitch: {duration: 1m, percent: 0}\n" + rules, 7, "percent 0"},
		{"smoke request", head + "strategy:\n  blueGreen:\n    smoke:\n      - {request: 3, expect: 1}\n", 8, "request must be the JSON body"},
		{"smoke expect", head + "strategy:\n  blueGreen:\n    smoke:\n      - {request: {a: 1}}\n", 8, "expect is missing"},
		{"smoke keys", head + "strategy:\n  blueGreen:\n    smoke:\n      - {request: {a: 1}, expect: {1: 2}}\n", 8, "not expressible as JSON"},
		{"smoke tolerance", head + "strategy:\n  blueGreen:\n    smoke:\n      - {request: {a: 1}, expect: 1, tolerance: -1}\n", 8, "tolerance -1"},
		{"shadow duration", head + "strategy:\n  shadow:\n    steps: [{weight: 5}]\n", 7, "shadow.duration is missing"},
		{"shadow steps", head + "strategy:\n  shadow: {duration: 5m}\n", 6, "shadow.steps is missing"},
		{"shadow percent", head + "strategy:\n  shadow: {duration: 5m, percent: 101, steps: [{weight: 5}]}\n", 6, "percent 101"},
		{"ab needs analysis", head + "strategy:\n  abTest: {key: 'header:X', duration: 1h}\n", 6, "needs the rollout's analysis block"},
		{"ab key", head + "strategy:\n  abTest: {key: 'cookie:x', duration: 1h}\n" + rules, 6, "must start with header: or json:"},
		{"ab no key", head + "strategy:\n  abTest: {duration: 1h}\n" + rules, 6, "abTest.key is missing"},
		{"ab duration", head + "strategy:\n  abTest: {key: 'header:X'}\n" + rules, 6, "abTest.duration is missing"},
		{"ab split", head + "strategy:\n  abTest: {key: 'header:X', duration: 1h, split: 100}\n" + rules, 6, "split 100"},
		{"ab winner", head + "strategy:\n  abTest: {key: 'header:X', duration: 1h, winner: auto}\n" + rules, 6, "winner"},
		{"too big", head + strings.Repeat("#", MaxSpecBytes), 0, "bytes, at most"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSpec("r.yaml", []byte(c.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.doc)
			}
			var ye *yamldoc.Error
			if !errors.As(err, &ye) || !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("error %T %v is not a yamldoc.Error and ErrInvalid", err, err)
			}
			if ye.File != "r.yaml" || ye.Line != c.line || !strings.Contains(ye.Reason, c.want) {
				t.Errorf("got %q (line %d); want line %d with %q", err, ye.Line, c.line, c.want)
			}
		})
	}
}
