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

func testGatePolicies(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "m")
	createModel(t, s, "n")
	if _, err := s.GetGatePolicy(ctx, "m", "production"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("GetGatePolicy of nothing: %v", err)
	}
	min := 0.9
	p := domain.GatePolicy{Model: "m", Environment: "production", Dataset: "holdout@2",
		Rules:     []domain.GateRule{{Metric: "roc_auc", Min: &min}, {Metric: "tpr_gap", Group: "sex", Max: &min}},
		Approvals: domain.Approvals{Required: 2, Role: domain.RoleApprover}, Source: "kind: GatePolicy\n", CreatedBy: "lead", CreatedAt: t0}
	var got domain.GatePolicy
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		got, err = tx.CreateGatePolicy(ctx, p)
		return err
	})
	if got.Revision != 1 {
		t.Fatalf("first revision = %d", got.Revision)
	}
	read, err := s.GetGatePolicy(ctx, "m", "production")
	must(t, "GetGatePolicy", err)
	checkTime(t, "policy created at", read.CreatedAt, p.CreatedAt)
	read.CreatedAt, p.CreatedAt, p.Revision = time.Time{}, time.Time{}, 1
	if !reflect.DeepEqual(read, p) {
		t.Fatalf("policy round trip:\n got %+v\nwant %+v", read, p)
	}
	p.Approvals.Required = 1
	for _, env := range []string{"production", "staging"} {
		p.Environment = env
		update(t, s, func(ctx context.Context, tx store.Tx) error { _, err := tx.CreateGatePolicy(ctx, p); return err })
	}
	p.Model = "n"
	update(t, s, func(ctx context.Context, tx store.Tx) error { _, err := tx.CreateGatePolicy(ctx, p); return err })
	read, _ = s.GetGatePolicy(ctx, "m", "production")
	if read.Revision != 2 || read.Approvals.Required != 1 {
		t.Fatalf("latest revision = %+v", read)
	}
	ps, err := s.ListGatePolicies(ctx, "m")
	must(t, "ListGatePolicies", err)
	if len(ps) != 2 || ps[0].Environment != "production" || ps[0].Revision != 2 || ps[1].Environment != "staging" || ps[1].Revision != 1 {
		t.Fatalf("policies of m = %+v", ps)
	}
	if ps, _ = s.ListGatePolicies(ctx, ""); len(ps) != 3 {
		t.Fatalf("every policy = %d", len(ps))
	}
	p.Model = "ghost"
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { _, err := tx.CreateGatePolicy(ctx, p); return err })
	if !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("policy of a missing model: %v", err)
	}
}

func testPromotions(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "m")
	for range 3 {
		createVersion(t, s, domain.Version{Model: "m"})
	}
	obs := 0.97
	p := domain.Promotion{Model: "m", Version: 2, Environment: "production", State: domain.PromotionPending, RequestedBy: "ann",
		PolicyRevision: 3, Evaluation: 5, Results: []domain.RuleResult{{Metric: "roc_auc", Kind: "min", Observed: &obs, Threshold: 0.95, Verdict: domain.VerdictPass, Reason: "0.97 ≥ 0.95"}},
		Required: 1, Role: domain.RoleApprover, CreatedAt: t0, UpdatedAt: t0}
	var first domain.Promotion
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		first, err = tx.CreatePromotion(ctx, p)
		return err
	})
	if first.ID != 1 {
		t.Fatalf("first promotion id = %d", first.ID)
	}
	got, err := s.GetPromotion(ctx, 1)
	must(t, "GetPromotion", err)
	checkTime(t, "promotion created at", got.CreatedAt, t0)
	got.CreatedAt, got.UpdatedAt, p.CreatedAt, p.UpdatedAt, p.ID = time.Time{}, time.Time{}, time.Time{}, time.Time{}, 1
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("promotion round trip:\n got %+v\nwant %+v", got, p)
	}
	// A pending promotion changes; one that ended never does.
	done := t0.Add(time.Hour)
	got.State, got.Decisions, got.CompletedAt, got.Previous, got.UpdatedAt = domain.PromotionCompleted,
		[]domain.Decision{{By: "bob", Approve: true, Comment: "ok", At: done}}, &done, 1, done
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdatePromotion(ctx, got) })
	again, _ := s.GetPromotion(ctx, 1)
	if again.State != domain.PromotionCompleted || len(again.Decisions) != 1 || again.Previous != 1 || again.CompletedAt == nil {
		t.Fatalf("updated promotion = %+v", again)
	}
	again.State = domain.PromotionPending
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UpdatePromotion(ctx, again) })
	if !errors.Is(err, domain.ErrPrecondition) {
		t.Fatalf("changing a completed promotion: %v", err)
	}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.UpdatePromotion(ctx, domain.Promotion{ID: 99, State: domain.PromotionRejected})
	})
	if !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("updating a missing promotion: %v", err)
	}
	bad := p
	bad.Version = 9
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { _, err := tx.CreatePromotion(ctx, bad); return err })
	if !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("promotion of a missing version: %v", err)
	}
	// Listings: newest first, filtered, paged.
	for _, env := range []string{"staging", "production", "staging"} {
		q := p
		q.Environment = env
		update(t, s, func(ctx context.Context, tx store.Tx) error { _, err := tx.CreatePromotion(ctx, q); return err })
	}
	ps, next, err := s.ListPromotions(ctx, store.PromotionFilter{}, store.Page{Limit: 3})
	must(t, "ListPromotions", err)
	if len(ps) != 3 || ps[0].ID != 4 || ps[2].ID != 2 || next == "" {
		t.Fatalf("first page = %d items, next %q", len(ps), next)
	}
	ps, next, _ = s.ListPromotions(ctx, store.PromotionFilter{}, store.Page{Limit: 3, Cursor: next})
	if len(ps) != 1 || ps[0].ID != 1 || next != "" {
		t.Fatalf("second page = %+v, next %q", ps, next)
	}
	ps, _, _ = s.ListPromotions(ctx, store.PromotionFilter{Model: "m", Environment: "staging", State: domain.PromotionPending}, store.Page{})
	if len(ps) != 2 || ps[0].ID != 4 || ps[1].ID != 2 {
		t.Fatalf("pending staging promotions = %+v", ps)
	}
	ps, _, _ = s.ListPromotions(ctx, store.PromotionFilter{State: domain.PromotionCompleted, Version: 2}, store.Page{})
	if len(ps) != 1 || ps[0].ID != 1 {
		t.Fatalf("completed promotions = %+v", ps)
	}
	if _, _, err := s.ListPromotions(ctx, store.PromotionFilter{}, store.Page{Cursor: "nope"}); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}
}
