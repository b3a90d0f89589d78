// Package fleet keeps the runtimes of served versions running: it fetches a
// version's artifact from the blob store into a local folder, builds the
// runtime its format calls for, starts it, reports its health and stops it
// when no deployment serves the version any more. It knows nothing of
// weights or environments.
package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// Factory builds the runtime of a version whose artifact (if any) is in
// artifactDir. The production factory is a switch on the format (see
// New in factory.go); tests may pass their own.
type Factory func(v domain.Version, artifactDir string) (runtime.Runtime, error)

// Manifests is what the fleet needs from the registry.
type Manifests interface {
	Manifest(ctx context.Context, model string, ref registry.Ref) (domain.Version, artifact.Manifest, error)
}

// Config wires a Fleet.
type Config struct {
	Manifests Manifests
	Blobs     artifact.Store
	// Dir holds one folder per materialized artifact.
	Dir     string
	Factory Factory
	Log     *slog.Logger
}

// Key names a running version.
type Key struct {
	Model   string
	Version int
}

func (k Key) String() string { return fmt.Sprintf("%s version %d", k.Model, k.Version) }

type instance struct {
	rt runtime.Runtime
	ep runtime.Endpoint
}

// Fleet is the set of running runtimes.
type Fleet struct {
	cfg Config
	// startMu serialises starts so one version is never started twice;
	// mu guards the map and is never held while a runtime starts.
	startMu sync.Mutex
	mu      sync.Mutex
	running map[Key]*instance
}

// Open prepares the artifact folder, removing half-written extractions
// left by a crash.
func Open(cfg Config) (*Fleet, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("runtime folder: %w", err)
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("runtime folder: %w", err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".partial-") {
			if err := os.RemoveAll(filepath.Join(cfg.Dir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return &Fleet{cfg: cfg, running: map[Key]*instance{}}, nil
}

// Start makes sure version v runs and returns its endpoint. A version
// already running is returned as is.
func (f *Fleet) Start(ctx context.Context, v domain.Version) (runtime.Endpoint, error) {
	k := Key{v.Model, v.Number}
	if ep, ok := f.endpoint(k); ok {
		return ep, nil
	}
	f.startMu.Lock()
	defer f.startMu.Unlock()
	if ep, ok := f.endpoint(k); ok {
		return ep, nil
	}
	dir := ""
	if v.ArtifactDigest != "" {
		var err error
		if dir, err = f.materialize(ctx, v); err != nil {
			return runtime.Endpoint{}, fmt.Errorf("%s: fetching its artifact: %w", k, err)
		}
	}
	rt, err := f.cfg.Factory(v, dir)
	if err != nil {
		return runtime.Endpoint{}, fmt.Errorf("%s: %w", k, err)
	}
	if err := rt.Start(ctx); err != nil {
		_ = rt.Stop(context.WithoutCancel(ctx))
		return runtime.Endpoint{}, fmt.Errorf("%s cannot start: %w", k, err)
	}
	ep := rt.Endpoint()
	f.mu.Lock()
	f.running[k] = &instance{rt: rt, ep: ep}
	f.mu.Unlock()
	f.cfg.Log.Info("runtime started", "model", v.Model, "version", v.Number, "format", string(v.Format))
	return ep, nil
}

func (f *Fleet) endpoint(k Key) (runtime.Endpoint, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.running[k]
	if !ok {
		return runtime.Endpoint{}, false
	}
	return in.ep, true
}

// Health reports whether a version runs and is healthy.
func (f *Fleet) Health(ctx context.Context, model string, version int) error {
	f.mu.Lock()
	in, ok := f.running[Key{model, version}]
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s is not running: %w", Key{model, version}, domain.ErrUnavailable)
	}
	return in.rt.Health(ctx)
}

// Retain stops every running version keep does not want.
func (f *Fleet) Retain(ctx context.Context, keep func(model string, version int) bool) {
	f.mu.Lock()
	var stop []Key
	var rts []runtime.Runtime
	for k, in := range f.running {
		if !keep(k.Model, k.Version) {
			stop = append(stop, k)
			rts = append(rts, in.rt)
			delete(f.running, k)
		}
	}
	f.mu.Unlock()
	for i, rt := range rts {
		if err := rt.Stop(ctx); err != nil {
			f.cfg.Log.Warn("stopping runtime", "model", stop[i].Model, "version", stop[i].Version, "err", err.Error())
		} else {
			f.cfg.Log.Info("runtime stopped", "model", stop[i].Model, "version", stop[i].Version)
		}
	}
}

// Close stops every runtime.
func (f *Fleet) Close(ctx context.Context) {
	f.Retain(ctx, func(string, int) bool { return false })
}

// materialize writes a version's artifact into Dir/<model>/<version>,
// verifying every digest, and returns the folder. Extraction goes to a
// partial folder renamed into place, so a folder that exists is complete.
func (f *Fleet) materialize(ctx context.Context, v domain.Version) (string, error) {
	final := filepath.Join(f.cfg.Dir, v.Model, strconv.Itoa(v.Number))
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	_, m, err := f.cfg.Manifests.Manifest(ctx, v.Model, registry.Ref(strconv.Itoa(v.Number)))
	if err != nil {
		return "", err
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	partial := filepath.Join(f.cfg.Dir, fmt.Sprintf("%s-%d.partial-%s", v.Model, v.Number, hex.EncodeToString(suffix[:])))
	defer os.RemoveAll(partial)
	err = artifact.Extract(ctx, partial, m, func(ctx context.Context, file artifact.File) (io.ReadCloser, error) {
		rc, _, err := f.cfg.Blobs.Open(ctx, file.Digest())
		return rc, err
	})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return "", err
	}
	if err := os.Rename(partial, final); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return final, nil
}
