// Package auth owns API tokens: how they are minted (256 random bits), how
// they are stored (only a SHA-256 hash), how a presented token is checked
// (constant-time) and which role an endpoint needs. It imports domain and
// store only.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// ErrUnauthenticated: no token, a malformed one, an unknown one or a revoked
// one. The API answers 401 and never says which, so tokens can't be probed.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrForbidden: the token is valid but its role is too weak.
var ErrForbidden = errors.New("forbidden")

const prefix = "slw_"

// Secret is a newly minted token: the string the user keeps and the record
// the store keeps.
type Secret struct {
	Plain string
	Token domain.Token
}

// Mint creates a token for name and role: "slw_<id>_<secret>", where id is
// 64 random bits naming the row and secret is 256 random bits of which only
// the SHA-256 is stored.
func Mint(name string, role domain.Role, createdBy string, now time.Time) (Secret, error) {
	if err := domain.ValidateName("token", name); err != nil {
		return Secret{}, err
	}
	if _, err := domain.ParseRole(string(role)); err != nil {
		return Secret{}, err
	}
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Secret{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return Secret{}, err
	}
	idHex := hex.EncodeToString(id[:])
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	return Secret{
		Plain: prefix + idHex + "_" + sec,
		Token: domain.Token{ID: idHex, Name: name, Role: role, Hash: sum[:], CreatedBy: createdBy, CreatedAt: now},
	}, nil
}

// TokenReader is what checking a token needs from the store.
type TokenReader interface {
	GetToken(ctx context.Context, id string) (domain.Token, error)
}

// Check returns the token a presented string belongs to, or
// ErrUnauthenticated. The hash comparison is constant-time; the lookup is by
// the public id part, so timing reveals nothing about the secret.
func Check(ctx context.Context, r TokenReader, presented string) (domain.Token, error) {
	id, sec, ok := split(presented)
	if !ok {
		return domain.Token{}, fmt.Errorf("token is malformed: %w", ErrUnauthenticated)
	}
	t, err := r.GetToken(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Token{}, fmt.Errorf("token is unknown: %w", ErrUnauthenticated)
	}
	if err != nil {
		return domain.Token{}, err
	}
	sum := sha256.Sum256([]byte(sec))
	if subtle.ConstantTimeCompare(sum[:], t.Hash) != 1 {
		return domain.Token{}, fmt.Errorf("token is unknown: %w", ErrUnauthenticated)
	}
	if t.RevokedAt != nil {
		return domain.Token{}, fmt.Errorf("token %q was revoked: %w", t.Name, ErrUnauthenticated)
	}
	return t, nil
}

func split(s string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(s, prefix)
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || len(id) != 16 || len(secret) != 43 {
		return "", "", false
	}
	// Ids are minted lower-case; refusing other spellings keeps "the string
	// that was minted" the only one that can match, whatever the store's
	// collation.
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", "", false
		}
	}
	return id, secret, true
}

// Require returns ErrForbidden when role may not call an endpoint that
// needs need.
func Require(t domain.Token, need domain.Role) error {
	if t.Role.Allows(need) {
		return nil
	}
	return fmt.Errorf("token %q has role %s; this call needs %s: %w", t.Name, t.Role, need, ErrForbidden)
}
