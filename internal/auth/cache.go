package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Verifier checks the tokens callers present to the inference gateway. It
// remembers each verdict — a token's ID, or that the string is no valid
// token — for TTL, so the gateway's hot path reads memory instead of the
// store on every request. The price is staleness: a token revoked through
// the API keeps working on the gateway for at most TTL (default 5 s); a
// token just minted works at once (a miss asks the store).
//
// Verdicts are keyed by the SHA-256 of the presented string, so no secret
// is kept as a map key. Errors of the store itself (unavailable, timed
// out) are never remembered: the next request asks again. The cache holds
// at most MaxEntries verdicts; past that, expired ones are dropped and,
// if none has expired, the new verdict is simply not kept (the store is
// asked each time rather than memory growing without bound).
type Verifier struct {
	reader TokenReader
	clock  clock.Clock
	ttl    time.Duration
	max    int

	mu    sync.RWMutex
	m     map[[sha256.Size]byte]verdict
	swept time.Time
}

// verdict is one remembered answer.
type verdict struct {
	id      string // "" when err is set
	err     error  // wraps ErrUnauthenticated
	expires time.Time
}

// VerifierConfig configures a Verifier; zero values take the defaults.
type VerifierConfig struct {
	Reader TokenReader
	Clock  clock.Clock   // default the wall clock
	TTL    time.Duration // default 5 s
	// MaxEntries bounds the verdicts kept (default 10,000).
	MaxEntries int
}

// DefaultVerifierTTL is how long a verdict is trusted by default: how late
// a revocation may take effect on the gateway.
const DefaultVerifierTTL = 5 * time.Second

// NewVerifier returns a verifier reading tokens from c.Reader.
func NewVerifier(c VerifierConfig) *Verifier {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.TTL <= 0 {
		c.TTL = DefaultVerifierTTL
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 10_000
	}
	return &Verifier{reader: c.Reader, clock: c.Clock, ttl: c.TTL, max: c.MaxEntries, m: map[[sha256.Size]byte]verdict{}}
}

// Authenticate returns the ID of the token presented (the public part of
// "slw_<id>_<secret>"), or an error wrapping ErrUnauthenticated when it is
// malformed, unknown, revoked or of no role that may call models. Any
// role may: inference needs viewer, the weakest. Other errors mean the
// store could not answer.
func (v *Verifier) Authenticate(ctx context.Context, presented string) (string, error) {
	key := sha256.Sum256([]byte(presented))
	now := v.clock.Now()
	v.mu.RLock()
	d, ok := v.m[key]
	v.mu.RUnlock()
	if ok && now.Before(d.expires) {
		return d.id, d.err
	}
	t, err := Check(ctx, v.reader, presented)
	if err == nil {
		if !t.Role.Allows(domain.RoleViewer) { // a damaged row: fail closed
			err = fmt.Errorf("token %q has no role that may call models: %w", t.Name, ErrUnauthenticated)
		}
	}
	if err != nil && !errors.Is(err, ErrUnauthenticated) {
		return "", err // the store failed: not a verdict
	}
	d = verdict{err: err, expires: now.Add(v.ttl)}
	if err == nil {
		d.id = t.ID
	}
	v.keep(key, d, now)
	return d.id, d.err
}

// keep remembers a verdict, within the bound.
func (v *Verifier) keep(key [sha256.Size]byte, d verdict, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.m[key]; !ok && len(v.m) >= v.max {
		if now.Sub(v.swept) < v.ttl/4 {
			return // swept moments ago: nothing more has expired worth a scan
		}
		v.swept = now
		for k, old := range v.m {
			if !now.Before(old.expires) {
				delete(v.m, k)
			}
		}
		if len(v.m) >= v.max {
			return
		}
	}
	v.m[key] = d
}

// Len is the number of verdicts held, for tests and diagnostics.
func (v *Verifier) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.m)
}
