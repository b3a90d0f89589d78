// Package apitest starts a real API server on loopback for the tests of
// the packages that speak to it (api, apiclient, cli): a temp-dir SQLite
// store, a local blob store, bootstrapped tokens and, with WithRollouts, a
// deployment service over idle runtimes and a running rollout controller.
// Only tests import it. It imports api and the packages a server is built
// from, never apiclient or cli.
package apitest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/controller"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

// Server is a running API server and what a test reaches behind it.
type Server struct {
	*httptest.Server
	Store    *sqlstore.Store
	Registry *registry.Registry
	Tokens   *auth.Tokens
	// BlobDir is the local blob store's directory.
	BlobDir string
	// Admin is the secret of the admin token the server bootstrapped.
	Admin string

	t testing.TB
}

// New starts a server on a fresh store in a temp dir; each option
// adjusts its Config before it starts. Everything is closed when the
// test ends.
func New(t testing.TB, opts ...func(*api.Config)) *Server {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobDir := filepath.Join(dir, "artifacts")
	blobs, err := artifact.OpenLocal(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(st, nil)
	if _, err := tokens.Bootstrap(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	admin, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	pr := prometheus.NewRegistry()
	cfg := api.Config{
		Registry: registry.New(registry.Config{Store: st, Blobs: blobs}),
		Tokens:   tokens, Store: st, Blobs: blobs, Metrics: pr, Gatherer: pr,
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewServer(api.New(cfg))
	t.Cleanup(srv.Close)
	return &Server{Server: srv, Store: st, Registry: cfg.Registry, Tokens: tokens, BlobDir: blobDir,
		Admin: strings.TrimSpace(string(admin)), t: t}
}

// Token mints a token of role and returns its secret.
func (s *Server) Token(name string, role domain.Role) string {
	s.t.Helper()
	sec, err := s.Tokens.Create(context.Background(), "test", name, role)
	if err != nil {
		s.t.Fatal(err)
	}
	return sec.Plain
}

// WithRollouts wires a deployment service over IdleRuntimes and a running
// rollout controller. Its clock stands still, so a pause never ends by
// itself and nothing moves unless a test asks.
func WithRollouts(t testing.TB) func(*api.Config) {
	return func(c *api.Config) {
		clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
		deps := deployment.New(deployment.Config{Store: c.Store, Versions: c.Registry, Runtimes: IdleRuntimes{}, Clock: clk, Log: c.Log})
		c.Deployments = deps
		ctrl := controller.New(controller.Config{
			Store: c.Store, Deployments: deps, Versions: c.Registry,
			Metrics: metrics.New(prometheus.NewRegistry(), clk), Clock: clk, Log: c.Log,
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = ctrl.Run(ctx)
		}()
		// Registered after the store's Close, so it runs before it.
		t.Cleanup(func() {
			cancel()
			<-done
		})
		c.Rollouts = ctrl
	}
}

// IdleRuntimes serves every version with a handler nobody calls: enough
// for deployments and rollouts that never see a request.
type IdleRuntimes struct{}

var _ deployment.Runtimes = IdleRuntimes{}

// Start returns an endpoint that answers 404.
func (IdleRuntimes) Start(context.Context, domain.Version) (runtime.Endpoint, error) {
	return runtime.Endpoint{Protocol: runtime.ProtocolOIP, Handler: http.NotFoundHandler()}, nil
}

// Health reports every version healthy.
func (IdleRuntimes) Health(context.Context, string, int) error { return nil }

// Retain keeps nothing, as there is nothing to keep.
func (IdleRuntimes) Retain(context.Context, func(model string, version int) bool) {}
