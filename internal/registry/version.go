package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// Push is a request to register a version. Its blobs must already be
// uploaded; the manifest is nil for a version without files.
type Push struct {
	Model         string
	Format        domain.Format
	Manifest      *artifact.Manifest
	RuntimeConfig map[string]string
	Lineage       domain.Lineage
	Metrics       map[string]float64
	Labels        map[string]string
}

// PushVersion registers a version: it checks that every blob the manifest
// names is stored with the right size, stores the manifest itself as a blob
// (its digest is the version's digest), and only then creates the version
// row and its audit entry in one transaction. A failure at any point leaves
// no version.
func (r *Registry) PushVersion(ctx context.Context, actor string, p Push) (domain.Version, error) {
	v := domain.Version{
		Model: p.Model, Format: p.Format, RuntimeConfig: p.RuntimeConfig,
		Lineage: p.Lineage, Metrics: p.Metrics, Labels: p.Labels,
		State: domain.StateRegistered, CreatedBy: actor, CreatedAt: r.clock.Now(),
	}
	// Hex digests are stored in one case, so equal ones compare equal.
	v.Lineage.CodeCommit = strings.ToLower(v.Lineage.CodeCommit)
	v.Lineage.DatasetSHA256 = strings.ToLower(v.Lineage.DatasetSHA256)
	if p.Manifest != nil {
		// The digest is the manifest's own: known before anything is stored.
		digest, err := p.Manifest.Digest()
		if err != nil {
			return domain.Version{}, err
		}
		v.ArtifactDigest = digest
		v.ArtifactSize = p.Manifest.Size()
		v.ArtifactFiles = len(p.Manifest.Files)
	}
	if err := v.ValidateNew(); err != nil {
		return domain.Version{}, err
	}
	// Everything that can refuse the push without writing runs before the
	// manifest blob is stored, so a refused push leaves nothing behind.
	if _, err := r.store.GetModel(ctx, v.Model); err != nil {
		return domain.Version{}, err
	}
	if parent := v.Lineage.ParentVersion; parent != 0 {
		if _, err := r.store.GetVersion(ctx, v.Model, parent); errors.Is(err, domain.ErrNotFound) {
			return domain.Version{}, fmt.Errorf("parent version %d of model %q: %w", parent, v.Model, domain.ErrNotFound)
		} else if err != nil {
			return domain.Version{}, err
		}
	}
	if p.Manifest != nil {
		if err := r.checkBlobs(ctx, *p.Manifest); err != nil {
			return domain.Version{}, err
		}
	}
	if r.check != nil {
		read := func(ctx context.Context, f artifact.File) (io.ReadCloser, error) {
			rc, _, err := r.blobs.Open(ctx, f.Digest())
			return rc, err
		}
		if err := r.check(ctx, v, p.Manifest, read); err != nil {
			return domain.Version{}, fmt.Errorf("version cannot run: %w", err)
		}
	}
	if p.Manifest != nil {
		if err := r.storeManifest(ctx, *p.Manifest); err != nil {
			return domain.Version{}, err
		}
	}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		// Checked again inside the write lock: models and versions are never
		// deleted today, but this keeps the rule local.
		if _, err := tx.GetModel(ctx, v.Model); err != nil {
			return err
		}
		var err error
		if v, err = tx.CreateVersion(ctx, v); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: v.CreatedAt, Actor: actor, Action: "version.create",
			Subject: versionSubject(v.Model, v.Number), After: audit.Document(v),
		})
		return err
	})
	if err != nil {
		return domain.Version{}, err
	}
	return v, nil
}

// checkBlobs makes sure every file of the manifest was uploaded whole.
func (r *Registry) checkBlobs(ctx context.Context, m artifact.Manifest) error {
	for _, f := range m.Files {
		size, err := r.blobs.Stat(ctx, f.Digest())
		if errors.Is(err, domain.ErrNotFound) {
			return fmt.Errorf("artifact file %q (%s) was not uploaded; upload its blob before registering the version: %w", f.Path, f.Digest(), domain.ErrPrecondition)
		}
		if err != nil {
			return err
		}
		if size != f.Size {
			return fmt.Errorf("artifact file %q: stored blob has %d bytes, manifest says %d: %w", f.Path, size, f.Size, domain.ErrInvalid)
		}
	}
	return nil
}

// storeManifest keeps the manifest's canonical bytes as a blob named by
// its digest, the version's digest.
func (r *Registry) storeManifest(ctx context.Context, m artifact.Manifest) error {
	canon, err := m.Canonical()
	if err != nil {
		return err
	}
	if _, err := r.blobs.Put(ctx, artifact.DigestOf(canon), int64(len(canon)), bytes.NewReader(canon)); err != nil {
		return fmt.Errorf("storing manifest: %w", err)
	}
	return nil
}

// GetVersion returns the version a ref names.
func (r *Registry) GetVersion(ctx context.Context, model string, ref Ref) (domain.Version, error) {
	if err := domain.ValidateName("model", model); err != nil {
		return domain.Version{}, err
	}
	n, err := resolve(ctx, r.store, model, ref)
	if err != nil {
		return domain.Version{}, err
	}
	return r.store.GetVersion(ctx, model, n)
}

// ListVersions returns one page of a model's versions, oldest first.
func (r *Registry) ListVersions(ctx context.Context, model string, f store.VersionFilter, p store.Page) ([]domain.Version, string, error) {
	if _, err := r.GetModel(ctx, model); err != nil {
		return nil, "", err
	}
	if f.State != "" {
		if _, err := domain.ParseState(string(f.State)); err != nil {
			return nil, "", err
		}
	}
	if f.Alias != "" {
		if err := domain.ValidateName("alias", f.Alias); err != nil {
			return nil, "", err
		}
	}
	return r.store.ListVersions(ctx, model, f, p)
}

// Manifest returns the manifest of a version's artifact.
func (r *Registry) Manifest(ctx context.Context, model string, ref Ref) (domain.Version, artifact.Manifest, error) {
	v, err := r.GetVersion(ctx, model, ref)
	if err != nil {
		return domain.Version{}, artifact.Manifest{}, err
	}
	if v.ArtifactDigest == "" {
		return v, artifact.Manifest{}, fmt.Errorf("version %d of model %q has no artifact (format %s): %w", v.Number, model, v.Format, domain.ErrNotFound)
	}
	rc, _, err := r.blobs.Open(ctx, v.ArtifactDigest)
	if err != nil {
		return v, artifact.Manifest{}, fmt.Errorf("manifest of version %d of model %q: %w", v.Number, model, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return v, artifact.Manifest{}, err
	}
	if artifact.DigestOf(b) != v.ArtifactDigest {
		return v, artifact.Manifest{}, fmt.Errorf("manifest of version %d of model %q is corrupt on disk: %w", v.Number, model, domain.ErrPrecondition)
	}
	m, err := artifact.ParseManifest(b)
	return v, m, err
}

// SetState moves a version along its lifecycle.
func (r *Registry) SetState(ctx context.Context, actor, model string, ref Ref, to domain.State) (domain.Version, error) {
	if _, err := domain.ParseState(string(to)); err != nil {
		return domain.Version{}, err
	}
	var out domain.Version
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		v, err := lookup(ctx, tx, model, ref)
		if err != nil {
			return err
		}
		out, err = MoveState(ctx, tx, actor, r.clock.Now(), v, to)
		return err
	})
	return out, err
}

// MoveState moves version v to lifecycle state to inside the caller's
// transaction, with its audit entry; promotions set states with it.
func MoveState(ctx context.Context, tx store.Tx, actor string, now time.Time, v domain.Version, to domain.State) (domain.Version, error) {
	model, n := v.Model, v.Number
	if v.State == to {
		return v, nil
	}
	if err := domain.CheckTransition(v.State, to); err != nil {
		return v, fmt.Errorf("version %d of model %q: %w", n, model, err)
	}
	if to == domain.StateArchived && len(v.Aliases) > 0 {
		return v, fmt.Errorf("version %d of model %q is the target of alias %q; move or remove the alias before archiving: %w", n, model, v.Aliases[0], domain.ErrPrecondition)
	}
	if err := tx.SetVersionState(ctx, model, n, to); err != nil {
		return v, err
	}
	_, err := tx.AppendAudit(ctx, audit.Entry{
		Time: now, Actor: actor, Action: "version.state",
		Subject: versionSubject(model, n),
		Before:  audit.Document(map[string]any{"state": v.State}),
		After:   audit.Document(map[string]any{"state": to}),
	})
	v.State = to
	return v, err
}

// SetLabels adds or changes the labels in set and removes those in remove.
func (r *Registry) SetLabels(ctx context.Context, actor, model string, ref Ref, set map[string]string, remove []string) (domain.Version, error) {
	if err := domain.ValidateKeyValues("label", set); err != nil {
		return domain.Version{}, err
	}
	var out domain.Version
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		v, err := lookup(ctx, tx, model, ref)
		if err != nil {
			return err
		}
		n := v.Number
		labels := maps.Clone(v.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, set)
		for _, k := range remove {
			delete(labels, k)
		}
		if err := domain.ValidateKeyValues("label", labels); err != nil {
			return err
		}
		if maps.Equal(labels, v.Labels) || (len(labels) == 0 && len(v.Labels) == 0) {
			out = v
			return nil
		}
		if err := tx.SetVersionLabels(ctx, model, n, labels); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: r.clock.Now(), Actor: actor, Action: "version.labels",
			Subject: versionSubject(model, n),
			Before:  audit.Document(map[string]any{"labels": v.Labels}),
			After:   audit.Document(map[string]any{"labels": labels}),
		})
		v.Labels = labels
		out = v
		return err
	})
	return out, err
}

// VerifiedFile is the outcome of re-hashing one stored file.
type VerifiedFile struct {
	Path  string `json:"path"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// VerifyReport is the outcome of re-hashing a version's stored artifact.
type VerifyReport struct {
	Model   string         `json:"model"`
	Version int            `json:"version"`
	Digest  string         `json:"artifact_digest"`
	OK      bool           `json:"ok"`
	Files   []VerifiedFile `json:"files"`
}

// Verify re-hashes the manifest and every stored file of a version.
func (r *Registry) Verify(ctx context.Context, model string, ref Ref) (VerifyReport, error) {
	v, m, err := r.Manifest(ctx, model, ref)
	if err != nil {
		return VerifyReport{}, err
	}
	rep := VerifyReport{Model: model, Version: v.Number, Digest: v.ArtifactDigest, OK: true}
	for _, f := range m.Files {
		vf := VerifiedFile{Path: f.Path, OK: true}
		if err := r.verifyBlob(ctx, f); err != nil {
			vf.OK, vf.Error, rep.OK = false, err.Error(), false
		}
		rep.Files = append(rep.Files, vf)
	}
	return rep, nil
}

func (r *Registry) verifyBlob(ctx context.Context, f artifact.File) error {
	rc, size, err := r.blobs.Open(ctx, f.Digest())
	if err != nil {
		return err
	}
	defer rc.Close()
	if size != f.Size {
		return fmt.Errorf("stored blob has %d bytes, manifest says %d", size, f.Size)
	}
	return artifact.VerifyReader(ctx, f.Digest(), rc)
}
