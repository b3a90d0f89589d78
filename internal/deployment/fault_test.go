package deployment_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// TestFaultInjection sets a fault on a canary in an allowed environment
// and checks that it is stored, audited as deployment.fault with before
// and after, reaches the route, survives traffic changes and a restart,
// and is cleared; that production refuses it when not allowed; and that
// every refused change leaves the deployment as it was.
func TestFaultInjection(t *testing.T) {
	cfg, _ := setupConfig(t)
	st, ctx := cfg.Store, t.Context()
	withFaults := func(envs ...string) deployment.Config { c := cfg; c.FaultEnvironments = envs; return c }
	svc := deployment.New(withFaults("dev", "staging"))
	if got := svc.FaultEnvironments(); len(got) != 2 || got[1] != "staging" {
		t.Fatalf("FaultEnvironments = %v", got)
	}
	for _, env := range []string{"staging", "production"} {
		if _, err := svc.Deploy(ctx, "cd", "m", "1", env, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.SetTraffic(ctx, "cd", "m", env, map[int]int{1: 80, 2: 20}, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	fault := domain.Fault{AbortPercent: 30, DelayPercent: 50, Delay: domain.Duration(50 * time.Millisecond)}
	d, err := svc.SetFault(ctx, "chaos", "m", "staging", 2, fault, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Revision != 3 || d.Versions[1].Fault == nil || d.Versions[1].Fault.AbortStatus != 503 || d.Versions[0].Fault != nil {
		t.Fatalf("after SetFault: %+v", d)
	}
	rv := svc.Routes().Lookup("m", "staging").Version(2)
	if rv.Fault == nil || rv.Fault.AbortPercent != 30 || rv.Fault.AbortStatus != 503 || time.Duration(rv.Fault.Delay) != 50*time.Millisecond {
		t.Fatalf("route version 2 fault = %+v", rv.Fault)
	}
	if svc.Routes().Lookup("m", "staging").Version(1).Fault != nil {
		t.Fatal("version 1 got a fault it was not given")
	}
	es, _, err := st.ListAudit(ctx, store.AuditFilter{Subject: "model/m/deployment/staging"}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1]
	if last.Action != "deployment.fault" || last.Actor != "chaos" || strings.Contains(string(last.Before), `"fault"`) ||
		!strings.Contains(string(last.After), `"fault":{"abort_percent":30,"abort_status":503,"delay_percent":50,"delay":"50ms"}`) {
		t.Fatalf("audit entry = %s %s before %s after %s", last.Action, last.Actor, last.Before, last.After)
	}

	// Moving the weights keeps the fault; so does a restart.
	if _, err := svc.SetTraffic(ctx, "cd", "m", "staging", map[int]int{1: 50, 2: 50}, 0, nil); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetDeployment(ctx, "m", "staging")
	if err != nil || got.Versions[1].Fault == nil || got.Versions[1].Fault.AbortPercent != 30 {
		t.Fatalf("after a traffic change: %+v, %v", got, err)
	}
	restarted := deployment.New(withFaults("staging"))
	if err := restarted.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if f := restarted.Routes().Lookup("m", "staging").Version(2).Fault; f == nil || f.AbortPercent != 30 {
		t.Fatalf("after a restart the route's fault = %+v", f)
	}
	// A server that no longer allows staging keeps the fault stored but
	// does not inject it.
	strict := deployment.New(withFaults())
	if err := strict.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if f := strict.Routes().Lookup("m", "staging").Version(2).Fault; f != nil {
		t.Fatalf("a fault in a no longer allowed environment is injected: %+v", f)
	}

	// Refusals change nothing.
	before, _ := st.GetDeployment(ctx, "m", "staging")
	beforeProd, _ := st.GetDeployment(ctx, "m", "production")
	nAudit := len(auditOf(t, st))
	rev := before.Revision - 1
	for _, c := range []struct {
		name, env string
		version   int
		fault     domain.Fault
		expected  *int64
		want      error
		detail    string
	}{
		{"production is not allowed", "production", 2, fault, nil, domain.ErrPrecondition, "(allowed: dev,staging; the server's --fault-injection-envs"},
		{"unknown environment", "qa", 2, fault, nil, domain.ErrInvalid, "qa"},
		{"unserved version", "staging", 3, fault, nil, domain.ErrNotFound, "version 3"},
		{"no model", "staging", 2, fault, nil, domain.ErrNotFound, ""},
		{"empty fault", "staging", 2, domain.Fault{}, nil, domain.ErrInvalid, "abort_percent or delay_percent"},
		{"abort above 100", "staging", 2, domain.Fault{AbortPercent: 101}, nil, domain.ErrInvalid, "abort_percent"},
		{"status below 400", "staging", 2, domain.Fault{AbortPercent: 10, AbortStatus: 200}, nil, domain.ErrInvalid, "400 to 599"},
		{"delay too long", "staging", 2, domain.Fault{DelayPercent: 10, Delay: domain.Duration(time.Hour)}, nil, domain.ErrInvalid, "at most 1m0s"},
		{"stale revision", "staging", 2, fault, &rev, domain.ErrConflict, "revision"},
	} {
		model := "m"
		if c.name == "no model" {
			model = "ghost"
		}
		_, err := svc.SetFault(ctx, "chaos", model, c.env, c.version, c.fault, c.expected)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.detail) {
			t.Errorf("%s: %v, want %v naming %q", c.name, err, c.want, c.detail)
		}
	}
	after, _ := st.GetDeployment(ctx, "m", "staging")
	afterProd, _ := st.GetDeployment(ctx, "m", "production")
	if after.Revision != before.Revision || afterProd.Revision != beforeProd.Revision || len(auditOf(t, st)) != nAudit {
		t.Fatalf("refused changes changed something: staging rev %d→%d, production rev %d→%d, audit %d→%d",
			before.Revision, after.Revision, beforeProd.Revision, afterProd.Revision, nAudit, len(auditOf(t, st)))
	}

	// Clearing removes it (audited); clearing again changes nothing;
	// clearing is allowed in any environment.
	d, err = svc.ClearFault(ctx, "chaos", "m", "staging", 2, nil)
	if err != nil || d.Versions[1].Fault != nil || d.Revision != before.Revision+1 {
		t.Fatalf("ClearFault: %+v, %v", d, err)
	}
	if svc.Routes().Lookup("m", "staging").Version(2).Fault != nil {
		t.Fatal("the route keeps a cleared fault")
	}
	if a := auditOf(t, st); len(a) != nAudit+1 || a[len(a)-1].Action != "deployment.fault" {
		t.Fatalf("clearing is not audited: %d entries", len(a))
	}
	if d, err = svc.ClearFault(ctx, "chaos", "m", "staging", 2, nil); err != nil || d.Revision != before.Revision+1 {
		t.Fatalf("clearing again: revision %d, %v", d.Revision, err)
	}
	if _, err := svc.ClearFault(ctx, "chaos", "m", "production", 2, nil); err != nil {
		t.Fatalf("clearing in production: %v", err)
	}
	if len(auditOf(t, st)) != nAudit+1 {
		t.Fatal("clearing nothing wrote an audit entry")
	}
	// A traffic change after clearing does not bring the fault back.
	if d, err = svc.SetTraffic(ctx, "cd", "m", "staging", map[int]int{1: 90, 2: 10}, 0, nil); err != nil || d.Versions[1].Fault != nil {
		t.Fatalf("after clearing and a traffic change: %+v, %v", d, err)
	}
}

func auditOf(t *testing.T, st store.Store) []audit.Entry {
	t.Helper()
	es, _, err := st.ListAudit(t.Context(), store.AuditFilter{}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return es
}
