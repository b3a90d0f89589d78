package gate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/gate"
)

const issuePolicy = `kind: GatePolicy
model: breast-cancer
environment: production
evaluation: {dataset: bc-holdout}
rules:
  - metric: roc_auc
    min: 0.95
  - metric: f1
    min_vs_champion: -0.01        # at most 0.01 below the champion
  - metric: latency_p99_ms
    max: 20
  - metric: tpr_gap
    group: age_band
    max: 0.05
approvals: {required: 1, role: approver}
`

func TestParsePolicyFromTheIssue(t *testing.T) {
	p, err := gate.ParsePolicy("policy.yaml", []byte(issuePolicy))
	if err != nil {
		t.Fatal(err)
	}
	if p.Model != "breast-cancer" || p.Environment != "production" || p.Dataset != "bc-holdout" ||
		p.Approvals.Required != 1 || p.Approvals.Role != domain.RoleApprover || len(p.Rules) != 4 || p.Source != issuePolicy {
		t.Fatalf("policy = %+v", p)
	}
	r := p.Rules
	if r[0].Metric != "roc_auc" || *r[0].Min != 0.95 || r[1].MinVsChampion == nil || *r[1].MinVsChampion != -0.01 ||
		*r[2].Max != 20 || r[3].Group != "age_band" || *r[3].Max != 0.05 || !r[1].NeedsChampion() || r[0].NeedsChampion() {
		t.Fatalf("rules = %+v", r)
	}
}

func TestParsePolicyRefusals(t *testing.T) {
	head := "kind: GatePolicy\nmodel: m\nenvironment: production\nevaluation: {dataset: holdout}\n"
	cases := []struct {
		doc  string
		line int
		want string
	}{
		{head + "rules:\n  - metric: rocauc\n    min: 0.9\n", 6, `rule 1: unknown metric "rocauc"; known metrics: accuracy`},
		{head + "rules:\n  - metric: f1\n", 6, "rule 1: rule on f1 has no threshold"},
		{head + "rules:\n  - metric: f1\n    minimum: 0.9\n", 7, `rule 1: unknown field "minimum"; allowed here: metric, group, min, max`},
		{head + "rules:\n  - metric: f1\n    min: high\n", 7, "rule 1: cannot unmarshal"},
		{head + "rules:\n  - metric: f1\n    min: 0.9\n    max: 0.5\n", 6, "min 0.9 is above max 0.5"},
		{head + "rules:\n  - metric: f1\n    min: .nan\n", 6, "min must be a finite number"},
		{head + "rules:\n  - metric: tpr_gap\n    max: 0.1\n", 6, "tpr_gap needs group"},
		{head + "rules:\n  - metric: f1\n    group: sex\n    min: 0.1\n", 6, "group applies to the fairness metrics"},
		{head + "rules:\n  - f1\n", 6, "rule 1: expected a mapping"},
		{head + "rules:\n  - metric: f1\n    min: 0.1\n    min: 0.2\n", 8, `field "min" is given twice`},
		{head + "approvals: {required: 11}\n", 5, "approvals.required is 11"},
		{head + "approvals: {required: 1, role: boss}\n", 5, `approvals.role: role "boss"`},
		{head + "approvals: {required: 1, who: x}\n", 5, `approvals: unknown field "who"`},
		{head + "approvals: {required: 1, role: viewer}\n", 5, "approvals.role viewer would let"},
		{head + "approvals: {required: 1, role: author}\n", 5, "approvals.role author would let"},
		{head + "approvals: {required: 0}\n", 0, "would let every version through"},
		{head + "approvals: {role: approver}\n", 5, "approvals.required is missing"},
		{head + "approvals: {}\n", 5, "approvals.required is missing"},
		{head + "rules:\n  - metric: f1\n    min: 0.5\napprovals: {required: 0, role: deployer}\n", 8, "approvals.role deployer with required: 0 asks no one"},
		{head + "rules: [{metric: f1, min: 0.1}]\nowner: me\n", 6, `unknown field "owner"`},
		{"kind: GatePolicy\nmodel: m\nenvironment: production\nrules:\n  - metric: f1\n    min: 0.1\n", 4, "rules need an evaluation dataset"},
		{"kind: GatePolicy\nmodel: m\nenvironment: production\nevaluation: {dataset: 'x@0'}\nrules: [{metric: f1, min: 0.1}]\n", 4, "not a version number"},
		{"kind: GatePolicy\nmodel: m\nenvironment: production\nevaluation: {dataset: x, at: 1}\n", 4, `evaluation: unknown field "at"`},
		{"kind: Rollout\nmodel: m\n", 1, "needs kind: GatePolicy"},
		{"kind: GatePolicy\nmodel: Bad Name\n", 2, "model name"},
		{"kind: GatePolicy\nmodel: m\nenvironment: production\nrules: [\n", 4, "not valid YAML"},
		{"- a\n- b\n", 1, "a gate policy is a mapping"},
		{head + "approvals: {required: 1}\n---\nkind: GatePolicy\n", 6, "more than one YAML document"},
	}
	for _, c := range cases {
		_, err := gate.ParsePolicy("p.yaml", []byte(c.doc))
		pe, ok := errors.AsType[*gate.PolicyError](err)
		if !ok || !errors.Is(err, domain.ErrInvalid) || pe.File != "p.yaml" || pe.Line != c.line || !strings.Contains(pe.Reason, c.want) {
			t.Errorf("ParsePolicy(%q)\n = %v\nwant line %d containing %q", c.doc, err, c.line, c.want)
		}
	}
	big := "kind: GatePolicy\n#" + strings.Repeat("x", gate.MaxPolicyBytes) + "\n"
	if _, err := gate.ParsePolicy("p.yaml", []byte(big)); !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized policy: %v", err)
	}
}

func TestParsePolicyDefaultsApproverRole(t *testing.T) {
	p, err := gate.ParsePolicy("p.yaml", []byte("kind: GatePolicy\nmodel: m\nenvironment: staging\napprovals: {required: 2}\n"))
	if err != nil || p.Approvals.Role != domain.RoleApprover || p.Approvals.Required != 2 || len(p.Rules) != 0 {
		t.Fatalf("policy = %+v, %v", p, err)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(issuePolicy))
	f.Add([]byte("kind: GatePolicy\nmodel: m\nenvironment: e\napprovals: {required: 1}\n"))
	f.Add([]byte("kind: GatePolicy\nrules: [{metric: f1, min: .inf}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := gate.ParsePolicy("f.yaml", b)
		if err != nil {
			if _, ok := errors.AsType[*gate.PolicyError](err); !ok {
				t.Fatalf("error is not a PolicyError: %v", err)
			}
			return
		}
		if domain.ValidateName("model", p.Model) != nil || len(p.Rules) == 0 && p.Approvals.Required == 0 {
			t.Fatalf("accepted an invalid policy: %+v", p)
		}
	})
}
