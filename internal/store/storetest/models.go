package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func testModels(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := domain.Model{
		Name: "fraud-scorer", Description: "scores card payments", Owner: "risk-team",
		Tags:      map[string]string{"team": "risk", "tier": "1", "note": "ünïcode, quotes \" and = signs"},
		CreatedBy: "alice", CreatedAt: t0,
	}
	bare := domain.Model{Name: "bare", CreatedBy: "bob", CreatedAt: t0}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateModel(ctx, full); err != nil {
			return err
		}
		// A transaction reads its own writes.
		got, err := tx.GetModel(ctx, full.Name)
		if err != nil {
			return fmt.Errorf("GetModel inside the transaction: %w", err)
		}
		checkModel(t, "GetModel inside the transaction", got, full)
		return tx.CreateModel(ctx, bare)
	})

	got, err := s.GetModel(ctx, full.Name)
	must(t, "GetModel", err)
	checkModel(t, "GetModel", got, full)

	got, err = s.GetModel(ctx, bare.Name)
	must(t, "GetModel bare", err)
	checkModel(t, "GetModel bare", got, bare)
	if got.Tags != nil {
		t.Errorf("model without tags reads back tags %#v, want nil", got.Tags)
	}

	// An empty map is stored as no tags.
	empty := domain.Model{Name: "empty-tags", Tags: map[string]string{}, CreatedBy: "bob", CreatedAt: t0}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateModel(ctx, empty) })
	got, err = s.GetModel(ctx, empty.Name)
	must(t, "GetModel empty-tags", err)
	if len(got.Tags) != 0 {
		t.Errorf("empty tags read back as %v", got.Tags)
	}

	_, err = s.GetModel(ctx, "no-such-model")
	wantErr(t, "GetModel unknown", err, domain.ErrNotFound)

	dup := full
	dup.Description = "an impostor"
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.CreateModel(ctx, dup) })
	wantErr(t, "CreateModel duplicate", err, domain.ErrConflict)
	got, err = s.GetModel(ctx, full.Name)
	must(t, "GetModel after duplicate", err)
	checkModel(t, "model after a rejected duplicate", got, full)
}

func testModelPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	models, next, err := s.ListModels(ctx, store.Page{})
	must(t, "ListModels on an empty store", err)
	if len(models) != 0 || next != "" {
		t.Fatalf("ListModels on an empty store: %d models, next %q", len(models), next)
	}

	// Created out of order; listed by name.
	names := []string{"m4", "m1", "m7", "m3", "m6", "m2", "m5"}
	for _, n := range names {
		createModel(t, s, n)
	}
	want := slices.Sorted(slices.Values(names))

	for _, limit := range []int{1, 2, 3, 6, 7, 8, 1000} {
		var got []string
		cursor := ""
		pages := 0
		for {
			ms, next, err := s.ListModels(ctx, store.Page{Limit: limit, Cursor: cursor})
			must(t, fmt.Sprintf("ListModels limit %d page %d", limit, pages), err)
			pages++
			if len(ms) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(ms))
			}
			for _, m := range ms {
				got = append(got, m.Name)
			}
			if next == "" {
				break
			}
			if pages > len(names)+1 {
				t.Fatalf("limit %d: the cursor does not advance", limit)
			}
			cursor = next
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("limit %d: walked %v, want %v", limit, got, want)
		}
		if wantPages := max(1, (len(names)+limit-1)/limit); pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d (next must be empty on the last page)", limit, pages, wantPages)
		}
	}

	// Limit 0 means the default.
	ms, next, err := s.ListModels(ctx, store.Page{})
	must(t, "ListModels default limit", err)
	if len(ms) != len(names) || next != "" {
		t.Errorf("default limit: %d models, next %q; want %d, none", len(ms), next, len(names))
	}

	for _, p := range []store.Page{
		{Limit: -1},
		{Limit: store.MaxLimit + 1},
		{Cursor: "not a cursor!"},
		{Cursor: "aGVsbG8"}, // base64 of "hello": not a cursor this store made
	} {
		_, _, err := s.ListModels(ctx, p)
		wantErr(t, fmt.Sprintf("ListModels(%+v)", p), err, domain.ErrInvalid)
	}
}
