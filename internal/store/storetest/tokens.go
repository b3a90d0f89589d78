package storetest

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func checkToken(t *testing.T, what string, got, want domain.Token) {
	t.Helper()
	checkTime(t, what+": created at", got.CreatedAt, want.CreatedAt)
	switch {
	case (got.RevokedAt == nil) != (want.RevokedAt == nil):
		t.Errorf("%s: revoked at %v, want %v", what, got.RevokedAt, want.RevokedAt)
	case got.RevokedAt != nil:
		checkTime(t, what+": revoked at", *got.RevokedAt, *want.RevokedAt)
	}
	if got.ID != want.ID || got.Name != want.Name || got.Role != want.Role || got.CreatedBy != want.CreatedBy || !bytes.Equal(got.Hash, want.Hash) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	hash := []byte{0x00, 0xff, 0x10, 0x80, 'a', 0x00}
	admin := domain.Token{ID: "tok_1", Name: "ci-admin", Role: domain.RoleAdmin, Hash: hash, CreatedBy: "root", CreatedAt: t0}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateToken(ctx, admin) })

	got, err := s.GetToken(ctx, "tok_1")
	must(t, "GetToken", err)
	checkToken(t, "GetToken", got, admin)
	got, err = s.GetTokenByName(ctx, "ci-admin")
	must(t, "GetTokenByName", err)
	checkToken(t, "GetTokenByName", got, admin)

	_, err = s.GetToken(ctx, "tok_missing")
	wantErr(t, "GetToken unknown", err, domain.ErrNotFound)
	_, err = s.GetTokenByName(ctx, "missing")
	wantErr(t, "GetTokenByName unknown", err, domain.ErrNotFound)

	for _, dup := range []domain.Token{
		{ID: "tok_2", Name: "ci-admin", Role: domain.RoleViewer, Hash: []byte{1}, CreatedBy: "root", CreatedAt: t0},
		{ID: "tok_1", Name: "another", Role: domain.RoleViewer, Hash: []byte{1}, CreatedBy: "root", CreatedAt: t0},
	} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.CreateToken(ctx, dup) })
		wantErr(t, fmt.Sprintf("CreateToken duplicate (%s, %s)", dup.ID, dup.Name), err, domain.ErrConflict)
	}
	_, err = s.GetTokenByName(ctx, "another")
	wantErr(t, "a refused token", err, domain.ErrNotFound)

	// Listing in name order, over pages.
	var want []string
	for i, name := range []string{"e-bot", "b-bot", "d-bot", "a-bot"} {
		tok := domain.Token{ID: fmt.Sprintf("tok_%d", 10+i), Name: name, Role: domain.Roles[i%len(domain.Roles)], Hash: []byte(name), CreatedBy: "root", CreatedAt: t0}
		update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateToken(ctx, tok) })
	}
	want = []string{"a-bot", "b-bot", "ci-admin", "d-bot", "e-bot"}
	var names []string
	cursor := ""
	for pages := 1; ; pages++ {
		toks, next, err := s.ListTokens(ctx, store.Page{Limit: 2, Cursor: cursor})
		must(t, "ListTokens", err)
		for _, tok := range toks {
			names = append(names, tok.Name)
		}
		if next == "" {
			if pages != 3 {
				t.Errorf("ListTokens: %d pages of 2 for 5 tokens, want 3", pages)
			}
			break
		}
		if pages > 5 {
			t.Fatal("ListTokens: the cursor does not advance")
		}
		cursor = next
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("ListTokens: %v, want %v", names, want)
	}
	_, _, err = s.ListTokens(ctx, store.Page{Cursor: "garbage!"})
	wantErr(t, "ListTokens bad cursor", err, domain.ErrInvalid)

	// Revoking.
	at := t0.Add(36*time.Hour + 7)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, "tok_1", at) })
	revoked := admin
	revoked.RevokedAt = &at
	got, err = s.GetToken(ctx, "tok_1")
	must(t, "GetToken after revoke", err)
	checkToken(t, "GetToken after revoke", got, revoked)
	toks, _, err := s.ListTokens(ctx, store.Page{})
	must(t, "ListTokens after revoke", err)
	for _, tok := range toks {
		if (tok.RevokedAt != nil) != (tok.ID == "tok_1") {
			t.Errorf("ListTokens after revoking tok_1: %s revoked at %v", tok.ID, tok.RevokedAt)
		}
	}

	// Revoking twice is a precondition failure; the first time stands.
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, "tok_1", at.Add(time.Hour)) })
	wantErr(t, "RevokeToken twice", err, domain.ErrPrecondition)
	got, err = s.GetToken(ctx, "tok_1")
	must(t, "GetToken after a second revoke", err)
	checkToken(t, "GetToken after a second revoke", got, revoked)

	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, "tok_missing", at) })
	wantErr(t, "RevokeToken unknown", err, domain.ErrNotFound)
}
