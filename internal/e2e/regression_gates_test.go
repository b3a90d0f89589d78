package e2e

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// diabetes holds a tiny regression fixture, unlike the breast-cancer
// classifiers: two XGBoost regressors on three features of scikit-learn's
// diabetes data and a 24-row JSON Lines holdout, written by make.py.
const diabetes = "testdata/diabetes"

// The metrics scikit-learn computed (make.py) from XGBoost's own
// predictions of each version on holdout.jsonl.
var diabetesReference = map[string]map[string]float64{
	"v1": {"r2": 0.3377523110926003, "mae": 45.34008598327637, "rmse": 57.296103053694},
	"v2": {"r2": -0.6354955992714741, "mae": 69.84706370035808, "rmse": 90.04084230579213},
}

// TestRegressionGatesEndToEnd: a regression model through the gates. A
// JSON Lines holdout with a numeric label is a regression dataset; the
// evaluation's R², MAE and RMSE equal scikit-learn's; a policy of
// regression rules (one against the champion) is applied, and one naming a
// classification metric is refused with its line; v1 needs two approvers
// and becomes champion; v2 is rejected by every rule.
func TestRegressionGatesEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	admin := srv.admin()
	carol := newToken(t, srv, "carol", domain.RoleAuthor)
	dan := newToken(t, srv, "dan", domain.RoleDeployer)
	bob := newToken(t, srv, "bob", domain.RoleApprover)
	cy := newToken(t, srv, "cy", domain.RoleApprover)
	dir, err := filepath.Abs(diabetes)
	if err != nil {
		t.Fatal(err)
	}
	carol.ok("model", "create", "diabetes")
	for _, v := range []string{"v1", "v2"} {
		carol.ok("version", "push", "diabetes", filepath.Join(dir, v+".json"), "--format", "xgboost-json")
	}
	var pushed api.DatasetPushResponse
	carol.json(&pushed, "dataset", "push", "diabetes-holdout", filepath.Join(dir, "holdout.jsonl"), "--label", "progression")
	if pushed.Dataset.Task != domain.TaskRegression || pushed.Dataset.Rows != 24 {
		t.Fatalf("dataset push: %+v", pushed.Dataset)
	}

	for i, v := range []string{"v1", "v2"} {
		var ev api.EvaluationResponse
		carol.json(&ev, "evaluate", "diabetes", strconv.Itoa(i+1), "--dataset", "diabetes-holdout")
		e := ev.Evaluation
		if e.Status != domain.EvaluationSucceeded || e.Task != domain.TaskRegression || e.Features == nil || e.Features.Rule != domain.MatchByName {
			t.Fatalf("evaluation of %s: %+v", v, e)
		}
		for m, want := range diabetesReference[v] {
			if got, ok := e.Metrics[m]; !ok || math.Abs(got-want) > 1e-9 {
				t.Errorf("%s %s = %v, scikit-learn %v", v, m, got, want)
			}
		}
	}

	policy := `kind: GatePolicy
model: diabetes
environment: production
evaluation: {dataset: diabetes-holdout}
rules:
  - metric: r2
    min: 0.3
  - metric: rmse
    max_vs_champion: 1
  - metric: mae
    max: 50
approvals: {required: 2}
`
	file := filepath.Join(t.TempDir(), "policy.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(policy, "metric: mae", "metric: roc_auc", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	admin.fail([]string{"apply", "-f", bad}, bad+":10:", "rule 3: roc_auc is not measured on regression dataset diabetes-holdout@1")
	admin.ok("apply", "-f", file)

	// v1: no champion yet, so the comparison is skipped; two approvers.
	var p1 domain.Promotion
	dan.json(&p1, "promote", "diabetes", "1", "--to", "production")
	if p1.State != domain.PromotionPending || len(p1.Results) != 3 || p1.Results[1].Verdict != domain.VerdictSkipped {
		t.Fatalf("v1 promotion: %+v", p1)
	}
	id := strconv.FormatInt(p1.ID, 10)
	carol.fail([]string{"approve", id}, "approver role")
	var half domain.Promotion
	bob.json(&half, "approve", id, "--comment", "R² 0.34 ≥ 0.3 — ok ✓")
	if half.State != domain.PromotionPending || half.Approvals() != 1 {
		t.Fatalf("after one of two approvals: %+v", half)
	}
	bob.fail([]string{"approve", id}, "already decided")
	var done domain.Promotion
	cy.json(&done, "approve", id)
	if done.State != domain.PromotionCompleted {
		t.Fatalf("after two approvals: %+v", done)
	}
	var champion domain.Alias
	carol.json(&champion, "alias", "get", "diabetes", "champion")
	if champion.Version != 1 {
		t.Fatalf("champion = %d, want 1", champion.Version)
	}

	// v2 breaks every rule, the one against the champion included.
	r := dan.fail([]string{"promote", "diabetes", "2", "--to", "production"}, "was rejected", "3 of 3 gate rules failed")
	for _, want := range []string{"r2", "rmse", "max_vs_champion", "57.2961", "58.2961", "90.0408", "mae", "FAIL"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("v2 gate table lacks %q:\n%s", want, r.stdout)
		}
	}
	if out := carol.ok("promotion", "get", id); !strings.Contains(out, "bob approved") || !strings.Contains(out, "R² 0.34 ≥ 0.3 — ok ✓") {
		t.Errorf("promotion get:\n%s", out)
	}
}
