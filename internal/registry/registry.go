// Package registry owns models, versions, aliases and their lifecycle: the
// rules for registering an immutable version whose blobs are already
// durable, moving an alias atomically with optimistic concurrency, and
// recording every mutation in the audit log within the same transaction.
// It reads and writes through store and artifact interfaces and knows
// nothing of serving or rollouts.
package registry

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// Config wires a Registry.
type Config struct {
	Store store.Store
	Blobs artifact.Store
	Clock clock.Clock
	// Check, when set, refuses at push a version that could not run.
	Check VersionCheck
}

// VersionCheck refuses, at push, a version that could not run: runtime
// options its format does not take, an artifact its runtime cannot load.
// read opens one of the version's files, whose blobs are already stored.
// The runtimes live below the registry, so the check is passed in.
type VersionCheck func(ctx context.Context, v domain.Version, m *artifact.Manifest, read func(ctx context.Context, f artifact.File) (io.ReadCloser, error)) error

// Registry is the registry service.
type Registry struct {
	store store.Store
	blobs artifact.Store
	clock clock.Clock
	check VersionCheck
}

// New returns a registry service.
func New(c Config) *Registry {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	return &Registry{store: c.Store, blobs: c.Blobs, clock: c.Clock, check: c.Check}
}

// Subjects name what an audit entry is about; listing by a subject also
// lists everything under it.
func modelSubject(m string) string          { return "model/" + m }
func versionSubject(m string, n int) string { return fmt.Sprintf("model/%s/version/%d", m, n) }
func aliasSubject(m, a string) string       { return "model/" + m + "/alias/" + a }

// Ref names a version: a number ("3") or an alias ("@champion").
type Ref string

// resolve turns a ref into a version number using r.
func resolve(ctx context.Context, r store.Reader, model string, ref Ref) (int, error) {
	s := string(ref)
	if name, ok := strings.CutPrefix(s, "@"); ok {
		if err := domain.ValidateName("alias", name); err != nil {
			return 0, err
		}
		a, err := r.GetAlias(ctx, model, name)
		if err != nil {
			return 0, err
		}
		return a.Version, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("version %q must be a number from 1 or an alias like @champion: %w", s, domain.ErrInvalid)
	}
	return n, nil
}

// lookup resolves a ref and reads the version it names.
func lookup(ctx context.Context, r store.Reader, model string, ref Ref) (domain.Version, error) {
	n, err := resolve(ctx, r, model, ref)
	if err != nil {
		return domain.Version{}, err
	}
	return r.GetVersion(ctx, model, n)
}

// CreateModel registers a new model family.
func (r *Registry) CreateModel(ctx context.Context, actor string, m domain.Model) (domain.Model, error) {
	if err := m.Validate(); err != nil {
		return domain.Model{}, err
	}
	m.CreatedBy = actor
	m.CreatedAt = r.clock.Now()
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateModel(ctx, m); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{
			Time: m.CreatedAt, Actor: actor, Action: "model.create",
			Subject: modelSubject(m.Name), After: audit.Document(m),
		})
		return err
	})
	if err != nil {
		return domain.Model{}, err
	}
	return m, nil
}

// GetModel returns one model.
func (r *Registry) GetModel(ctx context.Context, name string) (domain.Model, error) {
	if err := domain.ValidateName("model", name); err != nil {
		return domain.Model{}, err
	}
	return r.store.GetModel(ctx, name)
}

// ListModels returns one page of models in name order.
func (r *Registry) ListModels(ctx context.Context, p store.Page) ([]domain.Model, string, error) {
	return r.store.ListModels(ctx, p)
}
