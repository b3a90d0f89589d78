// Package storetest is the conformance suite every store.Store
// implementation runs: storetest.Run(t, newStore). It speaks only the store
// interfaces, never SQL, so SQLite and PostgreSQL are held to exactly the
// same behaviour. It imports domain, audit and store.
//
// Beyond the doc comments of package store, the suite pins down:
//   - times come back as the same instant in UTC, to the nanosecond;
//   - empty maps (tags, labels, metrics, runtime config, lineage params and
//     dependencies) come back nil;
//   - CreateVersion ignores the caller's Number and Aliases and stores an
//     empty State as registered;
//   - ListVersions and ListAliases of an unknown model return ErrNotFound,
//     CountVersions returns 0;
//   - a VersionFilter naming an alias that does not exist matches nothing;
//   - SetVersionState with a state that is not a domain.State is ErrInvalid;
//     the store does not judge lifecycle moves, the registry does;
//   - RevokeToken of a revoked token is ErrPrecondition and keeps the first
//     revocation time;
//   - a malformed cursor or an out-of-range limit is ErrInvalid;
//   - an Update whose context ends before commit returns an error wrapping
//     the context's, and commits nothing.
//   - a rollout comes back with every time in UTC and the spec byte for
//     byte; an update refused for any reason changes nothing.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// Run runs the whole suite. newStore must return a new, empty store on
// every call and close it when the test ends (t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Models", testModels},
		{"ModelPagination", testModelPagination},
		{"Versions", testVersions},
		{"VersionRoundTrip", testVersionRoundTrip},
		{"VersionMutations", testVersionMutations},
		{"VersionPagination", testVersionPagination},
		{"VersionFilters", testVersionFilters},
		{"Aliases", testAliases},
		{"Tokens", testTokens},
		{"Deployments", testDeployments},
		{"Datasets", testDatasets},
		{"Evaluations", testEvaluations},
		{"GatePolicies", testGatePolicies},
		{"Promotions", testPromotions},
		{"ReadsReleaseConnections", testReadsReleaseConnections},
		{"Webhooks", testWebhooks},
		{"Deliveries", testDeliveries},
		{"RolloutRoundTrip", testRolloutRoundTrip},
		{"RolloutCompareAndSwap", testRolloutCompareAndSwap},
		{"RolloutConcurrentCreates", testRolloutConcurrentCreates},
		{"RolloutEnded", testRolloutEnded},
		{"ActiveRollout", testActiveRollout},
		{"RolloutCreateRefusals", testRolloutCreateRefusals},
		{"RolloutListing", testRolloutListing},
		{"RolloutReadsReleaseConnections", testRolloutReadsReleaseConnections},
		{"AuditChain", testAuditChain},
		{"AuditFilters", testAuditFilters},
		{"Rollback", testRollback},
		{"Panic", testPanic},
		{"Isolation", testIsolation},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"CanceledContext", testCanceledContext},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// t0 is a time with nanoseconds in a zone other than UTC: stores must give
// back the same instant, in UTC.
var t0 = time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("CEST", 2*60*60))

// update runs fn in a transaction and fails the test on error.
func update(t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func createModel(t *testing.T, s store.Store, name string) domain.Model {
	t.Helper()
	m := domain.Model{Name: name, CreatedBy: "alice", CreatedAt: t0}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateModel(ctx, m) })
	return m
}

func createVersion(t *testing.T, s store.Store, v domain.Version) domain.Version {
	t.Helper()
	if v.Format == "" {
		v.Format = domain.FormatExternal
	}
	if v.CreatedBy == "" {
		v.CreatedBy = "alice"
		v.CreatedAt = t0
	}
	var got domain.Version
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		got, err = tx.CreateVersion(ctx, v)
		return err
	})
	return got
}

func setAlias(t *testing.T, s store.Store, model, name string, version int) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.SetAlias(ctx, domain.Alias{Model: model, Name: name, Version: version, UpdatedBy: "bob", UpdatedAt: t0})
	})
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

// must fails the test now on an unexpected error.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sameTime reports whether got is the instant want, in UTC.
func sameTime(got, want time.Time) bool {
	return got.Equal(want) && got.Location() == time.UTC
}

// checkTime fails unless got is the instant want, in UTC.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !sameTime(got, want) {
		t.Errorf("%s: time %s (%s), want %s in UTC", what, got.Format(time.RFC3339Nano), got.Location(), want.UTC().Format(time.RFC3339Nano))
	}
}

func checkModel(t *testing.T, what string, got, want domain.Model) {
	t.Helper()
	checkTime(t, what+": created at", got.CreatedAt, want.CreatedAt)
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func checkVersion(t *testing.T, what string, got, want domain.Version) {
	t.Helper()
	checkTime(t, what+": created at", got.CreatedAt, want.CreatedAt)
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// numbers lists version numbers, for comparing listings.
func numbers(vs []domain.Version) []int {
	out := []int{}
	for _, v := range vs {
		out = append(out, v.Number)
	}
	return out
}

// listAllVersions walks every page of a listing.
func listAllVersions(t *testing.T, r store.Reader, model string, f store.VersionFilter, limit int) []domain.Version {
	t.Helper()
	var all []domain.Version
	cursor := ""
	for page := 0; ; page++ {
		if page > 10_000 {
			t.Fatalf("ListVersions(%s): more than 10000 pages; the cursor does not advance", model)
		}
		vs, next, err := r.ListVersions(t.Context(), model, f, store.Page{Limit: limit, Cursor: cursor})
		must(t, fmt.Sprintf("ListVersions(%s, %+v) page %d", model, f, page), err)
		if len(vs) > limit {
			t.Fatalf("ListVersions: page of %d, limit %d", len(vs), limit)
		}
		all = append(all, vs...)
		if next == "" {
			return all
		}
		if len(vs) == 0 {
			t.Fatalf("ListVersions: empty page with a next cursor")
		}
		cursor = next
	}
}

func testPing(t *testing.T, s store.Store) {
	must(t, "Ping", s.Ping(t.Context()))
}
