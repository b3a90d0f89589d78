// Package app wires slipway together: configuration, constructors, the HTTP
// server and shutdown in reverse order of start. It is the only package that
// knows every concrete implementation.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/controller"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/evalrun"
	"github.com/slipway-ml/slipway/internal/gate"
	"github.com/slipway-ml/slipway/internal/gateway"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/notify"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
	"github.com/slipway-ml/slipway/internal/runtime/fleet"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

// Config is everything `slipway server` can be told.
type Config struct {
	// DataDir holds the SQLite state file, the artifact folder and the
	// first admin token.
	DataDir string
	// Addr is the API listen address; GatewayAddr the inference gateway's.
	Addr        string
	GatewayAddr string
	// Version is the binary's version, reported by the gateway.
	Version string
	// MaxBodyBytes caps JSON request bodies; MaxBlobBytes one artifact file.
	MaxBodyBytes int64
	MaxBlobBytes int64
	// EgressAllow lists the networks (CIDRs or addresses, comma-separated)
	// model servers may be reached on; empty means loopback only. Metadata
	// and link-local addresses are refused whatever it says.
	EgressAllow string
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
	Log             *slog.Logger
	// AccessLog, when set, is the writer under Log's slog.JSONHandler:
	// the gateway writes its access-log lines to it directly, in the same
	// form (gateway.Config.AccessLog); nil sends them through Log.
	AccessLog io.Writer
	// Gateway is how the gateway retries, breaks circuits, falls back and
	// bounds requests (resilience.go); the zero value takes its defaults.
	Gateway GatewayResilience
	// Limits is how the gateway checks tokens, limits rates and answer
	// sizes and keeps Idempotency-Key answers (limits.go).
	Limits GatewayLimits
	// OTLPEndpoint is the base URL of an OTLP/HTTP collector that traces
	// are exported to (tracing.go); empty turns tracing off.
	OTLPEndpoint string
	// FaultInjectionEnvs lists, comma-separated, the environments where
	// served versions may carry injected faults (faults.go); empty
	// allows none.
	FaultInjectionEnvs string
	// Rollouts is how the rollout controller judges (rollouts.go).
	Rollouts Rollouts
}

// Run starts the control plane and blocks until ctx ends, then shuts down
// gracefully. ready, when not nil, receives the bound address once the
// server accepts connections.
func Run(ctx context.Context, c Config, ready func(Addrs)) error {
	if c.Log == nil {
		c.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	log := c.Log
	policy := egress.Default()
	if strings.TrimSpace(c.EgressAllow) != "" {
		allow, err := egress.ParseAllow(c.EgressAllow)
		if err != nil {
			return fmt.Errorf("--egress-allow: %w", err)
		}
		policy = &egress.Policy{Allow: allow}
	}
	faultEnvs, err := parseFaultEnvs(c.FaultInjectionEnvs, domain.DefaultEnvironments)
	if err != nil {
		return err
	}
	prom, err := c.Rollouts.prometheus()
	if err != nil {
		return err
	}
	var tracesURL string
	if c.OTLPEndpoint != "" {
		u, err := otlpTracesURL(c.OTLPEndpoint)
		if err != nil {
			return err
		}
		tracesURL = u
	}
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(c.DataDir, "slipway.db"))
	if err != nil {
		return fmt.Errorf("opening state store: %w", err)
	}
	defer st.Close()

	blobs, err := artifact.OpenLocal(filepath.Join(c.DataDir, "artifacts"))
	if err != nil {
		return err
	}

	clk := clock.Real{}
	tokens := auth.NewTokens(st, clk)
	if path, err := tokens.Bootstrap(ctx, c.DataDir); err != nil {
		return fmt.Errorf("creating the first admin token: %w", err)
	} else if path != "" {
		log.Info("created the first admin token; read it from this file (mode 0600) and keep it safe", "path", path)
	}

	reg := registry.New(registry.Config{Store: st, Blobs: blobs, Clock: clk, Check: fleet.Check(policy)})
	fl, err := fleet.Open(fleet.Config{
		Manifests: reg, Blobs: blobs, Dir: filepath.Join(c.DataDir, "runtimes"), Log: log,
		// In-process runtimes take the bodies the gateway lets through.
		Factory: fleet.NewFactory(fleet.FactoryConfig{Policy: policy, Log: log, MaxBodyBytes: c.Gateway.MaxBodyBytes}),
	})
	if err != nil {
		return err
	}
	// Runtimes stop after the servers stopped sending them requests and
	// before the store closes (defers run in reverse).
	defer fl.Close(context.WithoutCancel(ctx))
	deployments := deployment.New(deployment.Config{Store: st, Versions: reg, Runtimes: fl, Clock: clk, Log: log, FaultEnvironments: faultEnvs})
	if len(faultEnvs) > 0 {
		log.Info("fault injection is allowed", "environments", faultEnvs)
	}
	if err := deployments.Restore(ctx); err != nil {
		return fmt.Errorf("starting what is deployed: %w", err)
	}
	// A version whose runtime could not start (its server was down) is
	// tried again every 10 s until it joins its split; the watch stops
	// before the runtimes do (defers run in reverse).
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		deployments.WatchDown(watchCtx, 10*time.Second)
	}()
	defer func() {
		stopWatch()
		<-watched
	}()
	evaluations := evalrun.New(evalrun.Config{Store: st, Versions: reg, Datasets: reg, Runtimes: fl, Clock: clk, Log: log})
	// Nothing runs yet: an evaluation still running was cut short by the
	// previous process and is failed before the API serves.
	if _, err := evaluations.Recover(ctx); err != nil {
		return fmt.Errorf("failing evaluations a restart interrupted: %w", err)
	}

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	live := metrics.New(promReg, clk)
	// The webhook dispatcher sends what the outbox holds, pending
	// deliveries of an earlier run included. It stops after the servers
	// (no request can queue more) and before the store closes, letting
	// attempts in flight record their outcome (defers run in reverse).
	dispatcher, err := notify.NewDispatcher(notify.DispatcherConfig{Store: st, Policy: policy, Clock: clk, Log: log, Metrics: promReg})
	if err != nil {
		return err
	}
	dispatchCtx, stopDispatcher := context.WithCancel(context.WithoutCancel(ctx))
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		_ = dispatcher.Run(dispatchCtx)
	}()
	defer func() {
		stopDispatcher()
		<-dispatched
	}()
	webhooks := notify.NewService(notify.ServiceConfig{Store: st, Clock: clk, Policy: policy, Dispatcher: dispatcher})
	gates := gate.New(gate.Config{
		Store: st, Versions: reg, Datasets: reg, Evaluator: evaluations, Environments: deployments.Environments(),
		Clock: clk, Log: log,
		// Promotion events go to the webhook outbox in the promotion's own
		// transaction.
		Events: func(ctx context.Context, tx store.Tx, typ, subject string, data any) error {
			return notify.Enqueue(ctx, tx, notify.Event{Type: typ, Subject: subject, Time: clk.Now(), Data: data})
		},
	})
	// The rollout controller resumes what the store says is under way —
	// carrying out stored states not yet in effect — and stops before the
	// runtimes and the store (defers run in reverse).
	rollouts := controller.New(controller.Config{
		Store: st, Deployments: deployments, Versions: reg, Metrics: live, Prometheus: prom,
		Interval: c.Rollouts.Interval, PrometheusScrape: c.Rollouts.PrometheusScrape, Clock: clk, Log: log,
	})
	controlCtx, stopControl := context.WithCancel(context.WithoutCancel(ctx))
	controlled := make(chan struct{})
	go func() {
		defer close(controlled)
		if err := rollouts.Run(controlCtx); err != nil {
			log.Error("rollout controller", "err", err.Error())
		}
	}()
	defer func() {
		stopControl()
		<-controlled
	}()
	var tracer trace.TracerProvider // nil: tracing off
	if tracesURL != "" {
		tp, err := startTracing(ctx, tracesURL, c.Version, log)
		if err != nil {
			return err
		}
		// Flushed after the servers stopped (defers run in reverse).
		defer stopTracing(tp, log)
		tracer = tp
		log.Info("exporting traces over OTLP/HTTP", "url", tracesURL)
	}
	var shuttingDown atomic.Bool
	apiHandler := api.New(api.Config{
		Registry: reg, Deployments: deployments, Tokens: tokens, Store: st, Blobs: blobs,
		LiveMetrics: live, Metrics: promReg, Gatherer: promReg, Log: log,
		MaxBodyBytes: c.MaxBodyBytes, MaxBlobBytes: c.MaxBlobBytes, Evaluations: evaluations,
		Webhooks: webhooks, Gates: gates, Rollouts: rollouts,
		Ready: func() bool { return !shuttingDown.Load() }, TracerProvider: tracer,
	})
	gwConfig := gateway.Config{Routes: deployments, Metrics: live, Log: log, AccessLog: c.AccessLog, ServerVersion: c.Version, TracerProvider: tracer,
		Server: gateway.ServerConfig{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, Log: log}}
	c.Gateway.apply(&gwConfig)
	c.Limits.apply(&gwConfig, st, clk)
	gw := gateway.New(gwConfig)

	servers := []*listener{
		{name: "api", addr: c.Addr, handler: apiHandler},
		// The gateway runs on its own HTTP/1.1 server (ADR 011): the
		// per-request cost of net/http's was about nginx's whole cost.
		{name: "gateway", addr: c.GatewayAddr, handler: gw, srv: gw.Server()},
	}
	serveErr := make(chan error, len(servers))
	for _, l := range servers {
		if err := l.listen(log); err != nil {
			for _, started := range servers {
				if started.srv != nil {
					started.srv.Close()
				}
			}
			return err
		}
		go func() { serveErr <- l.serve() }()
	}
	log.Info("slipway server listening", "addr", servers[0].bound, "gateway_addr", servers[1].bound, "data_dir", c.DataDir)
	if ready != nil {
		ready(Addrs{API: servers[0].bound, Gateway: servers[1].bound})
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", c.ShutdownTimeout.String())
	shuttingDown.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	for _, l := range servers {
		if err := l.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("shutdown did not finish in time; closing connections", "server", l.name, "err", err.Error())
			l.srv.Close()
		}
	}
	// The gateway's queued shadow mirrors go out (or are dropped and
	// counted) before the runtimes they call stop.
	if err := gw.Close(sctx); err != nil {
		log.Warn("shutdown did not finish in time", "server", "gateway", "err", err.Error())
	}
	log.Info("stopped")
	return nil
}

// Addrs are the addresses the servers bound (useful with port 0).
type Addrs struct {
	API     string
	Gateway string
}

// listener is one HTTP server of the process.
type listener struct {
	name, addr string
	handler    http.Handler
	ln         net.Listener
	// srv is the server, net/http's unless given (the gateway's own).
	srv   server
	bound string
}

// server is what the process needs of an HTTP server: net/http's and the
// gateway's both are one.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

func (l *listener) listen(log *slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return fmt.Errorf("%s: listening on %s: %w", l.name, l.addr, err)
	}
	l.ln, l.bound = ln, ln.Addr().String()
	if l.srv != nil {
		return nil
	}
	l.srv = &http.Server{
		Handler:           l.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return nil
}

func (l *listener) serve() error {
	if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", l.name, err)
	}
	return nil
}
