package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// `slipway demo` runs the whole scenario from an empty folder, with
// nothing set up, and says what happened: v2 rejected by the gate, v3
// rolled out by canary to success, v4 rolled back by itself, the audit
// log verified.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx, cancel := context.WithTimeout(t.Context(), commandDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, slipwayBin, "demo")
	cmd.Dir = t.TempDir()
	cmd.Env = baseEnv()
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("slipway demo: %v\n%s", err, text)
	}
	for _, want := range []string{"v2 rejected", "roc_auc", "FAIL", "succeeded", "rolled_back", "fault injected into v4", "hash chain verified"} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`first bad answer → 0 %\s+(\d+) ms`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the demo reports no time from the first bad answer to 0 %%:\n%s", text)
	}
	ms, _ := strconv.Atoi(m[1])
	t.Logf("demo: first bad answer to 0 %% weight in %d ms", ms)
}
