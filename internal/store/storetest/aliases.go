package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func testAliases(t *testing.T, s store.Store) {
	ctx := t.Context()
	createModel(t, s, "m")
	createModel(t, s, "other")
	for range 3 {
		createVersion(t, s, domain.Version{Model: "m"})
	}
	createVersion(t, s, domain.Version{Model: "other"})

	aliasesOf := func(number int) []string {
		t.Helper()
		v, err := s.GetVersion(ctx, "m", number)
		must(t, fmt.Sprintf("GetVersion(m, %d)", number), err)
		return v.Aliases
	}
	checkAlias := func(what string, got, want domain.Alias) {
		t.Helper()
		checkTime(t, what+": updated at", got.UpdatedAt, want.UpdatedAt)
		got.UpdatedAt, want.UpdatedAt = time.Time{}, time.Time{}
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
		}
	}

	champion := domain.Alias{Model: "m", Name: "champion", Version: 1, UpdatedBy: "bob", UpdatedAt: t0}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetAlias(ctx, champion) })
	got, err := s.GetAlias(ctx, "m", "champion")
	must(t, "GetAlias", err)
	checkAlias("GetAlias", got, champion)
	if a := aliasesOf(1); !reflect.DeepEqual(a, []string{"champion"}) {
		t.Errorf("aliases of version 1: %v, want [champion]", a)
	}
	if a := aliasesOf(2); a != nil {
		t.Errorf("aliases of version 2: %#v, want nil", a)
	}

	// Move it: who and when follow the move.
	moved := domain.Alias{Model: "m", Name: "champion", Version: 2, UpdatedBy: "carol", UpdatedAt: t0.Add(time.Hour + time.Nanosecond)}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetAlias(ctx, moved) })
	got, err = s.GetAlias(ctx, "m", "champion")
	must(t, "GetAlias after move", err)
	checkAlias("GetAlias after move", got, moved)
	if a := aliasesOf(1); a != nil {
		t.Errorf("aliases of version 1 after the move: %v, want none", a)
	}

	// Several aliases on one version come back sorted.
	for _, name := range []string{"staging", "production", "canary"} {
		setAlias(t, s, "m", name, 2)
	}
	setAlias(t, s, "m", "challenger", 3)
	setAlias(t, s, "other", "champion", 1)
	if a, want := aliasesOf(2), []string{"canary", "champion", "production", "staging"}; !reflect.DeepEqual(a, want) {
		t.Errorf("aliases of version 2: %v, want %v", a, want)
	}

	vs, _, err := s.ListVersions(ctx, "m", store.VersionFilter{}, store.Page{})
	must(t, "ListVersions", err)
	wantAliases := [][]string{nil, {"canary", "champion", "production", "staging"}, {"challenger"}}
	for i, v := range vs {
		if !reflect.DeepEqual(v.Aliases, wantAliases[i]) {
			t.Errorf("ListVersions: version %d has aliases %#v, want %#v", v.Number, v.Aliases, wantAliases[i])
		}
	}
	// A page that starts after the aliased versions still gets its aliases.
	vs, _, err = s.ListVersions(ctx, "m", store.VersionFilter{Alias: "challenger"}, store.Page{})
	must(t, "ListVersions by alias", err)
	if len(vs) != 1 || !reflect.DeepEqual(vs[0].Aliases, []string{"challenger"}) {
		t.Errorf("ListVersions by alias challenger: %+v", vs)
	}

	list, err := s.ListAliases(ctx, "m")
	must(t, "ListAliases", err)
	var names []string
	for _, a := range list {
		if a.Model != "m" {
			t.Errorf("ListAliases(m) returned an alias of %q", a.Model)
		}
		names = append(names, a.Name)
	}
	if want := []string{"canary", "challenger", "champion", "production", "staging"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListAliases: %v, want %v", names, want)
	}
	checkAlias("ListAliases champion", list[2], moved)

	// An alias must point at a version that exists.
	for _, a := range []domain.Alias{
		{Model: "m", Name: "champion", Version: 4, UpdatedBy: "x", UpdatedAt: t0},
		{Model: "m", Name: "fresh", Version: 0, UpdatedBy: "x", UpdatedAt: t0},
		{Model: "no-such-model", Name: "champion", Version: 1, UpdatedBy: "x", UpdatedAt: t0},
	} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.SetAlias(ctx, a) })
		wantErr(t, fmt.Sprintf("SetAlias(%s/%s -> %d)", a.Model, a.Name, a.Version), err, domain.ErrNotFound)
	}
	got, err = s.GetAlias(ctx, "m", "champion")
	must(t, "GetAlias after a refused move", err)
	checkAlias("alias after a refused move", got, moved)

	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteAlias(ctx, "m", "champion") })
	_, err = s.GetAlias(ctx, "m", "champion")
	wantErr(t, "GetAlias after delete", err, domain.ErrNotFound)
	if a, want := aliasesOf(2), []string{"canary", "production", "staging"}; !reflect.DeepEqual(a, want) {
		t.Errorf("aliases of version 2 after delete: %v, want %v", a, want)
	}
	if _, err := s.GetAlias(ctx, "other", "champion"); err != nil {
		t.Errorf("deleting m/champion touched other/champion: %v", err)
	}
	for _, c := range [][2]string{{"m", "champion"}, {"m", "never"}, {"no-such-model", "champion"}} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.DeleteAlias(ctx, c[0], c[1]) })
		wantErr(t, fmt.Sprintf("DeleteAlias(%s, %s)", c[0], c[1]), err, domain.ErrNotFound)
	}

	_, err = s.GetAlias(ctx, "no-such-model", "champion")
	wantErr(t, "GetAlias of an unknown model", err, domain.ErrNotFound)
	_, err = s.ListAliases(ctx, "no-such-model")
	wantErr(t, "ListAliases of an unknown model", err, domain.ErrNotFound)
	createModel(t, s, "plain")
	list, err = s.ListAliases(ctx, "plain")
	must(t, "ListAliases of a model without aliases", err)
	if len(list) != 0 {
		t.Errorf("ListAliases of a model without aliases: %v", list)
	}
}
