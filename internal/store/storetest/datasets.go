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

func newDataset(name, digest string) domain.Dataset {
	return domain.Dataset{
		Name: name, Digest: digest, Size: 120, Format: "csv", Rows: 3,
		Columns: []domain.DatasetColumn{{Name: "x", Type: "number", Missing: 1}, {Name: "seg", Type: "string"}, {Name: "y", Type: "number"}},
		Task:    domain.TaskClassification, Label: "y", Segments: []string{"seg"}, Sensitive: "seg",
		CreatedBy: "alice", CreatedAt: t0,
	}
}

func createDataset(t *testing.T, s store.Store, d domain.Dataset) domain.Dataset {
	t.Helper()
	var got domain.Dataset
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		got, err = tx.CreateDataset(ctx, d)
		return err
	})
	return got
}

func checkDataset(t *testing.T, what string, got, want domain.Dataset) {
	t.Helper()
	checkTime(t, what+": created at", got.CreatedAt, want.CreatedAt)
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// testDatasets: numbering per name, round trip, latest, lookup by digest,
// paged listing in (name, number) order, and refusals.
func testDatasets(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.GetDataset(ctx, "holdout", 0); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("GetDataset of nothing: %v, want ErrNotFound", err)
	}
	d1 := createDataset(t, s, newDataset("holdout", "sha256:"+hex64('a')))
	if d1.Number != 1 {
		t.Fatalf("first dataset numbered %d", d1.Number)
	}
	want := newDataset("holdout", "sha256:"+hex64('a'))
	want.Number = 1
	got, err := s.GetDataset(ctx, "holdout", 1)
	must(t, "GetDataset", err)
	checkDataset(t, "dataset round trip", got, want)

	plain := newDataset("holdout", "sha256:"+hex64('b'))
	plain.Segments, plain.Sensitive = nil, ""
	d2 := createDataset(t, s, plain)
	if d2.Number != 2 {
		t.Fatalf("second dataset numbered %d", d2.Number)
	}
	latest, err := s.GetDataset(ctx, "holdout", 0)
	must(t, "GetDataset latest", err)
	plain.Number = 2
	checkDataset(t, "latest dataset (no segments)", latest, plain)
	if _, err := s.GetDataset(ctx, "holdout", 3); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("GetDataset of a missing number: %v, want ErrNotFound", err)
	}
	// Numbers are per name.
	if o := createDataset(t, s, newDataset("other", "sha256:"+hex64('a'))); o.Number != 1 {
		t.Errorf("first version of another name numbered %d", o.Number)
	}
	for i := range 4 {
		createDataset(t, s, newDataset(fmt.Sprintf("z%d", i), "sha256:"+hex64('c')))
	}

	byDigest, _, err := s.ListDatasets(ctx, store.DatasetFilter{Name: "holdout", Digest: "sha256:" + hex64('a')}, store.Page{})
	must(t, "ListDatasets by digest", err)
	if len(byDigest) != 1 || byDigest[0].Number != 1 {
		t.Errorf("datasets of holdout with digest a: %+v", byDigest)
	}
	byName, _, err := s.ListDatasets(ctx, store.DatasetFilter{Name: "holdout"}, store.Page{})
	must(t, "ListDatasets by name", err)
	if len(byName) != 2 {
		t.Errorf("datasets named holdout: %d, want 2", len(byName))
	}

	var keys []string
	cursor := ""
	for range 10 {
		ds, next, err := s.ListDatasets(ctx, store.DatasetFilter{}, store.Page{Limit: 2, Cursor: cursor})
		must(t, "ListDatasets", err)
		for _, d := range ds {
			keys = append(keys, d.Ref())
		}
		if next == "" {
			break
		}
		cursor = next
	}
	wantKeys := []string{"holdout@1", "holdout@2", "other@1", "z0@1", "z1@1", "z2@1", "z3@1"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("paged datasets = %v, want %v", keys, wantKeys)
	}
	if _, _, err := s.ListDatasets(ctx, store.DatasetFilter{}, store.Page{Cursor: "bogus"}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("bogus cursor: %v, want ErrInvalid", err)
	}

	// A malformed row is refused and leaves nothing.
	bad := newDataset("holdout", "sha256:"+hex64('d'))
	bad.Format = "parquet"
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { _, err := tx.CreateDataset(ctx, bad); return err })
	if !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("dataset with format parquet: %v, want ErrInvalid", err)
	}
	if l, err := s.GetDataset(ctx, "holdout", 0); err != nil || l.Number != 2 {
		t.Errorf("after a refused create, latest = %+v, %v", l, err)
	}
}

// hex64 is 64 copies of c: a well-formed sha256 hex.
func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
