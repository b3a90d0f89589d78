package apiclient_test

import (
	"context"
	"errors"
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
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/controller"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/rollout"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

// idleRuntimes serves every version with a handler nobody calls.
type idleRuntimes struct{}

func (idleRuntimes) Start(context.Context, domain.Version) (runtime.Endpoint, error) {
	return runtime.Endpoint{Protocol: runtime.ProtocolOIP, Handler: http.NotFoundHandler()}, nil
}
func (idleRuntimes) Health(context.Context, string, int) error                    { return nil }
func (idleRuntimes) Retain(context.Context, func(model string, version int) bool) {}

// rolloutServer is a real API server with a running rollout controller
// on loopback, and an admin client of it.
func rolloutServer(t *testing.T) (*apiclient.Client, *auth.Tokens, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobs, err := artifact.OpenLocal(filepath.Join(dir, "artifacts"))
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
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	reg := registry.New(registry.Config{Store: st, Blobs: blobs})
	deps := deployment.New(deployment.Config{Store: st, Versions: reg, Runtimes: idleRuntimes{}, Clock: clk, Log: log})
	ctrl := controller.New(controller.Config{Store: st, Deployments: deps, Versions: reg,
		Metrics: metrics.New(prometheus.NewRegistry(), clk), Clock: clk, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ctrl.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	pr := prometheus.NewRegistry()
	srv := httptest.NewServer(api.New(api.Config{Registry: reg, Deployments: deps, Tokens: tokens, Store: st, Blobs: blobs,
		Metrics: pr, Gatherer: pr, Log: log, Rollouts: ctrl}))
	t.Cleanup(srv.Close)
	c, err := apiclient.New(srv.URL, strings.TrimSpace(string(admin)))
	if err != nil {
		t.Fatal(err)
	}
	return c, tokens, srv.URL
}

// TestRolloutClient drives a rollout through every client method.
func TestRolloutClient(t *testing.T) {
	c, tokens, url := rolloutServer(t)
	ctx := t.Context()
	if _, err := c.CreateModel(ctx, api.ModelRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.PushVersion(ctx, "m", api.VersionRequest{Format: domain.FormatExternal}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Deploy(ctx, "m", "1", "production", nil); err != nil {
		t.Fatal(err)
	}
	sec, err := tokens.Create(ctx, "test", "dan", domain.RoleDeployer)
	if err != nil {
		t.Fatal(err)
	}
	dan, err := apiclient.New(url, sec.Plain)
	if err != nil {
		t.Fatal(err)
	}
	spec := "kind: Rollout\nmodel: m\nenvironment: production\ncandidate: 2\nstrategy:\n  canary:\n    steps:\n      - weight: 10\n        pause: 1h\n      - weight: 100\n"

	_, err = dan.StartRollout(ctx, "r.yaml", []byte(spec+"colour: red\n"), false)
	if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), "r.yaml:11") {
		t.Fatalf("a bad spec: %v", err)
	}
	ro, err := dan.StartRollout(ctx, "r.yaml", []byte(spec), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dan.StartRollout(ctx, "r.yaml", []byte(spec), false); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("a second rollout: %v", err)
	}
	st, err := c.RolloutStatus(ctx, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rollout.ID != ro.ID || len(st.Steps) == 0 {
		t.Fatalf("status %+v", st)
	}
	if _, err := c.RolloutStatus(ctx, 99); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing rollout: %v", err)
	}
	p, err := dan.RolloutCommand(ctx, ro.ID, rollout.CommandPause, "hold on")
	if err != nil {
		t.Fatal(err)
	}
	if p.Phase != domain.RolloutPaused || !strings.Contains(p.Reason, "hold on") {
		t.Fatalf("paused %+v", p)
	}
	if _, err := dan.RolloutCommand(ctx, ro.ID, rollout.CommandUndo, ""); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("undo while paused: %v", err)
	}
	l, err := c.ListRollouts(ctx, apiclient.RolloutFilter{Model: "m", Environment: "production", Phase: "paused", Active: true}, apiclient.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || l.Items[0].ID != ro.ID {
		t.Fatalf("listing %+v", l)
	}
	if _, err := c.ListRollouts(ctx, apiclient.RolloutFilter{Phase: "won"}, apiclient.Page{}); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("unknown phase: %v", err)
	}
	a, err := dan.RolloutCommand(ctx, ro.ID, rollout.CommandAbort, "")
	if err != nil || a.Phase != domain.RolloutAborted {
		t.Fatalf("abort: %+v %v", a, err)
	}
	res, err := dan.Apply(ctx, "r.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "Rollout" || res.Rollout == nil || res.Rollout.ID == ro.ID {
		t.Fatalf("apply %+v", res)
	}
	if _, err := dan.StartRollout(ctx, "r.yaml", []byte(spec), true); err != nil {
		t.Fatalf("superseding: %v", err)
	}
}
