package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/deployment"
)

// oipServer is testdata/oipserver, built once, beside the slipway binary
// (TestMain's folder, removed when the run ends).
var oipServer struct {
	once sync.Once
	path string
	err  error
}

// oipServerBin builds the OIP v2 test server the first time a test asks.
func oipServerBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short") // TestMain built no slipway to put it beside
	}
	oipServer.once.Do(func() {
		oipServer.path = filepath.Join(filepath.Dir(slipwayBin), "oipserver")
		out, err := exec.Command("go", "build", "-o", oipServer.path, "./testdata/oipserver").CombinedOutput()
		if err != nil {
			oipServer.err = fmt.Errorf("go build ./testdata/oipserver: %w\n%s", err, out)
		}
	})
	if oipServer.err != nil {
		t.Fatal(oipServer.err)
	}
	return oipServer.path
}

// TestProcessRuntime runs a real OIP v2 server as a child process of
// slipway: it answers through the gateway, is restarted after kill -9 and
// traffic recovers; a version whose command exits at once is refused at
// deploy with the child's own words, and the deployment, the audit log
// and the traffic stay as they were; a request in flight on a version
// that leaves the deployment is still answered by it; SIGTERM to slipway
// stops the child.
func TestProcessRuntime(t *testing.T) {
	t.Parallel()
	bin := oipServerBin(t)
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "adder")
	// No artifact: the command is the whole model server.
	c.ok("version", "push", "adder", "--format", "process", "--set", "command='"+bin+"' --port {port}")
	c.ok("deploy", "adder", "1", "--env", "production")

	g := srv.gatewayClient(t)
	body := []byte(`{"id":"req-1","inputs":[{"name":"x","shape":[3],"datatype":"FP64","data":[1,2,3.5]}]}`)
	infer := func() (inferAnswer, reply, error) {
		r, err := g.send(t.Context(), http.MethodPost, "/v2/models/adder/infer", body, nil)
		if err != nil {
			return inferAnswer{}, r, err
		}
		var out inferAnswer
		if r.status != http.StatusOK {
			return out, r, fmt.Errorf("answered %s", r)
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			return out, r, fmt.Errorf("answer %s: %w", r, err)
		}
		return out, r, nil
	}
	pidOf := func(out inferAnswer) int {
		t.Helper()
		pid, ok := out.Parameters["pid"].(float64)
		if !ok || pid <= 1 {
			t.Fatalf("answer has no pid: %+v", out)
		}
		return int(pid)
	}
	out, r, err := infer()
	if err != nil {
		t.Fatal(err)
	}
	// The gateway puts slipway's name and version in; the rest is the
	// child's answer, byte for byte.
	if r.header.Get("X-Slipway-Version") != "1" || out.ModelName != "adder" || out.ModelVersion != "1" || out.ID != "req-1" ||
		len(out.Outputs) != 1 || out.Outputs[0].Name != "sum" || len(out.Outputs[0].Data) != 1 || out.Outputs[0].Data[0] != 6.5 {
		t.Fatalf("infer: %s", r)
	}
	first := pidOf(out)
	// The log lines are written as the child starts, but not necessarily
	// before its first answer.
	poll(t, 30*time.Second, "the child's start in the server log", func() (bool, string) {
		got := readyPIDs(srv)
		return slices.Equal(got, []int{first}) && strings.Contains(srv.log.String(), fmt.Sprintf("oipserver pid %d listening", first)),
			fmt.Sprintf("ready pids %v, answer from pid %d", got, first)
	})

	// kill -9 the child: slipway restarts it and traffic comes back.
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", first, err)
	}
	var second int
	poll(t, 30*time.Second, "inference from a restarted child", func() (bool, string) {
		out, r, err := infer()
		if err != nil {
			return false, err.Error()
		}
		if second = pidOf(out); second == first {
			return false, "still answered by pid " + fmt.Sprint(first) // not yet noticed
		}
		return r.header.Get("X-Slipway-Version") == "1" && len(out.Outputs) == 1 && slices.Equal(out.Outputs[0].Data, []float64{6.5}), r.String()
	})
	poll(t, 30*time.Second, "the deployment to be healthy again", func() (bool, string) {
		var st deployment.Status
		c.json(&st, "deployment", "get", "adder", "--env", "production")
		return len(st.Health) == 1 && st.Health[0].Healthy, fmt.Sprintf("%+v", st.Health)
	})
	poll(t, 30*time.Second, "the restart in the server log", func() (bool, string) {
		got := readyPIDs(srv)
		return slices.Equal(got, []int{first, second}), fmt.Sprintf("ready pids %v, want [%d %d]", got, first, second)
	})
	assertHealthyRow(t, c.ok("deployment", "get", "adder"), "adder production 1 100%")

	// A version whose server exits at once cannot be deployed, and
	// nothing changes.
	c.ok("version", "push", "adder", "--format", "process",
		"--set", "command='"+bin+"' --port {port} --fail 'cannot load weights: shard 3 of 4 is missing'")
	var before deployment.Status
	c.json(&before, "deployment", "get", "adder", "--env", "production")
	var auditBefore api.List[audit.Entry]
	c.json(&auditBefore, "audit", "list")
	c.fail([]string{"deploy", "adder", "2", "--env", "production"}, "cannot load weights: shard 3 of 4 is missing", "exit status 3")
	c.fail([]string{"traffic", "set", "adder", "--env", "production", "1=90", "2=10"}, "cannot load weights: shard 3 of 4 is missing")
	var after deployment.Status
	c.json(&after, "deployment", "get", "adder", "--env", "production")
	if after.Revision != before.Revision || !after.UpdatedAt.Equal(before.UpdatedAt) || len(after.Versions) != 1 ||
		after.Versions[0].Version != 1 || after.Versions[0].Weight != 100 || len(after.Health) != 1 || !after.Health[0].Healthy {
		t.Fatalf("a refused deploy changed the deployment:\nbefore %+v\nafter  %+v", before, after)
	}
	var auditAfter api.List[audit.Entry]
	c.json(&auditAfter, "audit", "list")
	if len(auditAfter.Items) != len(auditBefore.Items) {
		t.Fatalf("a refused deploy was audited: %d entries, before %d", len(auditAfter.Items), len(auditBefore.Items))
	}
	for range 20 {
		out, r, err := infer()
		if err != nil {
			t.Fatal(err)
		}
		if r.header.Get("X-Slipway-Version") != "1" || pidOf(out) != second {
			t.Fatalf("after the refused deploy: version %q from pid %d, want version 1 from pid %d", r.header.Get("X-Slipway-Version"), pidOf(out), second)
		}
	}

	// A request in flight on version 1 when version 3 replaces it is
	// answered by version 1, which stops only afterwards.
	c.ok("version", "push", "adder", "--format", "process", "--set", "command='"+bin+"' --port {port}")
	release := filepath.Join(t.TempDir(), "release")
	held := fmt.Appendf(nil, `{"id":"held-1","parameters":{"wait_for":%q},"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[40,2]}]}`, release)
	type result struct {
		r   reply
		err error
	}
	heldDone := make(chan result, 1)
	go func() {
		r, err := g.send(t.Context(), http.MethodPost, "/v2/models/adder/infer", held, nil)
		heldDone <- result{r, err}
	}()
	poll(t, 30*time.Second, "the held request to reach version 1's child", func() (bool, string) {
		return strings.Contains(srv.log.String(), fmt.Sprintf(`holds request \"held-1\" until %s exists`, release)), "not in the server log yet"
	})
	c.ok("deploy", "adder", "3", "--env", "production")
	out, r, err = infer()
	if err != nil || r.header.Get("X-Slipway-Version") != "3" {
		t.Fatalf("after deploying version 3: %s, %v", r, err)
	}
	third := pidOf(out)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-heldDone:
	case <-time.After(30 * time.Second): // a safety net
		t.Fatal("the held request never ended")
	}
	if res.err != nil || res.r.status != http.StatusOK || res.r.header.Get("X-Slipway-Version") != "1" || !strings.Contains(string(res.r.body), `"data":[42]`) {
		t.Fatalf("the request in flight while version 1 left the deployment: %s, %v", res.r, res.err)
	}
	poll(t, 30*time.Second, "version 1 to stop once drained", func() (bool, string) {
		return syscall.Kill(second, 0) != nil, fmt.Sprintf("pid %d still runs", second)
	})

	// SIGTERM to slipway stops (and reaps) the child.
	if code := srv.stop(); code != 0 {
		t.Fatalf("slipway server exit code %d:\n%s", code, srv.log.tail(logTail))
	}
	if err := syscall.Kill(third, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("child pid %d outlived slipway (kill -0: %v)", third, err)
	}
}

// readyPIDs lists the pids of the server log's "model server ready" lines,
// first start and restarts, in order.
func readyPIDs(s *server) []int {
	var pids []int
	for line := range strings.Lines(s.log.String()) {
		var rec struct {
			Msg string `json:"msg"`
			PID int    `json:"pid"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && (rec.Msg == "model server ready" || rec.Msg == "model server ready again") {
			pids = append(pids, rec.PID)
		}
	}
	return pids
}
