// Package process runs a version as a child process slipway starts from a
// command template, waits for, supervises (restarting it with backoff when
// it dies), captures the output of, and stops with its whole process
// group. This is how an existing model server — an Open Inference Protocol
// server, an OpenAI-compatible LLM server — runs under slipway on one
// machine. No shell is ever involved. It imports runtime and domain; never
// the gateway, deployments or stores.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Defaults of Config.
const (
	DefaultStopGrace = 10 * time.Second
	// LogLines is how many lines of output Logs keeps.
	LogLines = 200
	// tailLines is how many of them an error quotes.
	tailLines = 20
)

// Backoff spaces out restarts of a child that keeps dying.
type Backoff struct {
	// Initial is the wait before the first restart (default 100ms); it
	// doubles after every restart that does not stay up, up to Max
	// (default 10s).
	Initial, Max time.Duration
	// Reset: a child that stayed ready this long (default 1m) is restarted
	// after Initial again, as if it had never failed.
	Reset time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max < b.Initial {
		b.Max = max(10*time.Second, b.Initial)
	}
	if b.Reset <= 0 {
		b.Reset = time.Minute
	}
	return b
}

// next is the wait before the next restart, given the previous wait (0
// when there was none) and how long the child stayed ready before it died.
func (b Backoff) next(prev, ranFor time.Duration) time.Duration {
	if prev <= 0 || ranFor >= b.Reset {
		return b.Initial
	}
	return min(prev*2, b.Max)
}

// Config is what a process runtime needs.
type Config struct {
	ModelName string
	Version   int
	// ArtifactDir is where the version's files are unpacked: the value of
	// {artifact_dir} and the child's working directory. Empty when the
	// version has no files (the child then runs in slipway's directory).
	ArtifactDir string
	Options     runtime.ProcessOptions
	// Log receives the child's output and the supervisor's events; nil
	// discards them.
	Log     *slog.Logger
	Backoff Backoff
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
	StopGrace time.Duration
	// Wait pauses before a restart; nil waits on a timer. Tests pass one
	// to hold a restart until they have looked.
	Wait func(ctx context.Context, d time.Duration) error
}

type phase int

const (
	phaseIdle phase = iota
	phaseStarting
	phaseReady
	phaseRestarting
	phaseStopped
)

// run is one Start…Stop lifetime: the supervisor goroutine owns the child
// and exits when ctx is cancelled.
type run struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// grace is the SIGTERM-to-SIGKILL wait, in nanoseconds; Stop may
	// shorten it to fit its context before cancelling.
	grace atomic.Int64
}

// Runtime is a version served by a supervised child process.
type Runtime struct {
	cfg       Config
	log       *slog.Logger
	logs      *ring
	transport *http.Transport // the gateway's, in the Endpoint
	probes    *http.Client    // health checks, on a pool of their own

	mu       sync.Mutex
	phase    phase
	run      *run
	port     int
	base     *url.URL
	cur      *child
	restarts int
	lastExit string
}

// New returns a runtime for cfg; nothing runs until Start.
func New(cfg Config) *Runtime {
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	if cfg.Options.StartupTimeout <= 0 {
		cfg.Options.StartupTimeout = runtime.DefaultStartupTimeout
	}
	if cfg.Options.HealthPath == "" {
		cfg.Options.HealthPath = "/v2/health/ready"
		if cfg.Options.Protocol == runtime.ProtocolOpenAI {
			cfg.Options.HealthPath = "/v1/models"
		}
	}
	if cfg.Options.Protocol == "" {
		cfg.Options.Protocol = runtime.ProtocolOIP
	}
	if cfg.Wait == nil {
		cfg.Wait = sleep
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{
		cfg:       cfg,
		log:       log.With("model", cfg.ModelName, "version", cfg.Version),
		logs:      newRing(LogLines),
		transport: loopbackTransport(),
		probes: &http.Client{
			Transport:     loopbackTransport(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// servedName is what {model} expands to: the name the server should serve
// the model under.
func (r *Runtime) servedName() string {
	if r.cfg.Options.ModelName != "" {
		return r.cfg.Options.ModelName
	}
	return r.cfg.ModelName
}

func (r *Runtime) describe() string {
	return fmt.Sprintf("model server of %q version %d", r.cfg.ModelName, r.cfg.Version)
}

// Start picks a loopback port, starts the command and waits until its
// health endpoint answers, then leaves a supervisor restarting it whenever
// it dies. When the child exits or never becomes ready, Start kills it and
// returns an error quoting the end of its output.
func (r *Runtime) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.phase != phaseIdle && r.phase != phaseStopped {
		r.mu.Unlock()
		return fmt.Errorf("%s is already started: %w", r.describe(), domain.ErrConflict)
	}
	port, err := freePort()
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("%s: finding a free port: %v: %w", r.describe(), err, domain.ErrUnavailable)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	ru := &run{ctx: runCtx, cancel: cancel, done: make(chan struct{})}
	ru.grace.Store(int64(r.cfg.StopGrace))
	r.phase, r.run, r.port, r.restarts, r.lastExit = phaseStarting, ru, port, 0, ""
	r.base = &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}
	r.mu.Unlock()

	started := make(chan error, 1)
	go r.supervise(ctx, ru, started)
	if err := <-started; err != nil {
		<-ru.done
		r.mu.Lock()
		r.phase, r.run = phaseIdle, nil
		r.mu.Unlock()
		return err
	}
	return nil
}

// supervise owns the child for one run: it starts it, reports the first
// readiness on started, and restarts it with backoff until the run ends.
func (r *Runtime) supervise(startCtx context.Context, ru *run, started chan<- error) {
	defer close(ru.done)
	// The first start answers to Start's context as well as to Stop.
	first, cancel := context.WithCancel(startCtx)
	stopFirst := context.AfterFunc(ru.ctx, cancel)
	c, err := r.launch(first, ru)
	stopFirst()
	cancel()
	if err != nil {
		started <- fmt.Errorf("%s: %w", r.describe(), err)
		return
	}
	r.setReady(c)
	started <- nil
	r.log.Info("model server ready", "pid", c.pid, "url", r.base.String())

	var delay time.Duration
	for {
		readyAt := time.Now()
		select {
		case <-ru.ctx.Done():
			r.stopChild(c, time.Duration(ru.grace.Load()))
			return
		case <-c.exited:
		}
		// Workers the server forked may still hold the port and the
		// output pipes.
		_ = kill(c.cmd)
		c.drain(time.Second)
		ranFor := time.Since(readyAt)
		r.setDown(c, ranFor)
		delay = r.cfg.Backoff.next(delay, ranFor)
		for {
			if err := r.cfg.Wait(ru.ctx, delay); err != nil {
				return
			}
			r.mu.Lock()
			r.restarts++
			n := r.restarts
			r.mu.Unlock()
			r.log.Info("restarting model server", "restart", n, "after", delay)
			if c, err = r.launch(ru.ctx, ru); err == nil {
				break
			}
			if ru.ctx.Err() != nil {
				return
			}
			r.log.Error("model server restart failed", "restart", n, "err", err)
			r.mu.Lock()
			r.lastExit = err.Error()
			r.mu.Unlock()
			delay = r.cfg.Backoff.next(delay, 0)
		}
		r.setReady(c)
		r.log.Info("model server ready again", "pid", c.pid)
	}
}

// launch spawns the child and waits for it to become ready; on failure
// the child is gone and the error quotes its output.
func (r *Runtime) launch(ctx context.Context, ru *run) (*child, error) {
	c, err := r.spawn(r.port)
	if err != nil {
		return nil, fmt.Errorf("starting %q: %v: %w", r.cfg.Options.Command[0], err, domain.ErrUnavailable)
	}
	r.mu.Lock()
	r.cur = c
	r.mu.Unlock()
	if err := r.waitReady(ctx, c, r.base.String(), r.cfg.Options.StartupTimeout); err != nil {
		grace := time.Second
		if errors.Is(err, context.Canceled) && ru.ctx.Err() != nil {
			grace = time.Duration(ru.grace.Load())
			err = errStopped
		}
		r.stopChild(c, grace)
		r.mu.Lock()
		r.cur = nil
		r.mu.Unlock()
		if errors.Is(err, errStopped) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("pid %d: %w", c.pid, err)
		}
		return nil, fmt.Errorf("pid %d: %v%s: %w", c.pid, err, r.logs.tail(tailLines), domain.ErrUnavailable)
	}
	return c, nil
}

func (r *Runtime) setReady(c *child) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase, r.cur = phaseReady, c
}

func (r *Runtime) setDown(c *child, ranFor time.Duration) {
	status := c.exitStatus()
	r.mu.Lock()
	r.phase, r.cur, r.lastExit = phaseRestarting, nil, status
	r.mu.Unlock()
	r.log.Warn("model server exited", "pid", c.pid, "status", status, "ran_for", ranFor)
	r.logs.add(fmt.Sprintf("slipway: pid %d exited (%s)", c.pid, status))
}

// Endpoint is the child's loopback address; the port does not change
// across restarts.
func (r *Runtime) Endpoint() runtime.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	ep := runtime.Endpoint{Protocol: r.cfg.Options.Protocol, Transport: r.transport}
	if r.base != nil {
		u := *r.base
		ep.URL = &u
	}
	return ep
}

// Health fails while the child is starting, restarting or stopped, and
// otherwise asks its health endpoint.
func (r *Runtime) Health(ctx context.Context) error {
	r.mu.Lock()
	ph, n, last, base := r.phase, r.restarts, r.lastExit, r.base
	r.mu.Unlock()
	switch ph {
	case phaseReady:
		if err := r.probe(ctx, base.String()); err != nil {
			return fmt.Errorf("%s: %v: %w", r.describe(), err, domain.ErrUnavailable)
		}
		return nil
	case phaseRestarting:
		return fmt.Errorf("%s is restarting (%d restarts so far; last exit: %s): %w", r.describe(), n, last, domain.ErrUnavailable)
	case phaseStarting:
		return fmt.Errorf("%s is starting: %w", r.describe(), domain.ErrUnavailable)
	case phaseStopped:
		return fmt.Errorf("%s is stopped: %w", r.describe(), domain.ErrUnavailable)
	}
	return fmt.Errorf("%s is not started: %w", r.describe(), domain.ErrUnavailable)
}

// Stop sends SIGTERM to the child's process group, waits for it up to the
// grace period (or ctx's deadline, if sooner), then SIGKILLs the group. It
// returns once the child is reaped and the supervisor has exited.
func (r *Runtime) Stop(ctx context.Context) error {
	r.mu.Lock()
	ru := r.run
	if ru == nil {
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		ru.grace.Store(int64(max(0, min(r.cfg.StopGrace, time.Until(dl)-100*time.Millisecond))))
	}
	ru.cancel()
	select {
	case <-ru.done:
	case <-ctx.Done():
		return fmt.Errorf("stopping %s: %w", r.describe(), ctx.Err())
	}
	r.mu.Lock()
	if r.run == ru {
		r.phase, r.run, r.cur = phaseStopped, nil, nil
	}
	r.mu.Unlock()
	r.transport.CloseIdleConnections()
	r.probes.CloseIdleConnections()
	r.log.Info("model server stopped")
	return nil
}

// Logs returns the last lines the child printed (stdout and stderr
// interleaved as they arrived) and slipway's notes on starts and exits,
// oldest first.
func (r *Runtime) Logs() []string { return r.logs.snapshot() }

// PID is the current child's process ID, 0 while none runs.
func (r *Runtime) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		return 0
	}
	return r.cur.pid
}

// Restarts counts the restarts since Start.
func (r *Runtime) Restarts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restarts
}
