//go:build unix

package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/logtest"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// options parses a process version's runtime config as a push would.
func options(t *testing.T, mode string, kv map[string]string) runtime.ProcessOptions {
	t.Helper()
	opts := map[string]string{"env." + helperEnv: mode}
	for k, v := range kv {
		opts[k] = v
	}
	if _, ok := opts["command"]; !ok {
		opts["command"] = helperCommand()
	}
	o, err := runtime.ParseProcess(opts)
	if err != nil {
		t.Fatalf("ParseProcess: %v", err)
	}
	return o
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noLeaks fails the test if goroutines started during it outlive it.
func noLeaks(t *testing.T) {
	t.Helper()
	before := goruntime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for goruntime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := goruntime.Stack(buf, true)
				t.Errorf("%d goroutines before the test, %d after:\n%s", before, goruntime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func infer(t *testing.T, ep runtime.Endpoint) []float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ep.URL.JoinPath("/v2/models/fraud/infer").String(),
		strings.NewReader(`{"inputs":[{"name":"x","shape":[3],"datatype":"FP64","data":[1,2.5,-4]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: ep.Transport}).Do(req)
	if err != nil {
		t.Fatalf("infer: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Outputs []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != http.StatusOK || len(out.Outputs) != 1 {
		t.Fatalf("infer answered %d %s (%v)", resp.StatusCode, body, err)
	}
	return out.Outputs[0].Data
}

// TestServeKillRestart starts a real model server, infers through the
// endpoint, kills it with SIGKILL, and sees the supervisor bring it back.
func TestServeKillRestart(t *testing.T) {
	noLeaks(t)
	logBuf := &logtest.Buffer{}
	waits := make(chan time.Duration)
	release := make(chan struct{})
	t.Setenv("SLIPWAY_TEST_SECRET", "do-not-leak")
	r := New(Config{
		ModelName: "fraud", Version: 7, ArtifactDir: t.TempDir(),
		Options: options(t, "serve", map[string]string{"env.GREETING": "{model}@{version} in {artifact_dir}"}),
		Log:     slog.New(slog.NewJSONHandler(logBuf, nil)),
		Backoff: Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
		// Hold each restart until the test has seen the server down.
		Wait: func(ctx context.Context, d time.Duration) error {
			select {
			case waits <- d:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	ctx := context.Background()
	if err := r.Health(ctx); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Health before Start = %v, want ErrUnavailable", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer r.Stop(ctx)
	if err := r.Health(ctx); err != nil {
		t.Fatalf("Health after Start: %v", err)
	}
	ep := r.Endpoint()
	if ep.Protocol != runtime.ProtocolOIP || ep.URL.Hostname() != "127.0.0.1" || ep.Transport == nil {
		t.Fatalf("Endpoint = %+v", ep)
	}
	if got := infer(t, ep); fmt.Sprint(got) != "[2 5 -8]" {
		t.Fatalf("infer = %v, want [2 5 -8]", got)
	}

	// The child saw its expanded template and none of slipway's secrets;
	// its output reached the ring and the structured log.
	eventually(t, 5*time.Second, "helper output captured", func() bool {
		return strings.Contains(strings.Join(r.Logs(), "\n"), "helper env GREETING")
	})
	logs := strings.Join(r.Logs(), "\n")
	dir := r.cfg.ArtifactDir
	for _, want := range []string{
		fmt.Sprintf(`GREETING="fraud@7 in %s"`, dir), `TOKEN=""`, `"-port" "` + ep.URL.Port() + `"`, "serving on 127.0.0.1:" + ep.URL.Port(),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("Logs() lacks %q:\n%s", want, logs)
		}
	}
	if js := logBuf.String(); !strings.Contains(js, `"model":"fraud"`) || !strings.Contains(js, `"version":7`) || !strings.Contains(js, `"stream":"stderr"`) {
		t.Errorf("slog output lacks model/version/stream attributes:\n%s", js)
	}

	old := r.PID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var d time.Duration
	select {
	case d = <-waits:
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not notice the child died")
	}
	if d != 50*time.Millisecond {
		t.Errorf("first restart waits %s, want the initial backoff 50ms", d)
	}
	err := r.Health(ctx)
	if !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "restarting") || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Health while down = %v, want ErrUnavailable saying it restarts after being killed", err)
	}
	if r.PID() != 0 {
		t.Fatalf("PID while down = %d, want 0", r.PID())
	}
	close(release)
	eventually(t, 30*time.Second, "server back after restart", func() bool { return r.Health(ctx) == nil })
	if pid := r.PID(); pid == old || pid == 0 {
		t.Fatalf("PID after restart = %d, old was %d", pid, old)
	}
	if r.Restarts() != 1 {
		t.Fatalf("Restarts() = %d, want 1", r.Restarts())
	}
	if got := r.Endpoint(); got.URL.String() != ep.URL.String() {
		t.Fatalf("endpoint moved from %s to %s", ep.URL, got.URL)
	}
	if got := infer(t, ep); fmt.Sprint(got) != "[2 5 -8]" {
		t.Fatalf("infer after restart = %v", got)
	}
	if !strings.Contains(strings.Join(r.Logs(), "\n"), fmt.Sprintf("slipway: pid %d exited (signal: killed)", old)) {
		t.Errorf("Logs() does not record the exit:\n%s", strings.Join(r.Logs(), "\n"))
	}

	cur := r.PID()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !processGone(cur) || !processGone(old) {
		t.Fatalf("a model server process survived Stop")
	}
	if err := r.Health(ctx); !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("Health after Stop = %v", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStartFailsWhenTheCommandExits(t *testing.T) {
	noLeaks(t)
	r := New(Config{ModelName: "fraud", Version: 1, Options: options(t, "exit", nil)})
	err := r.Start(context.Background())
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Start = %v, want ErrUnavailable", err)
	}
	for _, want := range []string{`"fraud" version 1`, "exited (exit status 3) before becoming ready", "fatal: cannot load model.bin", "helper pid="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error lacks %q:\n%v", want, err)
		}
	}
	if err := r.Health(context.Background()); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Health after a failed Start = %v", err)
	}
	if r.PID() != 0 {
		t.Fatalf("PID after a failed Start = %d", r.PID())
	}
}

// pidFrom finds "helper pid=N" (or another label) in lines.
func pidFrom(t *testing.T, text, label string) []int {
	t.Helper()
	var pids []int
	for _, line := range strings.Split(text, "\n") {
		_, rest, ok := strings.Cut(line, label)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.Atoi(strings.TrimRight(f[0], ",)"))
		if err != nil {
			t.Fatalf("bad pid in %q", line)
		}
		pids = append(pids, n)
	}
	return pids
}

// TestStartFailsWhenNeverHealthy: a server that never answers its health
// check fails Start after startup_timeout, and neither it nor what it
// forked is left running. (That the error quotes the child's output is
// shown by TestStartFailsWhenTheCommandExits; here the child may not have
// printed anything yet when the timeout fires on a loaded machine.)
func TestStartFailsWhenNeverHealthy(t *testing.T) {
	noLeaks(t)
	r := New(Config{ModelName: "fraud", Version: 2,
		Options: options(t, "hang", map[string]string{"startup_timeout": "400ms", "command": helperCommand("-children", "1")})})
	err := r.Start(context.Background())
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Start = %v, want ErrUnavailable", err)
	}
	for _, want := range []string{"did not become ready within 400ms", "connection refused", "slipway: started", "stopped (signal: terminated)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error lacks %q:\n%v", want, err)
		}
	}
	leader := pidFrom(t, err.Error(), "(pid ")
	if len(leader) != 1 {
		t.Fatalf("want the child's pid in the error, got %v:\n%v", leader, err)
	}
	// The child is reaped before Start returns; a grandchild it forked
	// was SIGKILLed with the group and is reaped by init shortly after.
	if !processGone(leader[0]) {
		t.Errorf("child %d still runs after Start failed", leader[0])
	}
	for _, pid := range pidFrom(t, strings.Join(r.Logs(), "\n"), "grandchild pid=") {
		eventually(t, 5*time.Second, "grandchild gone", func() bool { return processGone(pid) })
	}
}

func TestStopTerminatesTheProcessGroup(t *testing.T) {
	for _, tt := range []struct {
		name       string
		ignoreTerm bool
	}{{"SIGTERM", false}, {"SIGKILL after grace", true}} {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			args := []string{"-children", "2"}
			if tt.ignoreTerm {
				args = append(args, "-ignore-term")
			}
			r := New(Config{ModelName: "fraud", Version: 3, StopGrace: 300 * time.Millisecond,
				Options: options(t, "serve", map[string]string{"command": helperCommand(args...)})})
			ctx := context.Background()
			if err := r.Start(ctx); err != nil {
				t.Fatalf("Start: %v", err)
			}
			var grandchildren []int
			eventually(t, 5*time.Second, "grandchild pids printed", func() bool {
				grandchildren = pidFrom(t, strings.Join(r.Logs(), "\n"), "grandchild pid=")
				return len(grandchildren) == 2
			})
			leader := r.PID()
			for _, pid := range append(grandchildren, leader) {
				if processGone(pid) {
					t.Fatalf("process %d is not running before Stop", pid)
				}
			}
			if err := r.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			// Stop returns once the leader is reaped; the orphaned
			// grandchildren were SIGKILLed and are reaped by init.
			if !processGone(leader) {
				t.Fatalf("leader %d survived Stop", leader)
			}
			for _, pid := range grandchildren {
				eventually(t, 5*time.Second, fmt.Sprintf("grandchild %d gone", pid), func() bool { return processGone(pid) })
			}
			want := fmt.Sprintf("slipway: pid %d stopped (signal: terminated)", leader)
			if tt.ignoreTerm {
				want = fmt.Sprintf("slipway: pid %d stopped (signal: killed)", leader)
			}
			if logs := strings.Join(r.Logs(), "\n"); !strings.Contains(logs, want) {
				t.Errorf("Logs() lack %q:\n%s", want, logs)
			}
		})
	}
}

func TestStartWithAMissingExecutable(t *testing.T) {
	noLeaks(t)
	r := New(Config{ModelName: "fraud", Version: 1, Options: options(t, "serve", map[string]string{"command": "/nonexistent/model-server --port {port}"})})
	err := r.Start(context.Background())
	if !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "/nonexistent/model-server") {
		t.Fatalf("Start = %v, want ErrUnavailable naming the executable", err)
	}
}

func TestStartHonoursItsContext(t *testing.T) {
	noLeaks(t)
	r := New(Config{ModelName: "fraud", Version: 1, Options: options(t, "hang", nil)})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := r.Start(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want the context's deadline", err)
	}
	pids := pidFrom(t, strings.Join(r.Logs(), "\n"), "(pid ")
	if len(pids) != 1 {
		t.Fatalf("want one child started, got %v", pids)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Fatalf("process %d survived a cancelled Start", pid)
		}
	}
}

// TestStopWhileRestarting: Stop during the backoff wait ends the
// supervisor without starting another child.
func TestStopWhileRestarting(t *testing.T) {
	noLeaks(t)
	waiting := make(chan struct{})
	r := New(Config{ModelName: "fraud", Version: 1, Options: options(t, "serve", nil),
		Wait: func(ctx context.Context, d time.Duration) error {
			close(waiting)
			<-ctx.Done()
			return ctx.Err()
		}})
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(r.PID(), syscall.SIGKILL)
	<-waiting
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if r.Restarts() != 0 {
		t.Fatalf("Restarts() = %d after Stop during the wait", r.Restarts())
	}
}

func TestStartTwice(t *testing.T) {
	noLeaks(t)
	r := New(Config{ModelName: "fraud", Version: 1, Options: options(t, "serve", nil)})
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second Start = %v, want ErrConflict", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A stopped runtime starts again, on a fresh port.
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if got := infer(t, r.Endpoint()); len(got) != 3 {
		t.Fatalf("infer = %v", got)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStopDuringStart: Stop while Start waits for readiness ends both,
// and the child with them.
func TestStopDuringStart(t *testing.T) {
	noLeaks(t)
	r := New(Config{ModelName: "fraud", Version: 1, Options: options(t, "hang", nil)})
	ctx := context.Background()
	started := make(chan error, 1)
	go func() { started <- r.Start(ctx) }()
	eventually(t, 10*time.Second, "child spawned", func() bool { return r.PID() != 0 })
	pid := r.PID()
	if err := r.Health(ctx); !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("Health while starting = %v", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	err := <-started
	if !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "stopped before it became ready") {
		t.Fatalf("Start = %v, want it to report the stop", err)
	}
	if !processGone(pid) {
		t.Fatalf("child %d survived", pid)
	}
}
