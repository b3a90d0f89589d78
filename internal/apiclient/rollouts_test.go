package apiclient_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/api/apitest"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/rollout"
)

// TestRolloutClient drives a rollout through every client method, against
// a real API server with a running rollout controller on loopback.
func TestRolloutClient(t *testing.T) {
	srv := apitest.New(t, apitest.WithRollouts(t))
	c, err := apiclient.New(srv.URL, srv.Admin)
	if err != nil {
		t.Fatal(err)
	}
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
	dan, err := apiclient.New(srv.URL, srv.Token("dan", domain.RoleDeployer))
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
