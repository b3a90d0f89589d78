package storetest

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func testVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "a")
	createModel(t, s, "b")

	// Numbers count per model, independently, even when interleaved.
	steps := []struct {
		model string
		want  int
	}{{"a", 1}, {"a", 2}, {"b", 1}, {"a", 3}, {"b", 2}}
	for _, st := range steps {
		v := createVersion(t, s, domain.Version{Model: st.model})
		if v.Number != st.want {
			t.Errorf("version of %s numbered %d, want %d", st.model, v.Number, st.want)
		}
	}
	// Several versions in one transaction keep counting.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for want := 3; want <= 4; want++ {
			v, err := tx.CreateVersion(ctx, domain.Version{Model: "b", Format: domain.FormatExternal, CreatedBy: "x", CreatedAt: t0})
			if err != nil {
				return err
			}
			if v.Number != want {
				t.Errorf("version of b in one transaction numbered %d, want %d", v.Number, want)
			}
			n, err := tx.CountVersions(ctx, "b")
			if err != nil {
				return err
			}
			if n != want {
				t.Errorf("CountVersions inside the transaction: %d, want %d", n, want)
			}
		}
		return nil
	})

	for model, want := range map[string]int{"a": 3, "b": 4, "no-such-model": 0} {
		n, err := s.CountVersions(ctx, model)
		must(t, "CountVersions "+model, err)
		if n != want {
			t.Errorf("CountVersions(%s) = %d, want %d", model, n, want)
		}
	}

	// A version of an unknown model is refused, and nothing is kept.
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.CreateVersion(ctx, domain.Version{Model: "no-such-model", Format: domain.FormatExternal, CreatedBy: "x", CreatedAt: t0})
		return err
	})
	wantErr(t, "CreateVersion of an unknown model", err, domain.ErrNotFound)

	for _, c := range []struct {
		model  string
		number int
	}{{"a", 4}, {"a", 0}, {"b", -1}, {"no-such-model", 1}} {
		_, err := s.GetVersion(ctx, c.model, c.number)
		wantErr(t, fmt.Sprintf("GetVersion(%s, %d)", c.model, c.number), err, domain.ErrNotFound)
	}
	_, _, err = s.ListVersions(ctx, "no-such-model", store.VersionFilter{}, store.Page{})
	wantErr(t, "ListVersions of an unknown model", err, domain.ErrNotFound)

	// A model without versions lists none.
	createModel(t, s, "c")
	vs, next, err := s.ListVersions(ctx, "c", store.VersionFilter{}, store.Page{})
	must(t, "ListVersions of a model without versions", err)
	if len(vs) != 0 || next != "" {
		t.Errorf("ListVersions of a model without versions: %d, next %q", len(vs), next)
	}
}

// fullVersion sets every field a caller controls.
func fullVersion(model string) domain.Version {
	return domain.Version{
		Model:          model,
		Number:         99, // ignored: the store numbers versions
		ArtifactDigest: "sha256:" + "ab12" + "cd34" + "ef56" + "7890" + "ab12" + "cd34" + "ef56" + "7890" + "ab12cd34ef567890ab12cd34ef567890",
		ArtifactSize:   math.MaxInt64 - 1,
		ArtifactFiles:  12,
		Format:         domain.FormatXGBoostJSON,
		RuntimeConfig:  map[string]string{"threads": "4", "json": `{"a": [1, 2]}`},
		Lineage: domain.Lineage{
			DatasetURI:    "s3://data/fraud/2025-06.parquet",
			DatasetSHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			CodeCommit:    "4f9e2c1",
			Params:        map[string]string{"max_depth": "6", "eta": "0.3"},
			Framework:     "xgboost 2.1.1",
			Dependencies:  map[string]string{"numpy": "2.0.1"},
			ParentVersion: 1,
		},
		Metrics: map[string]float64{
			"auc": 0.9123456789012345, "loss": 1e-300, "big": 1.7976931348623157e308,
			"neg": -42.5, "zero": 0, "third": 1.0 / 3,
		},
		Labels:    map[string]string{"team": "risk", "stage": "candidate", "empty": ""},
		State:     domain.StateStaging,
		CreatedBy: "alice",
		CreatedAt: t0,
		Aliases:   []string{"ignored"},
	}
}

func testVersionRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "rt")
	createVersion(t, s, domain.Version{Model: "rt"})

	in := fullVersion("rt")
	want := in
	want.Number = 2
	want.Aliases = nil
	want.CreatedAt = t0

	created := createVersion(t, s, in)
	checkVersion(t, "CreateVersion result", created, want)

	got, err := s.GetVersion(ctx, "rt", 2)
	must(t, "GetVersion", err)
	checkVersion(t, "GetVersion", got, want)

	vs, _, err := s.ListVersions(ctx, "rt", store.VersionFilter{}, store.Page{})
	must(t, "ListVersions", err)
	if len(vs) != 2 {
		t.Fatalf("ListVersions: %d versions, want 2", len(vs))
	}
	checkVersion(t, "ListVersions[1]", vs[1], want)

	// The bare version: default state, empty maps read back as nil.
	bare := domain.Version{
		Model: "rt", Format: domain.FormatExternal,
		RuntimeConfig: map[string]string{}, Metrics: map[string]float64{}, Labels: map[string]string{},
		Lineage:   domain.Lineage{Params: map[string]string{}},
		CreatedBy: "bob", CreatedAt: t0,
	}
	created = createVersion(t, s, bare)
	got, err = s.GetVersion(ctx, "rt", created.Number)
	must(t, "GetVersion bare", err)
	wantBare := domain.Version{
		Model: "rt", Number: 3, Format: domain.FormatExternal, State: domain.StateRegistered,
		CreatedBy: "bob", CreatedAt: t0,
	}
	checkVersion(t, "GetVersion of a bare version", got, wantBare)
	checkVersion(t, "CreateVersion of a bare version", created, wantBare)
}

func testVersionMutations(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "mut")
	want := createVersion(t, s, fullVersion("mut"))

	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.SetVersionState(ctx, "mut", 1, domain.StateProduction); err != nil {
			return err
		}
		return tx.SetVersionLabels(ctx, "mut", 1, map[string]string{"team": "payments", "new": "yes"})
	})
	want.State = domain.StateProduction
	want.Labels = map[string]string{"team": "payments", "new": "yes"}
	got, err := s.GetVersion(ctx, "mut", 1)
	must(t, "GetVersion after mutations", err)
	checkVersion(t, "version after SetVersionState and SetVersionLabels (nothing else changes)", got, want)

	// The label index follows the labels.
	for _, c := range []struct {
		labels map[string]string
		want   []int
	}{
		{map[string]string{"team": "payments"}, []int{1}},
		{map[string]string{"new": "yes", "team": "payments"}, []int{1}},
		{map[string]string{"team": "risk"}, []int{}},
		{map[string]string{"stage": "candidate"}, []int{}},
	} {
		vs, _, err := s.ListVersions(ctx, "mut", store.VersionFilter{Labels: c.labels}, store.Page{})
		must(t, "ListVersions", err)
		if got := numbers(vs); !reflect.DeepEqual(got, c.want) {
			t.Errorf("labels %v after SetVersionLabels: %v, want %v", c.labels, got, c.want)
		}
	}

	// nil clears every label.
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetVersionLabels(ctx, "mut", 1, nil) })
	got, err = s.GetVersion(ctx, "mut", 1)
	must(t, "GetVersion after clearing labels", err)
	if got.Labels != nil {
		t.Errorf("labels after SetVersionLabels(nil): %v, want nil", got.Labels)
	}
	vs, _, err := s.ListVersions(ctx, "mut", store.VersionFilter{Labels: map[string]string{"team": "payments"}}, store.Page{})
	must(t, "ListVersions", err)
	if len(vs) != 0 {
		t.Errorf("a cleared label still matches %v", numbers(vs))
	}

	for _, c := range []struct {
		model  string
		number int
	}{{"mut", 2}, {"no-such-model", 1}} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.SetVersionState(ctx, c.model, c.number, domain.StateArchived)
		})
		wantErr(t, fmt.Sprintf("SetVersionState(%s, %d)", c.model, c.number), err, domain.ErrNotFound)
		err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.SetVersionLabels(ctx, c.model, c.number, map[string]string{"a": "b"})
		})
		wantErr(t, fmt.Sprintf("SetVersionLabels(%s, %d)", c.model, c.number), err, domain.ErrNotFound)
	}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.SetVersionState(ctx, "mut", 1, domain.State("bogus"))
	})
	wantErr(t, "SetVersionState to an unknown state", err, domain.ErrInvalid)
}

func testVersionPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "pg")
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for range 7 {
			if _, err := tx.CreateVersion(ctx, domain.Version{Model: "pg", Format: domain.FormatExternal, CreatedBy: "x", CreatedAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	want := []int{1, 2, 3, 4, 5, 6, 7}
	for _, limit := range []int{1, 3, 6, 7, 8} {
		if got := numbers(listAllVersions(t, s, "pg", store.VersionFilter{}, limit)); !reflect.DeepEqual(got, want) {
			t.Errorf("limit %d: walked %v, want %v", limit, got, want)
		}
	}
	vs, next, err := s.ListVersions(ctx, "pg", store.VersionFilter{}, store.Page{Limit: 3})
	must(t, "ListVersions", err)
	if got := numbers(vs); !reflect.DeepEqual(got, []int{1, 2, 3}) || next == "" {
		t.Errorf("first page of 3: %v, next %q", got, next)
	}
	for _, p := range []store.Page{{Limit: -1}, {Limit: store.MaxLimit + 1}, {Cursor: "***"}, {Cursor: "aGVsbG8"}} {
		_, _, err := s.ListVersions(ctx, "pg", store.VersionFilter{}, p)
		wantErr(t, fmt.Sprintf("ListVersions(%+v)", p), err, domain.ErrInvalid)
	}
}

func testVersionFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "f")
	createModel(t, s, "g")
	for _, v := range []struct {
		labels map[string]string
		state  domain.State
	}{
		{map[string]string{"team": "a", "env": "dev"}, domain.StateRegistered},  // 1
		{map[string]string{"team": "a", "env": "prod"}, domain.StateStaging},    // 2
		{map[string]string{"team": "b", "env": "prod"}, domain.StateProduction}, // 3
		{map[string]string{"team": "a", "env": "prod"}, domain.StateProduction}, // 4
		{nil, domain.StateArchived}, // 5
		{map[string]string{"team": "a", "env": "x%_"}, domain.StateRegistered}, // 6
	} {
		createVersion(t, s, domain.Version{Model: "f", Labels: v.labels, State: v.state})
	}
	// Another model with the same labels and alias must never leak in.
	createVersion(t, s, domain.Version{Model: "g", Labels: map[string]string{"team": "a", "env": "prod"}, State: domain.StateProduction})
	setAlias(t, s, "f", "champion", 4)
	setAlias(t, s, "f", "challenger", 2)
	setAlias(t, s, "g", "champion", 1)

	cases := []struct {
		name string
		f    store.VersionFilter
		want []int
	}{
		{"none", store.VersionFilter{}, []int{1, 2, 3, 4, 5, 6}},
		{"one label", store.VersionFilter{Labels: map[string]string{"team": "a"}}, []int{1, 2, 4, 6}},
		{"two labels", store.VersionFilter{Labels: map[string]string{"team": "a", "env": "prod"}}, []int{2, 4}},
		{"other label", store.VersionFilter{Labels: map[string]string{"env": "prod"}}, []int{2, 3, 4}},
		{"label with wildcards matches literally", store.VersionFilter{Labels: map[string]string{"env": "x%_"}}, []int{6}},
		{"wildcard label value", store.VersionFilter{Labels: map[string]string{"env": "%"}}, []int{}},
		{"unknown label value", store.VersionFilter{Labels: map[string]string{"team": "c"}}, []int{}},
		{"unknown label key", store.VersionFilter{Labels: map[string]string{"owner": "a"}}, []int{}},
		{"empty label map", store.VersionFilter{Labels: map[string]string{}}, []int{1, 2, 3, 4, 5, 6}},
		{"state", store.VersionFilter{State: domain.StateProduction}, []int{3, 4}},
		{"state archived", store.VersionFilter{State: domain.StateArchived}, []int{5}},
		{"state and label", store.VersionFilter{State: domain.StateProduction, Labels: map[string]string{"team": "a"}}, []int{4}},
		{"alias", store.VersionFilter{Alias: "champion"}, []int{4}},
		{"alias and state", store.VersionFilter{Alias: "challenger", State: domain.StateStaging}, []int{2}},
		{"alias and other state", store.VersionFilter{Alias: "challenger", State: domain.StateProduction}, []int{}},
		{"alias and label", store.VersionFilter{Alias: "champion", Labels: map[string]string{"team": "b"}}, []int{}},
		{"all three", store.VersionFilter{Alias: "champion", State: domain.StateProduction, Labels: map[string]string{"team": "a", "env": "prod"}}, []int{4}},
		{"unknown alias", store.VersionFilter{Alias: "nobody"}, []int{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs, next, err := s.ListVersions(ctx, "f", c.f, store.Page{})
			must(t, "ListVersions", err)
			if got := numbers(vs); !reflect.DeepEqual(got, c.want) || next != "" {
				t.Errorf("ListVersions(%+v) = %v, next %q; want %v", c.f, got, next, c.want)
			}
			for _, v := range vs {
				if v.Model != "f" {
					t.Errorf("version of model %q in the listing of f", v.Model)
				}
			}
			// Paging under a filter walks the same versions.
			if got := numbers(listAllVersions(t, s, "f", c.f, 1)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("walking pages of 1 under %+v: %v, want %v", c.f, got, c.want)
			}
		})
	}
}
