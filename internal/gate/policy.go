// Package gate decides whether a model version may enter an environment:
// gate policies (numeric rules over an evaluation on holdout data, and
// the approvals required), promotions judged by them, and the people who
// approve or reject them, with separation of duties enforced here, on the
// server.
package gate

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/yamldoc"
)

// MaxPolicyBytes bounds a policy file.
const MaxPolicyBytes = 64 << 10

// maxRules bounds the rules of one policy.
const maxRules = 64

// policyFile is a GatePolicy as written in YAML.
type policyFile struct {
	Kind        string      `yaml:"kind"`
	Model       string      `yaml:"model"`
	Environment string      `yaml:"environment"`
	Evaluation  yaml.Node   `yaml:"evaluation"` // Kind 0 when absent
	Rules       []yaml.Node `yaml:"rules"`
	Approvals   yaml.Node   `yaml:"approvals"`
}

type evalFile struct {
	Dataset string `yaml:"dataset"`
}

type approvals struct {
	Required *int   `yaml:"required"`
	Role     string `yaml:"role"`
}

type ruleFile struct {
	Metric        string   `yaml:"metric"`
	Group         string   `yaml:"group"`
	Min           *float64 `yaml:"min"`
	Max           *float64 `yaml:"max"`
	MinVsChampion *float64 `yaml:"min_vs_champion"`
	MaxVsChampion *float64 `yaml:"max_vs_champion"`
}

// PolicyError is a policy refused, with the file, line and reason.
type PolicyError = yamldoc.Error

// Kind reads the kind of a YAML document without judging the rest, so
// `slipway apply` can dispatch it; file names the document in errors.
func Kind(file string, data []byte) (string, error) { return yamldoc.Kind(file, data) }

// ParsePolicy reads a GatePolicy document. file names it in errors. Every
// refusal is a *PolicyError with the line of the offending field.
func ParsePolicy(file string, data []byte) (domain.GatePolicy, error) {
	fail := func(line int, format string, args ...any) (domain.GatePolicy, error) {
		return domain.GatePolicy{}, yamldoc.Errorf(file, line, format, args...)
	}
	root, err := yamldoc.Root(file, data, MaxPolicyBytes, "a gate policy")
	if err != nil {
		return domain.GatePolicy{}, err
	}
	var f policyFile
	if err := yamldoc.DecodeStrict(root, &f); err != nil {
		return fail(yamldoc.Line(err), "%s", yamldoc.Reason(err))
	}
	line := func(key string) int { return yamldoc.KeyLine(root, key) }
	if f.Kind != "GatePolicy" {
		return fail(line("kind"), "kind is %q; this document needs kind: GatePolicy", truncate(f.Kind, 40))
	}
	p := domain.GatePolicy{Model: f.Model, Environment: f.Environment, Source: string(data)}
	if err := domain.ValidateName("model", f.Model); err != nil {
		return fail(line("model"), "%s", reason(err))
	}
	if err := domain.ValidateName("environment", f.Environment); err != nil {
		return fail(line("environment"), "%s", reason(err))
	}
	if yamldoc.Present(f.Evaluation) {
		var ev evalFile
		if err := yamldoc.DecodeStrict(&f.Evaluation, &ev); err != nil {
			return fail(yamldoc.Line(err), "evaluation: %s", yamldoc.Reason(err))
		}
		if err := validateDatasetRef(ev.Dataset); err != nil {
			return fail(f.Evaluation.Line, "evaluation.dataset: %s", reason(err))
		}
		p.Dataset = ev.Dataset
	}
	if len(f.Rules) > maxRules {
		return fail(line("rules"), "%d rules, at most %d allowed", len(f.Rules), maxRules)
	}
	for i := range f.Rules {
		n := &f.Rules[i]
		var rf ruleFile
		if err := yamldoc.DecodeStrict(n, &rf); err != nil {
			return fail(yamldoc.Line(err), "rule %d: %s", i+1, yamldoc.Reason(err))
		}
		r, err := checkRule(rf)
		if err != nil {
			return fail(n.Line, "rule %d: %s", i+1, reason(err))
		}
		p.Rules = append(p.Rules, r)
	}
	if len(p.Rules) > 0 && p.Dataset == "" {
		return fail(line("rules"), "rules need an evaluation dataset: add evaluation: {dataset: NAME}")
	}
	if yamldoc.Present(f.Approvals) {
		var a approvals
		if err := yamldoc.DecodeStrict(&f.Approvals, &a); err != nil {
			return fail(yamldoc.Line(err), "approvals: %s", yamldoc.Reason(err))
		}
		if a.Required == nil {
			return fail(line("approvals"), "approvals.required is missing: say how many distinct people must approve (0 to %d)", domain.MaxApprovals)
		}
		p.Approvals.Required = *a.Required
		if p.Approvals.Required < 0 || p.Approvals.Required > domain.MaxApprovals {
			return fail(line("approvals"), "approvals.required is %d; it must be from 0 to %d", p.Approvals.Required, domain.MaxApprovals)
		}
		if a.Role != "" {
			role, err := domain.ParseRole(a.Role)
			if err != nil {
				return fail(line("approvals"), "approvals.role: %s", reason(err))
			}
			if p.Approvals.Required == 0 {
				return fail(line("approvals"), "approvals.role %s with required: 0 asks no one to approve; set required: 1 or more, or leave approvals out", role)
			}
			if role == domain.RoleViewer || role == domain.RoleAuthor {
				return fail(line("approvals"), "approvals.role %s would let the people who read or push models approve them; use approver (the default), deployer or admin", role)
			}
			p.Approvals.Role = role
		}
	}
	if p.Approvals.Required > 0 && p.Approvals.Role == "" {
		p.Approvals.Role = domain.RoleApprover
	}
	if len(p.Rules) == 0 && p.Approvals.Required == 0 {
		return fail(0, "the policy has no rules and requires no approval, so it would let every version through; add rules or approvals")
	}
	return p, nil
}

// checkRule validates one rule: a known metric, at least one threshold,
// finite thresholds, a group only for fairness metrics (and required by
// them).
func checkRule(rf ruleFile) (domain.GateRule, error) {
	r := domain.GateRule{Metric: rf.Metric, Group: rf.Group, Min: rf.Min, Max: rf.Max, MinVsChampion: rf.MinVsChampion, MaxVsChampion: rf.MaxVsChampion}
	if r.Metric == "" {
		return r, fmt.Errorf("metric is missing; known metrics: %s: %w", strings.Join(KnownMetrics(), ", "), domain.ErrInvalid)
	}
	if !slices.Contains(KnownMetrics(), r.Metric) {
		return r, fmt.Errorf("unknown metric %q; known metrics: %s: %w", truncate(r.Metric, 40), strings.Join(KnownMetrics(), ", "), domain.ErrInvalid)
	}
	fair := r.Metric == domain.MetricTPRGap || r.Metric == domain.MetricPositiveRateGap
	switch {
	case fair && r.Group == "":
		return r, fmt.Errorf("%s needs group: the sensitive column its groups come from: %w", r.Metric, domain.ErrInvalid)
	case !fair && r.Group != "":
		return r, fmt.Errorf("group applies to the fairness metrics %s and %s only: %w", domain.MetricTPRGap, domain.MetricPositiveRateGap, domain.ErrInvalid)
	}
	if r.Min == nil && r.Max == nil && r.MinVsChampion == nil && r.MaxVsChampion == nil {
		return r, fmt.Errorf("rule on %s has no threshold; give min, max, min_vs_champion or max_vs_champion: %w", r.Metric, domain.ErrInvalid)
	}
	for name, v := range map[string]*float64{"min": r.Min, "max": r.Max, "min_vs_champion": r.MinVsChampion, "max_vs_champion": r.MaxVsChampion} {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			return r, fmt.Errorf("%s must be a finite number: %w", name, domain.ErrInvalid)
		}
	}
	if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		return r, fmt.Errorf("min %v is above max %v, so no value could pass: %w", *r.Min, *r.Max, domain.ErrInvalid)
	}
	return r, nil
}

// KnownMetrics lists every metric a rule may name, sorted.
func KnownMetrics() []string {
	seen := map[string]bool{}
	for _, ms := range domain.EvaluationMetrics {
		for _, m := range ms {
			seen[m] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// validateDatasetRef checks NAME or NAME@N.
func validateDatasetRef(ref string) error {
	if ref == "" {
		return fmt.Errorf("dataset is missing: %w", domain.ErrInvalid)
	}
	name, n, ok := strings.Cut(ref, "@")
	if err := domain.ValidateName("dataset", name); err != nil {
		return err
	}
	if ok {
		if _, err := parseVersionNumber(n); err != nil {
			return fmt.Errorf("dataset %q: %q after @ is not a version number: %w", truncate(ref, 80), truncate(n, 20), domain.ErrInvalid)
		}
	}
	return nil
}

func parseVersionNumber(s string) (int, error) {
	n := 0
	if s == "" || len(s) > 9 || s[0] == '0' {
		return 0, domain.ErrInvalid
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, domain.ErrInvalid
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// reason is an error's text without the trailing sentinel.
// ruleLines is the line of each rule of a policy ParsePolicy accepted,
// for errors found after parsing.
func ruleLines(data []byte) []int {
	root, err := yamldoc.Root("", data, MaxPolicyBytes, "a gate policy")
	if err != nil {
		return nil
	}
	var f policyFile
	if err := root.Decode(&f); err != nil {
		return nil
	}
	lines := make([]int, len(f.Rules))
	for i := range f.Rules {
		lines[i] = f.Rules[i].Line
	}
	return lines
}

func reason(err error) string { return yamldoc.Reason(err) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
