// Package app wires slipway together: configuration, constructors, the HTTP
// server and shutdown in reverse order of start. It is the only package that
// knows every concrete implementation.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
	"github.com/slipway-ml/slipway/internal/runtime/fleet"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

// Config is everything `slipway server` can be told.
type Config struct {
	// DataDir holds the SQLite state file, the artifact folder and the
	// first admin token.
	DataDir string
	// Addr is the API listen address.
	Addr string
	// MaxBodyBytes caps JSON request bodies; MaxBlobBytes one artifact file.
	MaxBodyBytes int64
	MaxBlobBytes int64
	// EgressAllow lists the networks model servers may be reached on
	// (default loopback only); metadata and link-local addresses are
	// refused whatever it says.
	EgressAllow []netip.Prefix
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
	Log             *slog.Logger
}

// Run starts the control plane and blocks until ctx ends, then shuts down
// gracefully. ready, when not nil, receives the bound address once the
// server accepts connections.
func Run(ctx context.Context, c Config, ready func(addr string)) error {
	if c.Log == nil {
		c.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	log := c.Log
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

	policy := &egress.Policy{Allow: c.EgressAllow}
	if len(policy.Allow) == 0 {
		policy = egress.Default()
	}
	reg := registry.New(registry.Config{Store: st, Blobs: blobs, Clock: clk, Check: fleet.Check(policy)})
	fl, err := fleet.Open(fleet.Config{
		Manifests: reg, Blobs: blobs, Dir: filepath.Join(c.DataDir, "runtimes"), Log: log,
		Factory: fleet.NewFactory(fleet.FactoryConfig{Policy: policy, Log: log}),
	})
	if err != nil {
		return err
	}
	// Runtimes stop after the servers stopped sending them requests and
	// before the store closes (defers run in reverse).
	defer fl.Close(context.WithoutCancel(ctx))
	deployments := deployment.New(deployment.Config{Store: st, Versions: reg, Runtimes: fl, Clock: clk, Log: log})
	if err := deployments.Restore(ctx); err != nil {
		return fmt.Errorf("starting what is deployed: %w", err)
	}

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var shuttingDown atomic.Bool
	handler := api.New(api.Config{
		Registry: reg, Deployments: deployments, Tokens: tokens, Store: st, Blobs: blobs,
		Metrics: promReg, Gatherer: promReg, Log: log,
		MaxBodyBytes: c.MaxBodyBytes, MaxBlobBytes: c.MaxBlobBytes,
		Ready: func() bool { return !shuttingDown.Load() },
	})

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.Addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("slipway server listening", "addr", ln.Addr().String(), "data_dir", c.DataDir)
	if ready != nil {
		ready(ln.Addr().String())
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
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown did not finish cleanly", "err", err)
	}
	log.Info("stopped")
	return nil
}
