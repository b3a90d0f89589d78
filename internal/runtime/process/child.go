package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// child is one run of the model server's command.
type child struct {
	cmd     *exec.Cmd
	pid     int
	exited  chan struct{} // closed once the process is reaped
	waitErr error         // set before exited is closed
	pipes   []*os.File    // read ends of stdout and stderr
	readers sync.WaitGroup
}

// exitStatus describes how the child ended; valid after exited is closed.
func (c *child) exitStatus() string {
	if c.waitErr == nil {
		return "exit status 0"
	}
	return c.waitErr.Error()
}

// inheritedEnv are the variables of slipway's own environment a model
// server gets: enough to find programs, libraries and GPUs, and nothing
// that might hold slipway's secrets (tokens, database and S3 credentials).
var inheritedEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
}

func childEnv(extra map[string]string, values runtime.TemplateValues) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, keep := range inheritedEnv {
			if name == keep || strings.HasPrefix(name, "LC_") {
				env = append(env, kv)
				break
			}
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+values.Expand(v))
	}
	return env
}

// spawn starts the command with its placeholders expanded and its output
// captured line by line.
func (r *Runtime) spawn(port int) (*child, error) {
	values := runtime.TemplateValues{Port: port, ArtifactDir: r.cfg.ArtifactDir, Model: r.servedName(), Version: r.cfg.Version}
	argv := make([]string, len(r.cfg.Options.Command))
	for i, a := range r.cfg.Options.Command {
		argv[i] = values.Expand(a)
	}
	if len(argv) == 0 {
		return nil, errors.New("the command is empty")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = r.cfg.ArtifactDir
	cmd.Env = childEnv(r.cfg.Options.Env, values)
	cmd.SysProcAttr = sysProcAttr()

	c := &child{cmd: cmd, exited: make(chan struct{})}
	var writers []*os.File
	closeAll := func() {
		for _, f := range append(writers, c.pipes...) {
			f.Close()
		}
	}
	for range 2 {
		pr, pw, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("creating a pipe for its output: %w", err)
		}
		c.pipes, writers = append(c.pipes, pr), append(writers, pw)
	}
	// *os.File outputs go to the child as they are: no copying goroutine
	// inside exec, so Wait returns when the process exits even if a
	// grandchild still holds the pipe.
	cmd.Stdout, cmd.Stderr = writers[0], writers[1]
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}
	for _, w := range writers {
		w.Close()
	}
	c.pid = cmd.Process.Pid
	r.logs.add(fmt.Sprintf("slipway: started %s (pid %d, port %d)", argv[0], c.pid, port))
	for i, stream := range []string{"stdout", "stderr"} {
		c.readers.Add(1)
		go func(f *os.File) {
			defer c.readers.Done()
			defer f.Close()
			scanLines(f, maxLine, func(line string) {
				r.logs.add(line)
				r.log.Info("model server output", "stream", stream, "pid", c.pid, "line", line)
			})
		}(c.pipes[i])
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// drain waits for the child's output to be read to the end, then closes
// the pipes if a process outside its group still holds them open.
func (c *child) drain(limit time.Duration) {
	done := make(chan struct{})
	go func() {
		c.readers.Wait()
		close(done)
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	for _, f := range c.pipes {
		f.Close() // unblocks the readers' Read
	}
	<-done
}

// stop asks the child's process group to terminate, waits up to grace,
// then kills the group; it returns once the child is reaped and its
// output read. Stragglers in the group are killed even when the leader
// went quietly.
func (r *Runtime) stopChild(c *child, grace time.Duration) {
	select {
	case <-c.exited:
	default:
		if err := terminate(c.cmd); err != nil {
			r.log.Warn("signalling the model server", "pid", c.pid, "err", err)
		}
		t := time.NewTimer(grace)
		select {
		case <-c.exited:
		case <-t.C:
			r.log.Warn("model server ignored SIGTERM; killing it", "pid", c.pid, "grace", grace)
		}
		t.Stop()
	}
	if err := kill(c.cmd); err != nil {
		r.log.Warn("killing the model server's process group", "pid", c.pid, "err", err)
	}
	<-c.exited
	c.drain(time.Second)
	r.logs.add(fmt.Sprintf("slipway: pid %d stopped (%s)", c.pid, c.exitStatus()))
}

// errStopped ends a start because Stop was called.
var errStopped = fmt.Errorf("stopped before it became ready: %w", domain.ErrUnavailable)

// waitReady polls the health endpoint until it answers 2xx. It gives up
// when the child exits, when timeout passes, or when ctx is done.
func (r *Runtime) waitReady(ctx context.Context, c *child, base string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	interval := 20 * time.Millisecond
	var last error
	for {
		if last = r.probe(ctx, base); last == nil {
			return nil
		}
		poll := time.NewTimer(interval)
		select {
		case <-c.exited:
			poll.Stop()
			return fmt.Errorf("it exited (%s) before becoming ready", c.exitStatus())
		case <-deadline.C:
			poll.Stop()
			return fmt.Errorf("it did not become ready within %s (last health check: %v)", timeout, last)
		case <-ctx.Done():
			poll.Stop()
			return ctx.Err()
		case <-poll.C:
		}
		interval = min(interval*3/2, 500*time.Millisecond)
	}
}

// probe makes one health request to the server at base.
func (r *Runtime) probe(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+r.cfg.Options.HealthPath, nil)
	if err != nil {
		return err
	}
	resp, err := r.probes.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s answered %s", r.cfg.Options.HealthPath, resp.Status)
	}
	return nil
}

// freePort asks the kernel for an unused loopback port. The server binds
// it a moment later; the port is kept across restarts so the endpoint
// never moves.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func loopbackTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
