package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func testDeployments(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "a")
	createModel(t, s, "b")

	if _, err := s.GetDeployment(ctx, "a", "production"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("GetDeployment of nothing: %v, want ErrNotFound", err)
	}
	want := domain.Deployment{Model: "a", Environment: "production", Revision: 1, UpdatedBy: "cd", UpdatedAt: t0,
		Versions: []domain.ServedVersion{{Version: 1, Weight: 90}, {Version: 2, Weight: 10}, {Version: 3, Weight: 0}}, Stable: 1,
		Routing: domain.Routing{
			Sticky: &domain.StickyKey{Field: "parameters.user"},
			Rules:  []domain.MatchRule{{Header: "X-Tester", Op: domain.MatchPrefix, Value: "qa-", Version: 2}},
			Shadow: &domain.Shadow{Version: 3, Percent: 12.5},
			Limits: &domain.RouteLimits{RequestsPerSecond: 50, Burst: 10, MaxConcurrency: 4},
		}}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutDeployment(ctx, want) })
	got, err := s.GetDeployment(ctx, "a", "production")
	must(t, "GetDeployment", err)
	checkTime(t, "deployment updated at", got.UpdatedAt, want.UpdatedAt)
	got.UpdatedAt, want.UpdatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("deployment round trip:\n got %+v\nwant %+v", got, want)
	}

	// Replacing keeps one row per (model, environment).
	want.Versions, want.Revision, want.Stable, want.Routing = []domain.ServedVersion{{Version: 2, Weight: 100}}, 2, 2, domain.Routing{}
	want.UpdatedAt = t0.Add(time.Minute)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutDeployment(ctx, want) })
	got, err = s.GetDeployment(ctx, "a", "production")
	must(t, "GetDeployment", err)
	if got.Revision != 2 || len(got.Versions) != 1 || got.Versions[0].Weight != 100 || got.Stable != 2 || !got.Routing.IsZero() {
		t.Fatalf("replaced deployment = %+v", got)
	}

	for _, d := range []domain.Deployment{
		{Model: "a", Environment: "staging"}, {Model: "b", Environment: "dev"}, {Model: "b", Environment: "production"},
	} {
		d.Revision, d.UpdatedBy, d.UpdatedAt = 1, "cd", t0
		d.Versions = []domain.ServedVersion{{Version: 1, Weight: 100}}
		update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutDeployment(ctx, d) })
	}
	// Paged listing in (model, environment) order, and filters.
	var keys []string
	cursor := ""
	for range 5 {
		ds, next, err := s.ListDeployments(ctx, store.DeploymentFilter{}, store.Page{Limit: 3, Cursor: cursor})
		must(t, "ListDeployments", err)
		for _, d := range ds {
			keys = append(keys, d.Model+"/"+d.Environment)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if want := []string{"a/production", "a/staging", "b/dev", "b/production"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("listed %v, want %v", keys, want)
	}
	ds, _, err := s.ListDeployments(ctx, store.DeploymentFilter{Model: "b"}, store.Page{})
	must(t, "ListDeployments(model b)", err)
	if len(ds) != 2 {
		t.Fatalf("model filter listed %d", len(ds))
	}
	ds, _, err = s.ListDeployments(ctx, store.DeploymentFilter{Environment: "production"}, store.Page{})
	must(t, "ListDeployments(production)", err)
	if len(ds) != 2 || ds[0].Model != "a" || ds[1].Model != "b" {
		t.Fatalf("environment filter listed %+v", ds)
	}
	if _, _, err := s.ListDeployments(ctx, store.DeploymentFilter{}, store.Page{Cursor: "garbage!"}); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}

	// A deployment of an unknown model is refused; delete removes one.
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.PutDeployment(ctx, domain.Deployment{Model: "ghost", Environment: "dev", Revision: 1, UpdatedAt: t0,
			Versions: []domain.ServedVersion{{Version: 1, Weight: 100}}})
	})
	if !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("deployment of unknown model: %v, want ErrNotFound", err)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteDeployment(ctx, "a", "staging") })
	if _, err := s.GetDeployment(ctx, "a", "staging"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("deleted deployment: %v", err)
	}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.DeleteDeployment(ctx, "a", "staging") })
	if !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("deleting twice: %v, want ErrNotFound", err)
	}
}
