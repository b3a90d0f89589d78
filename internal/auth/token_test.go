package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// tokenMap is the smallest TokenReader: tokens by id.
type tokenMap map[string]domain.Token

func (m tokenMap) GetToken(_ context.Context, id string) (domain.Token, error) {
	t, ok := m[id]
	if !ok {
		return domain.Token{}, fmt.Errorf("token %q: %w", id, domain.ErrNotFound)
	}
	return t, nil
}

var _ TokenReader = tokenMap(nil)

var (
	now         = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	plainFormat = regexp.MustCompile(`^slw_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$`)
)

func mint(t *testing.T, name string, role domain.Role) Secret {
	t.Helper()
	s, err := Mint(name, role, "admin", now)
	if err != nil {
		t.Fatalf("Mint(%q, %q) = %v", name, role, err)
	}
	return s
}

func TestMintFormat(t *testing.T) {
	seen := map[string]bool{}
	for i := range 50 {
		s := mint(t, "ci-bot", domain.RoleAuthor)
		if !plainFormat.MatchString(s.Plain) {
			t.Fatalf("minted %q does not match %s", s.Plain, plainFormat)
		}
		id, secret := s.Plain[4:20], s.Plain[21:]
		if s.Token.ID != id {
			t.Fatalf("token id %q, plain carries %q", s.Token.ID, id)
		}
		sum := sha256.Sum256([]byte(secret))
		if !bytes.Equal(s.Token.Hash, sum[:]) {
			t.Fatal("stored hash is not sha256 of the secret part")
		}
		if bytes.Contains([]byte(s.Plain), s.Token.Hash) || strings.Contains(s.Plain, fmt.Sprintf("%x", s.Token.Hash)) {
			t.Fatal("the plain token contains its stored hash")
		}
		if string(s.Token.Hash) == s.Plain || string(s.Token.Hash) == secret {
			t.Fatal("the stored hash equals the plain token")
		}
		if s.Token.Name != "ci-bot" || s.Token.Role != domain.RoleAuthor || s.Token.CreatedBy != "admin" ||
			!s.Token.CreatedAt.Equal(now) || s.Token.RevokedAt != nil {
			t.Fatalf("token record %+v", s.Token)
		}
		if seen[s.Token.ID] || seen[secret] {
			t.Fatalf("mint %d repeated an id or secret", i)
		}
		seen[s.Token.ID], seen[secret] = true, true
	}
}

func TestMintRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		role domain.Role
	}{{"", domain.RoleAdmin}, {"CI", domain.RoleAdmin}, {"-x", domain.RoleViewer}, {"ok", ""}, {"ok", "root"}} {
		if _, err := Mint(c.name, c.role, "admin", now); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Mint(%q, %q) = %v, want ErrInvalid", c.name, c.role, err)
		}
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	good := mint(t, "deployer", domain.RoleDeployer)
	other := mint(t, "viewer", domain.RoleViewer)
	revoked := mint(t, "old", domain.RoleAdmin)
	when := now.Add(time.Hour)
	revoked.Token.RevokedAt = &when
	tokens := tokenMap{good.Token.ID: good.Token, other.Token.ID: other.Token, revoked.Token.ID: revoked.Token}

	got, err := Check(ctx, tokens, good.Plain)
	if err != nil || got.ID != good.Token.ID || got.Role != domain.RoleDeployer {
		t.Fatalf("Check(good) = %+v, %v", got, err)
	}

	id, secret := good.Plain[4:20], good.Plain[21:]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	unknownID := "ffffffffffffffff"
	if unknownID == id {
		unknownID = "0000000000000000"
	}
	rejected := map[string]string{
		"revoked":                   revoked.Plain,
		"wrong secret, first char":  "slw_" + id + "_" + flip(secret, 0),
		"wrong secret, last char":   "slw_" + id + "_" + flip(secret, 42),
		"other token's secret":      "slw_" + id + "_" + other.Plain[21:],
		"unknown id":                "slw_" + unknownID + "_" + secret,
		"other token's id":          "slw_" + other.Token.ID + "_" + secret,
		"empty":                     "",
		"prefix only":               "slw_",
		"no prefix":                 id + "_" + secret,
		"wrong prefix":              "slx_" + id + "_" + secret,
		"upper-case prefix":         "SLW_" + id + "_" + secret,
		"bearer scheme left in":     "Bearer " + good.Plain,
		"leading space":             " " + good.Plain,
		"trailing newline":          good.Plain + "\n",
		"secret one short":          good.Plain[:len(good.Plain)-1],
		"secret one long":           good.Plain + "A",
		"id one short":              "slw_" + id[1:] + "_" + secret,
		"id one long":               "slw_0" + id + "_" + secret,
		"id not hex":                "slw_" + "zzzzzzzzzzzzzzzz" + "_" + secret,
		"id upper-case":             "slw_" + strings.ToUpper(id) + "_" + secret,
		"missing separator":         "slw_" + id + secret,
		"the stored hash as secret": "slw_" + id + "_" + fmt.Sprintf("%x", good.Token.Hash)[:43],
		"secret with NUL":           "slw_" + id + "_" + secret[:42] + "\x00",
	}
	if strings.ToUpper(id) == id {
		delete(rejected, "id upper-case") // all digits: nothing to upper-case
	}
	for name, presented := range rejected {
		got, err := Check(ctx, tokens, presented)
		if !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: Check(%q) = %+v, %v; want ErrUnauthenticated", name, presented, got, err)
		}
		if got.ID != "" {
			t.Errorf("%s: Check returned token %q with its error", name, got.ID)
		}
	}
}

// caseFoldingTokens is a store whose id lookup ignores case, as a
// case-insensitive collation would.
type caseFoldingTokens tokenMap

func (m caseFoldingTokens) GetToken(ctx context.Context, id string) (domain.Token, error) {
	return tokenMap(m).GetToken(ctx, strings.ToLower(id))
}

func TestCheckRefusesRespelledIDWhateverTheStore(t *testing.T) {
	var s Secret
	for {
		s = mint(t, "ci", domain.RoleAuthor)
		if strings.ToUpper(s.Token.ID) != s.Token.ID {
			break
		}
	}
	upper := "slw_" + strings.ToUpper(s.Token.ID) + "_" + s.Plain[21:]
	_, err := Check(context.Background(), caseFoldingTokens{s.Token.ID: s.Token}, upper)
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Check(%q) against a case-insensitive store = %v, want ErrUnauthenticated", upper, err)
	}
}

// failingTokens is a store that is down.
type failingTokens struct{}

func (failingTokens) GetToken(context.Context, string) (domain.Token, error) {
	return domain.Token{}, fmt.Errorf("database: %w", domain.ErrUnavailable)
}

func TestCheckStoreDown(t *testing.T) {
	s := mint(t, "ci", domain.RoleAuthor)
	_, err := Check(context.Background(), failingTokens{}, s.Plain)
	if !errors.Is(err, domain.ErrUnavailable) || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Check with the store down = %v, want ErrUnavailable (a 503, not a 401)", err)
	}
	// A malformed token is refused without asking the store.
	if _, err := Check(context.Background(), failingTokens{}, "nope"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Check(malformed) = %v, want ErrUnauthenticated", err)
	}
}

func TestRequire(t *testing.T) {
	for _, have := range append(append([]domain.Role{}, domain.Roles...), "", "bogus") {
		for _, need := range domain.Roles {
			tok := domain.Token{Name: "t", Role: have}
			err := Require(tok, need)
			var want bool
			switch have {
			case domain.RoleAdmin:
				want = true
			case "", "bogus":
				want = false
			default:
				want = need == domain.RoleViewer || need == have
			}
			if want && err != nil {
				t.Errorf("Require(%q, %q) = %v, want nil", have, need, err)
			}
			if !want {
				if !errors.Is(err, ErrForbidden) {
					t.Errorf("Require(%q, %q) = %v, want ErrForbidden", have, need, err)
				} else if errors.Is(err, ErrUnauthenticated) {
					t.Errorf("Require(%q, %q) = %v also wraps ErrUnauthenticated", have, need, err)
				} else if !strings.Contains(err.Error(), string(need)) {
					t.Errorf("Require(%q, %q) = %q does not name the needed role", have, need, err)
				}
			}
		}
	}
}
