package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Fixed tokens so the committed corpus can hold exact and near-miss
// spellings of a valid token.
const (
	fuzzID           = "0123456789abcdef"
	fuzzSecret       = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_"
	fuzzPlain        = "slw_" + fuzzID + "_" + fuzzSecret
	fuzzRevokedID    = "fedcba9876543210"
	fuzzRevokedPlain = "slw_" + fuzzRevokedID + "_" + fuzzSecret
)

func fixedToken(id, name string) domain.Token {
	sum := sha256.Sum256([]byte(fuzzSecret))
	return domain.Token{ID: id, Name: name, Role: domain.RoleAuthor, Hash: sum[:]}
}

// FuzzCheckToken checks that Check never panics, fails only with
// ErrUnauthenticated, and authenticates exactly the strings that were
// minted: the fixed token and a freshly minted one, nothing else.
func FuzzCheckToken(f *testing.F) {
	minted, err := Mint("fresh", domain.RoleViewer, "admin", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	revoked := fixedToken(fuzzRevokedID, "revoked")
	at := time.Now()
	revoked.RevokedAt = &at
	tokens := tokenMap{
		fuzzID:          fixedToken(fuzzID, "fixed"),
		fuzzRevokedID:   revoked,
		minted.Token.ID: minted.Token,
	}
	valid := map[string]string{fuzzPlain: fuzzID, minted.Plain: minted.Token.ID}
	for _, s := range []string{fuzzPlain, minted.Plain, fuzzRevokedPlain, "", "slw_", "slw_" + fuzzID + "_"} {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, presented string) {
		tok, err := Check(ctx, tokens, presented)
		wantID, ok := valid[presented]
		if ok {
			if err != nil || tok.ID != wantID {
				t.Fatalf("Check(%q) = %+v, %v; want token %s", presented, tok, err, wantID)
			}
			return
		}
		if err == nil {
			t.Fatalf("Check(%q) authenticated as %q, a string that was never minted", presented, tok.ID)
		}
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("Check(%q) = %v, want ErrUnauthenticated", presented, err)
		}
	})
}
