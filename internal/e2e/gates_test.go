package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// newToken creates a token through the CLI and returns a client using it.
func newToken(t *testing.T, srv *server, name string, role domain.Role) *cli {
	t.Helper()
	out := strings.TrimSpace(srv.admin().ok("token", "create", "--name", name, "--role", string(role), "-o", "json"))
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token create -o json: %q, %v", out, err)
	}
	return srv.client(tok.Token)
}

// TestGatesEndToEnd is the story through the real binary with the
// committed breast-cancer models: v2 fails the production gate with a
// table naming the rules it broke; v3 passes, waits for approval, is
// refused approval by its own author, is approved by another approver and
// becomes champion; the audit log shows every step and verifies.
func TestGatesEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	admin := srv.admin()
	lead := newToken(t, srv, "ann", domain.RoleAdmin) // trains and pushes; also an admin
	dan := newToken(t, srv, "dan", domain.RoleDeployer)
	bob := newToken(t, srv, "bob", domain.RoleApprover)
	vic := newToken(t, srv, "vic", domain.RoleViewer)
	examples, err := filepath.Abs(breastCancer)
	if err != nil {
		t.Fatal(err)
	}
	lead.ok("model", "create", "breast-cancer")
	for _, v := range []string{"v1", "v2", "v3"} {
		lead.ok("version", "push", "breast-cancer", filepath.Join(examples, v+".json"), "--format", "xgboost-json")
	}
	lead.ok("dataset", "push", "bc-holdout", filepath.Join(examples, "holdout-eval.csv"),
		"--label", "label", "--segment", "size_band", "--sensitive", "age_band")
	receiver, hooks := hookReceiver(t, http.StatusOK)
	admin.ok("webhook", "add", receiver.URL, "--event", "promotion.*")

	// Without a policy, only dev (or break glass) takes a version.
	dan.fail([]string{"promote", "breast-cancer", "1", "--to", "production"}, "no gate policy", "slipway apply")
	dan.ok("promote", "breast-cancer", "1", "--to", "dev")
	// Environment aliases move by promotion, not by hand (except admins).
	dan.fail([]string{"alias", "set", "breast-cancer", "champion", "2"}, "moved by promotions")
	dan.fail([]string{"promote", "breast-cancer", "1", "--to", "production", "--break-glass", "--reason", "x"}, "admin role")
	out := admin.ok("promote", "breast-cancer", "1", "--to", "production", "--break-glass", "--reason", "first champion, before gates existed")
	if !strings.Contains(out, "BREAK GLASS") || !strings.Contains(out, "completed") {
		t.Fatalf("break glass:\n%s", out)
	}

	// The policy: refused with file, line and reason when broken; applied
	// by an admin only.
	policy := filepath.Join(examples, "policy-production.yaml")
	doc, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(doc), "metric: roc_auc", "metric: rocauc", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	admin.fail([]string{"apply", "-f", bad}, bad+":11:", `rule 1: unknown metric "rocauc"`)
	dan.fail([]string{"apply", "-f", policy}, "admin role")
	if out := admin.ok("apply", "-f", policy); !strings.Contains(out, "applied") {
		t.Fatalf("apply:\n%s", out)
	}
	if out := admin.ok("apply", "-f", policy); !strings.Contains(out, "unchanged") {
		t.Fatalf("second apply:\n%s", out)
	}

	// v2 fails with a table naming the rules it broke.
	r := dan.fail([]string{"promote", "breast-cancer", "2", "--to", "production"}, "was rejected", "roc_auc", "tpr_gap")
	for _, want := range []string{"roc_auc", "min_vs_champion", "tpr_gap[age_band]", "FAIL", "PASS", "rejected"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("v2 gate table lacks %q:\n%s", want, r.stdout)
		}
	}

	// v3 passes every rule and waits for one approval.
	var p3 domain.Promotion
	dan.json(&p3, "promote", "breast-cancer", "3", "--to", "production")
	if p3.State != domain.PromotionPending || len(p3.Results) != 4 || p3.Champion != 1 {
		t.Fatalf("v3 promotion: %+v", p3)
	}
	for _, res := range p3.Results {
		if res.Verdict != domain.VerdictPass {
			t.Errorf("v3 rule %s %s: %s (%s)", res.Metric, res.Kind, res.Verdict, res.Reason)
		}
	}
	id := strconv.FormatInt(p3.ID, 10)
	lead.fail([]string{"approve", id}, "ann pushed version 3", "separation of duties")
	dan.fail([]string{"approve", id}, "approver role")
	vic.fail([]string{"approve", id}, "approver role")
	var still domain.Promotion
	vic.json(&still, "promotion", "get", id)
	if still.State != domain.PromotionPending || len(still.Decisions) != 0 {
		t.Fatalf("refused approvals changed the promotion: %+v", still)
	}
	var done domain.Promotion
	bob.json(&done, "approve", id, "--comment", "AUC and fairness hold on the holdout")
	if done.State != domain.PromotionCompleted || done.Previous != 1 {
		t.Fatalf("approved promotion: %+v", done)
	}
	bob.fail([]string{"approve", id}, "is completed")
	var champion domain.Alias
	vic.json(&champion, "alias", "get", "breast-cancer", "champion")
	if champion.Version != 3 {
		t.Fatalf("champion = %d, want 3", champion.Version)
	}
	var v3 domain.Version
	vic.json(&v3, "version", "get", "breast-cancer", "3")
	if v3.State != domain.StateProduction {
		t.Fatalf("v3 state = %s", v3.State)
	}

	// The gate holds for deployments by hand too: v2, rejected, may not
	// take production traffic; v3, promoted, may.
	dan.ok("deploy", "breast-cancer", "1", "--env", "production")
	dan.fail([]string{"deploy", "breast-cancer", "2", "--env", "production"}, "has not passed the production gate")
	dan.fail([]string{"traffic", "set", "breast-cancer", "--env", "production", "1=90", "2=10"}, "has not passed the production gate")
	dan.ok("traffic", "set", "breast-cancer", "--env", "production", "1=90", "3=10")

	// History: who held production, when and why.
	var hist api.List[domain.Promotion]
	vic.json(&hist, "promotion", "list", "breast-cancer", "--env", "production")
	if len(hist.Items) != 3 || hist.Items[0].Version != 3 || hist.Items[0].State != domain.PromotionCompleted ||
		hist.Items[1].State != domain.PromotionRejected || !hist.Items[2].BreakGlass {
		t.Fatalf("history: %+v", hist.Items)
	}
	if out := vic.ok("promotion", "list", "breast-cancer"); !strings.Contains(out, "BREAK GLASS") || !strings.Contains(out, "bob") {
		t.Errorf("promotion list:\n%s", out)
	}

	// Webhooks heard every step, as signed CloudEvents, in order.
	var events []string
	for len(events) < 8 {
		select {
		case req := <-hooks:
			var ev struct {
				Type    string `json:"type"`
				Subject string `json:"subject"`
			}
			if err := json.Unmarshal(req.body, &ev); err != nil || !strings.HasPrefix(req.header.Get("X-Slipway-Signature"), "sha256=") {
				t.Fatalf("webhook request %s: %v", req.body, err)
			}
			events = append(events, strings.TrimPrefix(ev.Type, "dev.slipway.")+" "+ev.Subject)
		case <-time.After(30 * time.Second):
			t.Fatalf("webhook events so far: %v", events)
		}
	}
	slices.Sort(events)
	want := []string{"promotion.requested model/breast-cancer/promotion/1", "promotion.completed model/breast-cancer/promotion/1",
		"promotion.approved model/breast-cancer/promotion/" + id, "promotion.completed model/breast-cancer/promotion/" + id,
		"promotion.completed model/breast-cancer/promotion/2", "promotion.rejected model/breast-cancer/promotion/3",
		"promotion.requested model/breast-cancer/promotion/2", "promotion.requested model/breast-cancer/promotion/" + id}
	slices.Sort(want)
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("webhook events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}

	// The audit log shows every step, and verifies.
	audit := vic.ok("audit", "list", "--subject", "model/breast-cancer")
	for _, want := range []string{"promotion.break_glass", "gate_policy.apply", "promotion.reject", "promotion.request",
		"promotion.approve", "alias.set", "version.state", "promotion.complete"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s:\n%s", want, audit)
		}
	}
	if out := vic.ok("audit", "verify"); !strings.Contains(out, "ok") && !strings.Contains(out, "intact") && !strings.Contains(out, "verified") {
		t.Errorf("audit verify:\n%s", out)
	}
}
