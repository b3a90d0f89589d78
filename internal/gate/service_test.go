package gate_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/gate"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

var (
	admin    = gate.Actor{Name: "root", Role: domain.RoleAdmin}
	author   = gate.Actor{Name: "ann", Role: domain.RoleAuthor}
	deployer = gate.Actor{Name: "dan", Role: domain.RoleDeployer}
	approver = gate.Actor{Name: "bob", Role: domain.RoleApprover}
	second   = gate.Actor{Name: "cy", Role: domain.RoleApprover}
	viewer   = gate.Actor{Name: "vic", Role: domain.RoleViewer}
)

// metricsByVersion is what the fake evaluator "measures" per version; the
// real runtime path is tested in evalrun and end to end.
type evaluator struct {
	st      store.Store
	metrics map[int]map[string]float64
	mu      sync.Mutex
	calls   []string
}

func (e *evaluator) Evaluate(ctx context.Context, actor, model, versionRef, datasetRef string) (domain.Evaluation, error) {
	e.mu.Lock()
	e.calls = append(e.calls, versionRef+"/"+datasetRef)
	e.mu.Unlock()
	n, _ := strconv.Atoi(versionRef)
	name, num, _ := domain.ParseDatasetRef(datasetRef)
	d, err := e.st.GetDataset(ctx, name, num)
	if err != nil {
		return domain.Evaluation{}, err
	}
	ev := domain.Evaluation{Model: model, Version: n, Dataset: d.Name, DatasetVersion: d.Number, DatasetDigest: d.Digest,
		Status: domain.EvaluationRunning, Task: domain.TaskClassification, CreatedBy: actor, StartedAt: time.Now()}
	err = e.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		if ev, err = tx.CreateEvaluation(ctx, ev); err != nil {
			return err
		}
		at := time.Now()
		ev.Status, ev.Rows, ev.Metrics, ev.FinishedAt = domain.EvaluationSucceeded, 10, e.metrics[n], &at
		return tx.FinishEvaluation(ctx, ev)
	})
	return ev, err
}

type datasets struct{ st store.Store }

func (d datasets) GetDataset(ctx context.Context, ref string) (domain.Dataset, error) {
	name, n, err := domain.ParseDatasetRef(ref)
	if err != nil {
		return domain.Dataset{}, err
	}
	return d.st.GetDataset(ctx, name, n)
}

type fixture struct {
	svc    *gate.Service
	st     store.Store
	reg    *registry.Registry
	eval   *evaluator
	events []string
}

// setup: model bc with versions 1 (champion, production) 2 (weak) and 3
// (strong), all pushed by ann; a holdout dataset.
func setup(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := registry.New(registry.Config{Store: st})
	ctx := t.Context()
	if _, err := reg.CreateModel(ctx, "ann", domain.Model{Name: "bc"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := reg.PushVersion(ctx, "ann", registry.Push{Model: "bc", Format: domain.FormatExternal}); err != nil {
			t.Fatal(err)
		}
	}
	// Only champion: the first promotion into production still learns
	// which version it replaces.
	if _, err := reg.SetAlias(ctx, "root", "bc", "champion", "1", nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.CreateDataset(ctx, domain.Dataset{Name: "holdout", Digest: "sha256:" + strings.Repeat("a", 64), Format: "csv", Rows: 10,
			Columns: []domain.DatasetColumn{{Name: "y", Type: "int"}}, Task: domain.TaskClassification, Label: "y", CreatedBy: "ann", CreatedAt: time.Now()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ev := &evaluator{st: st, metrics: map[int]map[string]float64{
		1: {"roc_auc": 0.97, "f1": 0.93, "latency_p99_ms": 2},
		2: {"roc_auc": 0.90, "f1": 0.80, "latency_p99_ms": 30},
		3: {"roc_auc": 0.99, "f1": 0.925, "latency_p99_ms": 3},
	}}
	f := &fixture{st: st, reg: reg, eval: ev}
	f.svc = gate.New(gate.Config{Store: st, Versions: reg, Datasets: datasets{st}, Evaluator: ev, Clock: clock.Real{},
		Events: func(ctx context.Context, tx store.Tx, typ, subject string, data any) error {
			f.events = append(f.events, typ+" "+subject)
			return nil
		}})
	return f
}

const prodPolicy = `kind: GatePolicy
model: bc
environment: production
evaluation: {dataset: holdout}
rules:
  - metric: roc_auc
    min: 0.95
  - metric: f1
    min_vs_champion: -0.01
  - metric: latency_p99_ms
    max: 20
approvals: {required: 1, role: approver}
`

func (f *fixture) apply(t *testing.T, doc string) gate.ApplyResult {
	t.Helper()
	res, err := f.svc.ApplyPolicy(t.Context(), admin, "policy.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *fixture) alias(t *testing.T, name string) int {
	t.Helper()
	a, err := f.st.GetAlias(t.Context(), "bc", name)
	if err != nil {
		return 0
	}
	return a.Version
}

func TestPromotionFromTheIssue(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	if _, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "production"}); !errors.Is(err, domain.ErrPrecondition) ||
		!strings.Contains(err.Error(), "no gate policy") {
		t.Fatalf("promotion without a policy: %v", err)
	}
	if res := f.apply(t, prodPolicy); res.Policy.Revision != 1 || res.Unchanged {
		t.Fatalf("apply = %+v", res)
	}

	// v2 fails with the rules it broke.
	p2, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "2", To: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if p2.State != domain.PromotionRejected || len(p2.Results) != 3 || !strings.Contains(p2.Reason, "3 of 3 gate rules failed") ||
		!strings.Contains(p2.Reason, "roc_auc min (0.9 < 0.95)") || !strings.Contains(p2.Reason, "f1 min_vs_champion (0.8 < 0.92)") ||
		!strings.Contains(p2.Reason, "latency_p99_ms max (30 > 20)") || p2.Champion != 1 || p2.ChampionEvaluation == 0 {
		t.Fatalf("v2 promotion = %+v", p2)
	}
	// v3 passes and waits for approval.
	p3, err := f.svc.Promote(ctx, deployer, gate.Request{Model: "bc", Version: "3", To: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if p3.State != domain.PromotionPending || p3.Required != 1 {
		t.Fatalf("v3 promotion = %+v", p3)
	}
	for _, r := range p3.Results {
		if r.Verdict != domain.VerdictPass {
			t.Fatalf("v3 rule %+v", r)
		}
	}
	// The champion's evaluation was reused, not run again.
	if len(f.eval.calls) != 3 {
		t.Fatalf("evaluations run: %v", f.eval.calls)
	}
	if _, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "production"}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second pending promotion: %v", err)
	}

	// Refusals change nothing.
	refusals := []struct {
		who  gate.Actor
		want string
		is   error
	}{
		{gate.Actor{Name: "ann", Role: domain.RoleApprover}, "ann pushed version 3", auth.ErrForbidden},
		{gate.Actor{Name: "dan", Role: domain.RoleAdmin}, "dan requested promotion", auth.ErrForbidden},
		{viewer, "you need the approver role", auth.ErrForbidden},
		{deployer, "you need the approver role", auth.ErrForbidden},
	}
	for _, r := range refusals {
		if _, err := f.svc.Decide(ctx, r.who, p3.ID, true, "lgtm"); !errors.Is(err, r.is) || !strings.Contains(err.Error(), r.want) {
			t.Fatalf("%s approving: %v", r.who.Name, err)
		}
	}
	if got, _ := f.svc.GetPromotion(ctx, p3.ID); got.State != domain.PromotionPending || len(got.Decisions) != 0 {
		t.Fatalf("refused approvals changed the promotion: %+v", got)
	}
	if _, err := f.svc.Decide(ctx, approver, p2.ID, true, ""); !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "is rejected") {
		t.Fatalf("approving a rejected promotion: %v", err)
	}

	// Another approver approves: v3 becomes champion and production.
	done, err := f.svc.Decide(ctx, approver, p3.ID, true, "numbers look right")
	if err != nil {
		t.Fatal(err)
	}
	if done.State != domain.PromotionCompleted || done.Previous != 1 || done.CompletedAt == nil || len(done.Decisions) != 1 {
		t.Fatalf("completed promotion = %+v", done)
	}
	if f.alias(t, "champion") != 3 || f.alias(t, "production") != 3 {
		t.Fatalf("aliases: champion %d production %d", f.alias(t, "champion"), f.alias(t, "production"))
	}
	v3, _ := f.st.GetVersion(ctx, "bc", 3)
	if v3.State != domain.StateProduction {
		t.Fatalf("v3 state = %s", v3.State)
	}
	if _, err := f.svc.Decide(ctx, second, p3.ID, true, ""); !errors.Is(err, domain.ErrPrecondition) {
		t.Fatalf("approving a completed promotion: %v", err)
	}
	want := []string{"promotion.rejected model/bc/promotion/1", "promotion.requested model/bc/promotion/2",
		"promotion.approved model/bc/promotion/2", "promotion.completed model/bc/promotion/2"}
	if strings.Join(f.events, ",") != strings.Join(want, ",") {
		t.Fatalf("events = %v", f.events)
	}
	// The audit log tells the story and verifies.
	es, _, err := f.st.ListAudit(ctx, store.AuditFilter{Subject: "model/bc"}, store.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	got := strings.Join(actions, " ")
	if !strings.Contains(got, "gate_policy.apply promotion.reject promotion.request promotion.approve alias.set alias.set version.state promotion.complete") {
		t.Fatalf("audit actions: %s", got)
	}
	ps, _, _ := f.svc.ListPromotions(ctx, store.PromotionFilter{Model: "bc", Environment: "production", State: domain.PromotionCompleted}, store.Page{})
	if len(ps) != 1 || ps[0].ID != p3.ID {
		t.Fatalf("history = %+v", ps)
	}
}

func TestSeparationOfDutiesWithTwoApprovals(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	f.apply(t, strings.Replace(prodPolicy, "required: 1", "required: 2", 1))
	p, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "production"})
	if err != nil || p.State != domain.PromotionPending {
		t.Fatalf("promote: %+v %v", p, err)
	}
	if p, err = f.svc.Decide(ctx, approver, p.ID, true, ""); err != nil || p.State != domain.PromotionPending || p.Approvals() != 1 {
		t.Fatalf("first approval: %+v %v", p, err)
	}
	if _, err := f.svc.Decide(ctx, approver, p.ID, true, "again"); !errors.Is(err, domain.ErrConflict) || !strings.Contains(err.Error(), "2 different people") {
		t.Fatalf("approving twice: %v", err)
	}
	if f.alias(t, "champion") != 1 {
		t.Fatal("one approval of two moved the champion")
	}
	if p, err = f.svc.Decide(ctx, second, p.ID, true, ""); err != nil || p.State != domain.PromotionCompleted {
		t.Fatalf("second approval: %+v %v", p, err)
	}
	if f.alias(t, "champion") != 3 {
		t.Fatal("champion did not move")
	}
}

func TestRejectionSupersessionAndPolicyChange(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	f.apply(t, prodPolicy)
	// A rejection needs a reason and ends the promotion.
	p, _ := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "production"})
	if _, err := f.svc.Decide(ctx, approver, p.ID, false, " "); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("rejection without a comment: %v", err)
	}
	r, err := f.svc.Decide(ctx, approver, p.ID, false, "latency regression in canary")
	if err != nil || r.State != domain.PromotionRejected || !strings.Contains(r.Reason, "rejected by bob: latency regression") {
		t.Fatalf("reject: %+v %v", r, err)
	}
	if _, err := f.svc.Decide(ctx, second, p.ID, true, ""); !errors.Is(err, domain.ErrPrecondition) {
		t.Fatalf("approving a rejected promotion: %v", err)
	}
	// A new policy revision cancels what the old one judged.
	p, _ = f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "production"})
	if res := f.apply(t, prodPolicy); !res.Unchanged {
		t.Fatalf("re-applying the same policy: %+v", res)
	}
	res := f.apply(t, strings.Replace(prodPolicy, "max: 20", "max: 25", 1))
	if res.Policy.Revision != 2 || len(res.Cancelled) != 1 || res.Cancelled[0] != p.ID {
		t.Fatalf("new revision = %+v", res)
	}
	if _, err := f.svc.Decide(ctx, approver, p.ID, true, ""); !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "gate policy changed to revision 2") {
		t.Fatalf("approving under an old policy: %v", err)
	}
	// A promotion superseded by another that completed cannot complete.
	p3, _ := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "production"})
	bg, err := f.svc.Promote(ctx, admin, gate.Request{Model: "bc", Version: "2", To: "production", BreakGlass: true, Reason: "hotfix for incident 42"})
	if err != nil || bg.State != domain.PromotionCompleted || !bg.BreakGlass || f.alias(t, "champion") != 2 {
		t.Fatalf("break glass: %+v %v", bg, err)
	}
	if _, err := f.svc.Decide(ctx, approver, p3.ID, true, ""); !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "superseded by promotion") {
		t.Fatalf("approving a superseded promotion: %v", err)
	}
	es, _, _ := f.st.ListAudit(ctx, store.AuditFilter{Subject: "model/bc/promotion/" + strconv.FormatInt(bg.ID, 10)}, store.Page{})
	if len(es) == 0 || es[0].Action != "promotion.break_glass" || !strings.Contains(string(es[0].After), "hotfix for incident 42") {
		t.Fatalf("break-glass audit = %+v", es)
	}
}

func TestPromotionRefusals(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	cases := []struct {
		who  gate.Actor
		req  gate.Request
		is   error
		want string
	}{
		{viewer, gate.Request{Model: "bc", Version: "3", To: "dev"}, auth.ErrForbidden, "needs the author, deployer or admin role"},
		{approver, gate.Request{Model: "bc", Version: "3", To: "dev"}, auth.ErrForbidden, "needs the author"},
		{author, gate.Request{Model: "bc", Version: "3", To: "qa"}, domain.ErrInvalid, "not one of dev, staging, production"},
		{author, gate.Request{Model: "bc", Version: "9", To: "dev"}, domain.ErrNotFound, ""},
		{author, gate.Request{Model: "bc", Version: "3", To: "production", BreakGlass: true, Reason: "x"}, auth.ErrForbidden, "--break-glass needs the admin role"},
		{admin, gate.Request{Model: "bc", Version: "3", To: "production", BreakGlass: true}, domain.ErrInvalid, "needs --reason"},
		{author, gate.Request{Model: "bc", Version: "3", To: "dev", Reason: "x"}, domain.ErrInvalid, "only with --break-glass"},
	}
	for _, c := range cases {
		if _, err := f.svc.Promote(ctx, c.who, c.req); !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v", c.who.Name, c.req, err)
		}
	}
	if ps, _, _ := f.svc.ListPromotions(ctx, store.PromotionFilter{}, store.Page{}); len(ps) != 0 {
		t.Fatalf("refused promotions were recorded: %+v", ps)
	}
	// dev needs no policy: the promotion completes at once.
	p, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "2", To: "dev"})
	if err != nil || p.State != domain.PromotionCompleted || f.alias(t, "dev") != 2 {
		t.Fatalf("dev promotion: %+v %v", p, err)
	}
	// Policies: admin only; a dataset that does not exist is refused with
	// the line that names it.
	if _, err := f.svc.ApplyPolicy(ctx, deployer, "p.yaml", []byte(prodPolicy)); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("deployer applying: %v", err)
	}
	_, err = f.svc.ApplyPolicy(ctx, admin, "p.yaml", []byte(strings.Replace(prodPolicy, "holdout", "nope", 1)))
	if pe, ok := errors.AsType[*gate.PolicyError](err); !ok || pe.Line != 4 || !strings.Contains(pe.Reason, `dataset "nope" does not exist`) {
		t.Fatalf("missing dataset: %v", err)
	}
	_, err = f.svc.ApplyPolicy(ctx, admin, "p.yaml", []byte(strings.Replace(prodPolicy, "environment: production", "environment: qa", 1)))
	if pe, ok := errors.AsType[*gate.PolicyError](err); !ok || pe.Line != 3 {
		t.Fatalf("unknown environment: %v", err)
	}
	if ps, _ := f.svc.ListPolicies(ctx, "bc"); len(ps) != 0 {
		t.Fatalf("refused policies were stored: %+v", ps)
	}
	// An archived version cannot be promoted, and a pending promotion of
	// a version archived since is cancelled rather than completed.
	f.apply(t, prodPolicy)
	p3, _ := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "production"})
	if _, err := f.reg.SetState(ctx, "ann", "bc", "3", domain.StateArchived); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Decide(ctx, approver, p3.ID, true, ""); !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "was archived") {
		t.Fatalf("approving an archived version: %v", err)
	}
	if got, _ := f.svc.GetPromotion(ctx, p3.ID); got.State != domain.PromotionCancelled {
		t.Fatalf("promotion of an archived version = %+v", got)
	}
	if _, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "production"}); !errors.Is(err, domain.ErrPrecondition) {
		t.Fatalf("promoting an archived version: %v", err)
	}
}

// A rule no evaluation on the policy's dataset could measure — a metric
// of the other task, a gap over a column the dataset does not group by —
// would reject every promotion; apply refuses it with the rule's line.
func TestPolicyRulesTheDatasetCannotMeasure(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	if err := f.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, d := range []domain.Dataset{
			{Name: "reg", Task: domain.TaskRegression, Label: "y"},
			{Name: "fair", Task: domain.TaskClassification, Label: "y", Segments: []string{"size"}, Sensitive: "age"},
		} {
			d.Digest, d.Format, d.Rows, d.CreatedBy, d.CreatedAt = "sha256:"+strings.Repeat("b", 64), "csv", 10, "ann", time.Now()
			d.Columns = []domain.DatasetColumn{{Name: "y", Type: "number"}, {Name: "size", Type: "string"}, {Name: "age", Type: "string"}}
			if _, err := tx.CreateDataset(ctx, d); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	policy := func(dataset, rule string) string {
		return "kind: GatePolicy\nmodel: bc\nenvironment: staging\nevaluation: {dataset: " + dataset +
			"}\nrules:\n  - metric: latency_p99_ms\n    max: 20\n  - " + rule + "\n    max: 0.5\n"
	}
	for _, c := range []struct{ dataset, rule, want string }{
		{"holdout", "metric: rmse", "rule 2: rmse is not measured on classification dataset holdout@1; its metrics are accuracy"},
		{"reg", "metric: roc_auc", "rule 2: roc_auc is not measured on regression dataset reg@1; its metrics are mae, rmse, r2"},
		{"reg", "metric: tpr_gap\n    group: size", "rule 2: tpr_gap is not measured on regression dataset reg@1"},
		{"fair", "metric: tpr_gap\n    group: nope", `rule 2: group "nope" is neither the sensitive column ("age") nor a segment column of dataset fair@1`},
		{"fair", "metric: positive_rate_gap\n    group: size", `rule 2: positive_rate_gap needs group to be the sensitive column of dataset fair@1 ("age"), not "size"`},
		{"holdout", "metric: tpr_gap\n    group: age", `the sensitive column (none)`},
	} {
		_, err := f.svc.ApplyPolicy(ctx, admin, "p.yaml", []byte(policy(c.dataset, c.rule)))
		if pe, ok := errors.AsType[*gate.PolicyError](err); !ok || pe.Line != 8 || !strings.Contains(pe.Reason, c.want) {
			t.Errorf("%s, %s: %v", c.dataset, c.rule, err)
		}
	}
	if ps, _ := f.svc.ListPolicies(ctx, "bc"); len(ps) != 0 {
		t.Fatalf("refused policies were stored: %+v", ps)
	}
	for _, rule := range []string{"metric: tpr_gap\n    group: size", "metric: tpr_gap\n    group: age", "metric: positive_rate_gap\n    group: age"} {
		if _, err := f.svc.ApplyPolicy(ctx, admin, "p.yaml", []byte(policy("fair", rule))); err != nil {
			t.Errorf("%s: %v", rule, err)
		}
	}
	if _, err := f.svc.ApplyPolicy(ctx, admin, "p.yaml", []byte(policy("reg", "metric: r2"))); err != nil {
		t.Errorf("r2 on a regression dataset: %v", err)
	}
}

// Listing the promotions or policies of a misspelt model, or promotions
// into a misspelt environment, is refused rather than answered with an
// empty history.
func TestListingsOfUnknownModelsAndEnvironments(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	if _, _, err := f.svc.ListPromotions(ctx, store.PromotionFilter{Model: "bcc"}, store.Page{}); !errors.Is(err, domain.ErrNotFound) || !strings.Contains(err.Error(), `"bcc"`) {
		t.Errorf("promotions of an unknown model: %v", err)
	}
	if _, err := f.svc.ListPolicies(ctx, "bcc"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("policies of an unknown model: %v", err)
	}
	if _, _, err := f.svc.ListPromotions(ctx, store.PromotionFilter{Model: "bc", Environment: "prod"}, store.Page{}); !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), "not one of dev, staging, production") {
		t.Errorf("promotions into an unknown environment: %v", err)
	}
	if ps, _, err := f.svc.ListPromotions(ctx, store.PromotionFilter{Model: "bc", Environment: "production"}, store.Page{}); err != nil || len(ps) != 0 {
		t.Errorf("promotions of a known model: %v %v", ps, err)
	}
	if ps, err := f.svc.ListPolicies(ctx, "bc"); err != nil || len(ps) != 0 {
		t.Errorf("policies of a known model: %v %v", ps, err)
	}
}

// A promotion reuses an evaluation only on the policy's dataset version:
// the same bytes pushed under another name or with other roles (label,
// segments, sensitive column) are scored differently, so their
// evaluation is not evidence for this policy.
func TestPromotionReusesEvaluationsOfTheSameDatasetVersionOnly(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	holdout, err := f.st.GetDataset(ctx, "holdout", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		d := holdout
		d.Name, d.Segments = "holdout-by-size", []string{"size"}
		_, err := tx.CreateDataset(ctx, d)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eval.Evaluate(ctx, "ann", "bc", "3", "holdout-by-size@1"); err != nil {
		t.Fatal(err)
	}
	f.apply(t, strings.Replace(prodPolicy, "environment: production", "environment: staging", 1))
	p, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "staging"})
	if err != nil || p.State != domain.PromotionPending {
		t.Fatalf("promotion: %+v %v", p, err)
	}
	want := []string{"3/holdout-by-size@1", "3/holdout@1", "1/holdout@1"}
	if !reflect.DeepEqual(f.eval.calls, want) {
		t.Fatalf("evaluations run: %v, want %v", f.eval.calls, want)
	}
	if e, err := f.st.GetEvaluation(ctx, p.Evaluation); err != nil || e.Dataset != "holdout" {
		t.Fatalf("the promotion was judged by %+v %v", e, err)
	}
	// Asked again, the evaluations on holdout@1 are reused.
	if _, err := f.svc.Decide(ctx, approver, p.ID, false, "again"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "3", To: "staging"}); err != nil || len(f.eval.calls) != 3 {
		t.Fatalf("second promotion: %v, evaluations run %v", err, f.eval.calls)
	}
}

// Promoting a version into an environment whose aliases already point at
// it would ask approvers to approve nothing: it is refused, break glass
// included, and nothing is recorded. Holding only champion is not holding
// production.
func TestPromotingIntoAnEnvironmentTheVersionHolds(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	if p, err := f.svc.Promote(ctx, author, gate.Request{Model: "bc", Version: "2", To: "dev"}); err != nil || p.State != domain.PromotionCompleted {
		t.Fatalf("first promotion into dev: %+v %v", p, err)
	}
	for _, req := range []gate.Request{
		{Model: "bc", Version: "2", To: "dev"},
		{Model: "bc", Version: "@dev", To: "dev"},
	} {
		if _, err := f.svc.Promote(ctx, author, req); !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "version 2 of model \"bc\" already holds dev (dev): there is nothing to promote") {
			t.Errorf("%+v again: %v", req, err)
		}
	}
	bg, err := f.svc.Promote(ctx, admin, gate.Request{Model: "bc", Version: "1", To: "production", BreakGlass: true, Reason: "champion 1 becomes production too"})
	if err != nil || bg.State != domain.PromotionCompleted {
		t.Fatalf("version 1, champion only, into production: %+v %v", bg, err)
	}
	if _, err := f.svc.Promote(ctx, admin, gate.Request{Model: "bc", Version: "1", To: "production", BreakGlass: true, Reason: "again"}); !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "already holds production (production, champion)") {
		t.Errorf("break glass into production again: %v", err)
	}
	if ps, _, _ := f.svc.ListPromotions(ctx, store.PromotionFilter{Model: "bc"}, store.Page{}); len(ps) != 2 {
		t.Errorf("promotions recorded: %+v", ps)
	}
}
