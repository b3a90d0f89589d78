package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

// TestFaultInjection runs the real binary with the default
// --fault-injection-envs: a canary in staging gets a 100 % abort with
// the CLI; requests through the gateway get the injected status from the
// canary, until its circuit breaker opens on the injected failures and
// the stable version answers in its place; `deployment get` shows the
// fault, production refuses one, the audit log records it, and clearing
// it is audited too. A server told an environment that does not exist
// refuses to start.
func TestFaultInjection(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "cancer")
	c.ok("version", "push", "cancer", example(t, "v1.json"), "--format", "xgboost-json")
	c.ok("version", "push", "cancer", example(t, "v3.json"), "--format", "xgboost-json")
	for _, env := range []string{"staging", "production"} {
		c.ok("deploy", "cancer", "1", "--env", env)
		c.ok("traffic", "set", "cancer", "1=0", "2=100", "--stable", "1", "--env", env)
	}

	// Production does not allow faults unless the server says so.
	c.fail([]string{"deployment", "set-fault", "cancer", "--env", "production", "--version", "2", "--abort-percent", "100"},
		"not allowed in environment \"production\"", "--fault-injection-envs")
	// Bad flags are refused before anything is sent.
	c.fail([]string{"deployment", "set-fault", "cancer", "--env", "staging", "--version", "2", "--abort-percent", "150"}, "--abort-percent 150")
	c.fail([]string{"deployment", "set-fault", "cancer", "--env", "staging", "--version", "2", "--delay", "20ms"}, "needs --delay-percent")

	out := c.ok("deployment", "set-fault", "cancer", "--env", "staging", "--version", "2", "--abort-percent", "100", "--abort-status", "500")
	if !strings.Contains(out, "FAULT") || !strings.Contains(out, "abort 100% with 500") {
		t.Fatalf("set-fault printed:\n%s", out)
	}

	// Requests get the injected status from the canary until its breaker
	// opens on those failures; then the stable version answers instead.
	g := srv.gatewayClient(t)
	body := inferBody(t, loadParity(t, "v1.json").Rows[:1])
	env := map[string]string{"X-Slipway-Environment": "staging"}
	aborted := 0
	for {
		r := g.do(http.MethodPost, "/v2/models/cancer/infer", body, env)
		if r.status == http.StatusOK {
			if r.header.Get("X-Slipway-Version") != "1" || r.header.Get("X-Slipway-Fallback-From") != "2" || r.header.Get("X-Slipway-Fault") != "" {
				t.Fatalf("after %d aborts: %s %v", aborted, r, r.header)
			}
			break
		}
		msg := oipErrorOf(t, r, http.StatusInternalServerError)
		if r.header.Get("X-Slipway-Fault") != "abort" || r.header.Get("X-Slipway-Version") != "2" || !strings.Contains(msg, "fault injection") {
			t.Fatalf("request %d: %s %v", aborted+1, r, r.header)
		}
		if aborted++; aborted > 50 {
			t.Fatal("50 injected failures and the canary's breaker is still closed")
		}
	}
	if aborted == 0 {
		t.Fatal("no request got the injected status")
	}
	// Production, without a fault, is answered by the canary.
	if r := g.do(http.MethodPost, "/v2/models/cancer/infer", body, nil); r.status != 200 || r.header.Get("X-Slipway-Version") != "2" {
		t.Fatalf("production: %s %v", r, r.header)
	}

	// deployment get shows the fault, in JSON and in the table.
	var st deployment.Status
	c.json(&st, "deployment", "get", "cancer", "--env", "staging")
	want := domain.Fault{AbortPercent: 100, AbortStatus: 500}
	if len(st.Versions) != 2 || st.Versions[1].Fault == nil || *st.Versions[1].Fault != want || st.Versions[0].Fault != nil {
		t.Fatalf("deployment get: %+v", st.Versions)
	}
	if out := c.ok("deployment", "get", "cancer", "--env", "staging"); !strings.Contains(out, "FAULT") || !strings.Contains(out, "abort 100% with 500") {
		t.Fatalf("deployment get table:\n%s", out)
	}
	if out := c.ok("deployment", "get", "cancer", "--env", "production"); strings.Contains(out, "FAULT") {
		t.Fatalf("a deployment without faults shows a FAULT column:\n%s", out)
	}
	// A traffic change keeps it.
	c.ok("traffic", "set", "cancer", "1=10", "2=90", "--env", "staging")
	st = deployment.Status{}
	c.json(&st, "deployment", "get", "cancer", "--env", "staging")
	if st.Versions[1].Fault == nil || *st.Versions[1].Fault != want {
		t.Fatalf("after a traffic change: %+v", st.Versions)
	}

	// Clearing removes it; both changes are in the audit log.
	c.ok("deployment", "clear-fault", "cancer", "--env", "staging", "--version", "2")
	st = deployment.Status{}
	c.json(&st, "deployment", "get", "cancer", "--env", "staging")
	if st.Versions[1].Fault != nil {
		t.Fatalf("after clear-fault: %+v", st.Versions)
	}
	var audit struct {
		Items []struct {
			Action, Actor string
			Before, After *struct {
				Versions []domain.ServedVersion `json:"versions"`
			}
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.ok("audit", "list", "--subject", "model/cancer/deployment/staging", "-o", "json")), &audit); err != nil {
		t.Fatal(err)
	}
	var faults []string
	for _, e := range audit.Items {
		if e.Action != "deployment.fault" || e.Actor != "admin" || e.Before == nil || e.After == nil || len(e.After.Versions) != 2 {
			continue
		}
		switch b, a := e.Before.Versions[1].Fault, e.After.Versions[1].Fault; {
		case b == nil && a != nil && *a == want:
			faults = append(faults, "set")
		case b != nil && *b == want && a == nil:
			faults = append(faults, "cleared")
		}
	}
	if strings.Join(faults, ",") != "set,cleared" {
		t.Fatalf("audit of the fault: %v in %+v", faults, audit.Items)
	}
	c.ok("audit", "verify")

	// A server told of an environment that does not exist does not start.
	cmd := exec.Command(slipwayBin, "server", "--addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(t.TempDir(), "d"), "--fault-injection-envs", "dev,qa")
	cmd.Env = baseEnv()
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), `--fault-injection-envs: "qa" is not an environment`) {
		t.Fatalf("server with --fault-injection-envs dev,qa: %v\n%s", err, b)
	}
}
