// Package fleet keeps the runtimes of served versions running: it fetches a
// version's artifact from the blob store into a local folder, builds the
// runtime its format calls for, starts it, reports its health and stops it
// when no deployment serves the version any more. It knows nothing of
// weights or environments.
//
// A version that leaves every deployment is drained before it stops: the
// gateway may have routed requests to it with the previous routing table,
// so it keeps running for DrainGrace and then until the requests in flight
// on it have ended (at most DrainTimeout).
package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// DrainGrace is how long a version no deployment serves any more
	// keeps running before it is stopped, so that requests routed with
	// the previous routing table still reach it (default 1s). After it,
	// the fleet waits for the version's requests in flight to end, up to
	// DrainTimeout (default 30s, the gateway's upstream timeout).
	DrainGrace, DrainTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultDrainGrace   = time.Second
	DefaultDrainTimeout = 30 * time.Second
)

// Key names a running version.
type Key struct {
	Model   string
	Version int
}

func (k Key) String() string { return fmt.Sprintf("%s version %d", k.Model, k.Version) }

type instance struct {
	rt runtime.Runtime
	ep runtime.Endpoint
	// inflight counts the requests the endpoint is serving: handler
	// calls, and remote calls until their answer's body is closed.
	inflight atomic.Int64
	// holds counts Acquire calls not yet released; retireOnRelease says
	// no deployment wants the version, so the last release retires it.
	// Both are guarded by Fleet.mu.
	holds           int
	retireOnRelease bool
}

// counted returns ep with its handler or transport counting in-flight
// requests.
func (in *instance) counted(ep runtime.Endpoint) runtime.Endpoint {
	if h := ep.Handler; h != nil {
		ep.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			in.inflight.Add(1)
			defer in.inflight.Add(-1)
			h.ServeHTTP(w, r)
		})
	}
	if tr := ep.Transport; tr != nil {
		ep.Transport = &countingTransport{next: tr, n: &in.inflight}
		done := func() { in.inflight.Add(-1) }
		ep.Track = func() func() {
			in.inflight.Add(1)
			return done
		}
	}
	return ep
}

// countingTransport counts a request from RoundTrip until its answer's
// body is closed (the gateway's reverse proxy always closes it).
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

// Unwrap returns the transport that carries the requests: callers that
// use it directly count through Endpoint.Track.
func (t *countingTransport) Unwrap() http.RoundTripper { return t.next }

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		t.n.Add(-1)
		return nil, err
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, n: t.n}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	n    *atomic.Int64
	once sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(func() { b.n.Add(-1) })
	return b.ReadCloser.Close()
}

// Fleet is the set of running runtimes.
type Fleet struct {
	cfg Config
	// startMu serialises starts so one version is never started twice;
	// mu guards the map and is never held while a runtime starts.
	startMu sync.Mutex
	mu      sync.Mutex
	running map[Key]*instance
	// draining counts versions retired but not yet stopped; closing,
	// closed by Close, cuts their drain short.
	draining  sync.WaitGroup
	closing   chan struct{}
	closeOnce sync.Once
}

// Open prepares the artifact folder, removing half-written extractions
// left by a crash.
func Open(cfg Config) (*Fleet, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.DrainGrace <= 0 {
		cfg.DrainGrace = DefaultDrainGrace
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
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
	return &Fleet{cfg: cfg, running: map[Key]*instance{}, closing: make(chan struct{})}, nil
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
	in := &instance{rt: rt}
	in.ep = in.counted(rt.Endpoint())
	f.mu.Lock()
	f.running[k] = in
	f.mu.Unlock()
	f.cfg.Log.Info("runtime started", "model", v.Model, "version", v.Number, "format", string(v.Format))
	return in.ep, nil
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

// Acquire is Start for a caller that is not a deployment (an evaluation
// running a version over a dataset): the version keeps running while held,
// whatever Retain says, and release (call it once) lets it go. A version
// no deployment wants is retired at its last release.
func (f *Fleet) Acquire(ctx context.Context, v domain.Version) (ep runtime.Endpoint, release func(), err error) {
	k := Key{v.Model, v.Number}
	f.mu.Lock()
	_, wasRunning := f.running[k]
	f.mu.Unlock()
	if _, err := f.Start(ctx, v); err != nil {
		return runtime.Endpoint{}, nil, err
	}
	f.mu.Lock()
	in, ok := f.running[k]
	if !ok {
		// Retired between Start and here: a deployment change dropped it.
		f.mu.Unlock()
		return f.Acquire(ctx, v)
	}
	in.holds++
	if !wasRunning && in.holds == 1 {
		in.retireOnRelease = true
	}
	f.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			in.holds--
			if in.holds == 0 && in.retireOnRelease && f.running[k] == in {
				f.retireLocked(context.WithoutCancel(ctx), k, in)
			}
		})
	}
	return in.ep, release, nil
}

// Retain retires every running version keep does not want: it leaves the
// fleet at once (a later Start runs a fresh one) and is stopped once
// drained, in the background. A version held by Acquire stays until its
// last release.
func (f *Fleet) Retain(ctx context.Context, keep func(model string, version int) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	for k, in := range f.running {
		wanted := keep(k.Model, k.Version)
		in.retireOnRelease = !wanted
		if !wanted && in.holds == 0 {
			f.retireLocked(ctx, k, in)
		}
	}
}

// retireLocked takes a version out of the fleet and stops it once drained,
// in the background. Called with mu held.
func (f *Fleet) retireLocked(ctx context.Context, k Key, in *instance) {
	delete(f.running, k)
	f.draining.Add(1)
	go func() {
		defer f.draining.Done()
		f.retire(ctx, k, in)
	}()
}

// retire waits DrainGrace, then for the version's requests in flight to
// end (at most DrainTimeout), then stops it. Close cuts the waits short.
func (f *Fleet) retire(ctx context.Context, k Key, in *instance) {
	grace := time.NewTimer(f.cfg.DrainGrace)
	select {
	case <-grace.C:
	case <-f.closing:
	}
	grace.Stop()
	deadline := time.Now().Add(f.cfg.DrainTimeout)
	for in.inflight.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-f.closing:
			deadline = time.Time{}
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := in.inflight.Load(); n > 0 {
		f.cfg.Log.Warn("stopping runtime with requests still in flight", "model", k.Model, "version", k.Version, "in_flight", n)
	}
	if err := in.rt.Stop(ctx); err != nil {
		f.cfg.Log.Warn("stopping runtime", "model", k.Model, "version", k.Version, "err", err.Error())
	} else {
		f.cfg.Log.Info("runtime stopped", "model", k.Model, "version", k.Version)
	}
}

// Close stops every runtime, those draining included, and returns once
// they are stopped. The servers have finished their requests by then.
func (f *Fleet) Close(ctx context.Context) {
	f.closeOnce.Do(func() { close(f.closing) })
	f.mu.Lock()
	for k, in := range f.running {
		f.retireLocked(context.WithoutCancel(ctx), k, in)
	}
	f.mu.Unlock()
	f.draining.Wait()
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
