package auth

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
)

// countingReader is a TokenReader that counts lookups and can fail.
type countingReader struct {
	tokens tokenMap
	calls  atomic.Int64
	fail   error
}

func (c *countingReader) GetToken(ctx context.Context, id string) (domain.Token, error) {
	c.calls.Add(1)
	if c.fail != nil {
		return domain.Token{}, c.fail
	}
	return c.tokens.GetToken(ctx, id)
}

func TestVerifierRemembersVerdictsForTTL(t *testing.T) {
	ctx := context.Background()
	good := mint(t, "app", domain.RoleViewer)
	r := &countingReader{tokens: tokenMap{good.Token.ID: good.Token}}
	clk := clock.NewFake(now)
	v := NewVerifier(VerifierConfig{Reader: r, Clock: clk, TTL: 5 * time.Second})

	for range 3 {
		id, err := v.Authenticate(ctx, good.Plain)
		if err != nil || id != good.Token.ID {
			t.Fatalf("Authenticate(good) = %q, %v", id, err)
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("store asked %d times for three checks within the TTL, want 1", n)
	}

	// Revoked in the store: still accepted until the verdict expires,
	// refused right after.
	revoked := good.Token
	at := now
	revoked.RevokedAt = &at
	r.tokens[good.Token.ID] = revoked
	clk.Advance(4 * time.Second)
	if _, err := v.Authenticate(ctx, good.Plain); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := v.Authenticate(ctx, good.Plain); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("after the TTL, revoked token: err = %v, want ErrUnauthenticated", err)
	}
	if n := r.calls.Load(); n != 2 {
		t.Fatalf("store asked %d times, want 2", n)
	}
}

func TestVerifierRefusals(t *testing.T) {
	ctx := context.Background()
	good := mint(t, "app", domain.RoleAdmin)
	damaged := mint(t, "odd", domain.RoleViewer)
	damaged.Token.Role = "superuser"
	r := &countingReader{tokens: tokenMap{good.Token.ID: good.Token, damaged.Token.ID: damaged.Token}}
	v := NewVerifier(VerifierConfig{Reader: r, Clock: clock.NewFake(now)})
	for name, presented := range map[string]string{
		"empty":        "",
		"malformed":    "slw_nothex",
		"not slipway":  "sk-proj-abc",
		"wrong secret": good.Plain[:len(good.Plain)-1] + "x",
		"unknown":      mint(t, "other", domain.RoleViewer).Plain,
		"damaged role": damaged.Plain,
	} {
		if id, err := v.Authenticate(ctx, presented); !errors.Is(err, ErrUnauthenticated) || id != "" {
			t.Errorf("%s: Authenticate = %q, %v; want ErrUnauthenticated", name, id, err)
		}
	}
	// A refusal is remembered too: a client stuck on a bad token does not
	// reach the store on every request.
	before := r.calls.Load()
	if _, err := v.Authenticate(ctx, damaged.Plain); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal(err)
	}
	if r.calls.Load() != before {
		t.Fatal("a remembered refusal asked the store again")
	}
}

func TestVerifierDoesNotRememberStoreFailures(t *testing.T) {
	ctx := context.Background()
	good := mint(t, "app", domain.RoleViewer)
	down := errors.New("database is locked")
	r := &countingReader{tokens: tokenMap{good.Token.ID: good.Token}, fail: down}
	v := NewVerifier(VerifierConfig{Reader: r, Clock: clock.NewFake(now)})
	if _, err := v.Authenticate(ctx, good.Plain); !errors.Is(err, down) || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("store down: err = %v, want the store's error", err)
	}
	r.fail = nil
	if id, err := v.Authenticate(ctx, good.Plain); err != nil || id != good.Token.ID {
		t.Fatalf("store back: %q, %v", id, err)
	}
}

func TestVerifierIsBounded(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(now)
	r := &countingReader{tokens: tokenMap{}}
	v := NewVerifier(VerifierConfig{Reader: r, Clock: clk, TTL: time.Second, MaxEntries: 4})
	for range 10 {
		_, _ = v.Authenticate(ctx, mint(t, "x", domain.RoleViewer).Plain)
	}
	if n := v.Len(); n != 4 {
		t.Fatalf("holds %d verdicts, want the cap of 4", n)
	}
	// Once they expired, new verdicts replace them.
	clk.Advance(2 * time.Second)
	good := mint(t, "app", domain.RoleViewer)
	r.tokens[good.Token.ID] = good.Token
	if _, err := v.Authenticate(ctx, good.Plain); err != nil {
		t.Fatal(err)
	}
	if n := v.Len(); n != 1 {
		t.Fatalf("after expiry holds %d verdicts, want 1", n)
	}
	calls := r.calls.Load()
	if _, err := v.Authenticate(ctx, good.Plain); err != nil || r.calls.Load() != calls {
		t.Fatalf("the new verdict was not kept: err %v, store calls %d → %d", err, calls, r.calls.Load())
	}
}
