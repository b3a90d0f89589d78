package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api/apitest"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
)

// rolloutCLI is a real server with a running rollout controller on
// loopback, model m with versions 1–3 and version 1 in production; run
// runs the CLI against it with a token of the named role.
type rolloutCLI struct {
	t      *testing.T
	url    string
	tokens map[domain.Role]string
}

func newRolloutCLI(t *testing.T) *rolloutCLI {
	t.Helper()
	srv := apitest.New(t, apitest.WithRollouts(t))
	c := &rolloutCLI{t: t, url: srv.URL, tokens: map[domain.Role]string{domain.RoleAdmin: srv.Admin}}
	for _, role := range []domain.Role{domain.RoleDeployer, domain.RoleApprover, domain.RoleViewer} {
		c.tokens[role] = srv.Token(string(role)+"-1", role)
	}
	c.must(domain.RoleAdmin, "model", "create", "m")
	for _, v := range []string{"1", "2", "3"} {
		if _, err := srv.Registry.PushVersion(t.Context(), "admin", registry.Push{Model: "m", Format: domain.FormatExternal, Labels: map[string]string{"v": v}}); err != nil {
			t.Fatal(err)
		}
	}
	c.must(domain.RoleAdmin, "deploy", "m", "1", "--env", "production")
	return c
}

// run runs the CLI as role and returns its exit code and output.
func (c *rolloutCLI) run(role domain.Role, stdin string, args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut, nil)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append(args, "--addr", c.url, "--token", c.tokens[role]))
	code = 0
	if err := root.ExecuteContext(c.t.Context()); err != nil {
		errOut.WriteString("error: " + err.Error() + "\n")
		code = 1
	}
	return code, out.String(), errOut.String()
}

func (c *rolloutCLI) must(role domain.Role, args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run(role, "", args...)
	if code != 0 {
		c.t.Fatalf("slipway %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

const cliSpec = `kind: Rollout
model: m
environment: production
candidate: 2
strategy:
  canary:
    steps:
      - weight: 10
        pause: 1h
      - approval: {role: approver}
      - weight: 100
`

// TestRolloutCommands drives a rollout with the CLI against a real
// server: start from standard input, status, pause, resume, history,
// approval refused to its starter, abort, and watch's exit codes.
func TestRolloutCommands(t *testing.T) {
	c := newRolloutCLI(t)
	if code, _, errOut := c.run(domain.RoleViewer, cliSpec, "rollout", "start", "-f", "-"); code != 1 || !strings.Contains(errOut, "needs deployer") {
		t.Fatalf("a viewer starts a rollout: %d %s", code, errOut)
	}
	if code, _, errOut := c.run(domain.RoleDeployer, cliSpec+"extra: 1\n", "rollout", "start", "-f", "-"); code != 1 || !strings.Contains(errOut, "stdin:12") {
		t.Fatalf("a bad spec: %d %s", code, errOut)
	}
	code, out, errOut := c.run(domain.RoleDeployer, cliSpec, "rollout", "start", "-f", "-")
	if code != 0 || !strings.Contains(out, "rollout 1: m in production, version 1 → 2 (canary): progressing") || !strings.Contains(out, "slipway rollout watch 1") {
		t.Fatalf("start: %d %s%s", code, out, errOut)
	}
	out = c.must(domain.RoleViewer, "rollout", "status", "1")
	for _, want := range []string{"▶  3 pause 1h0m0s", "v2 candidate  ███░", "10 %", "verdict    none"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if out = c.must(domain.RoleDeployer, "rollout", "pause", "1", "--reason", "checking logs"); !strings.Contains(out, "paused at step 3") || !strings.Contains(out, "checking logs") {
		t.Errorf("pause: %s", out)
	}
	if code, _, errOut := c.run(domain.RoleDeployer, "", "rollout", "undo", "1"); code != 1 || !strings.Contains(errOut, "paused") {
		t.Errorf("undo while paused: %d %s", code, errOut)
	}
	c.must(domain.RoleDeployer, "rollout", "resume", "1")
	out = c.must(domain.RoleViewer, "rollout", "history", "m", "--active")
	if !strings.Contains(out, "PHASE") || !strings.Contains(out, "progressing") || strings.Count(out, "\n") != 2 {
		t.Errorf("history:\n%s", out)
	}
	if out = c.must(domain.RoleViewer, "rollout", "get", "1", "-o", "json"); !strings.Contains(out, `"candidate": 2`) {
		t.Errorf("get -o json: %s", out)
	}
	if code, _, errOut := c.run(domain.RoleApprover, "", "rollout", "reject", "1"); code != 1 || !strings.Contains(errOut, "--comment") {
		t.Errorf("reject without a comment: %d %s", code, errOut)
	}
	c.must(domain.RoleDeployer, "rollout", "abort", "1", "--reason", "wrong candidate")
	code, out, errOut = c.run(domain.RoleViewer, "", "rollout", "watch", "1", "--interval", "20ms")
	if code != 1 || !strings.Contains(out, "rollout 1 ended aborted: version 1 serves m in production again") || !strings.Contains(errOut, "not succeeded") {
		t.Fatalf("watch of an aborted rollout: %d\n%s%s", code, out, errOut)
	}

	// Started by the admin through apply: it may not approve its own
	// rollout; an approver may, and watch then exits 0.
	approval := strings.Replace(cliSpec, "        pause: 1h\n", "", 1)
	code, out, errOut = c.run(domain.RoleAdmin, approval, "apply", "-f", "-")
	if code != 0 || !strings.Contains(out, "started rollout 2: version 1 → 2") {
		t.Fatalf("apply: %d %s%s", code, out, errOut)
	}
	if code, _, errOut := c.run(domain.RoleAdmin, "", "rollout", "approve", "2"); code != 1 || !strings.Contains(errOut, "separation of duties") {
		t.Fatalf("the starter approves: %d %s", code, errOut)
	}
	c.must(domain.RoleApprover, "rollout", "approve", "2", "--comment", "dashboards are fine")
	out = c.must(domain.RoleViewer, "rollout", "watch", "2", "--interval", "20ms")
	if !strings.Contains(out, "rollout 2 succeeded: version 2 serves m in production") || !strings.Contains(out, "phase succeeded") {
		t.Fatalf("watch of an approved rollout:\n%s", out)
	}
}
