package fleet

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// countingRuntime is a runtime that only records its life: the fleet's
// bookkeeping is under test here, not a model.
type countingRuntime struct {
	starts, stops *atomic.Int64
	stopped       chan struct{}
}

func (r *countingRuntime) Start(context.Context) error { r.starts.Add(1); return nil }
func (r *countingRuntime) Endpoint() runtime.Endpoint {
	return runtime.Endpoint{Protocol: runtime.ProtocolOIP, Handler: http.NotFoundHandler()}
}
func (r *countingRuntime) Health(context.Context) error { return nil }
func (r *countingRuntime) Stop(context.Context) error {
	r.stops.Add(1)
	close(r.stopped)
	return nil
}

func newTestFleet(t *testing.T) (*Fleet, func() *countingRuntime) {
	t.Helper()
	var starts, stops atomic.Int64
	made := make(chan *countingRuntime, 10)
	f, err := Open(Config{Dir: t.TempDir(), DrainGrace: time.Millisecond, DrainTimeout: time.Second,
		Factory: func(domain.Version, string) (runtime.Runtime, error) {
			rt := &countingRuntime{starts: &starts, stops: &stops, stopped: make(chan struct{})}
			made <- rt
			return rt, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f, func() *countingRuntime {
		select {
		case rt := <-made:
			return rt
		default:
			t.Fatal("no runtime was built")
			return nil
		}
	}
}

func stoppedNow(rt *countingRuntime) bool {
	select {
	case <-rt.stopped:
		return true
	default:
		return false
	}
}

// TestAcquireHoldsAgainstRetain: a version held for an evaluation survives
// a deployment change that does not serve it, and is retired at release.
func TestAcquireHoldsAgainstRetain(t *testing.T) {
	f, built := newTestFleet(t)
	ctx := t.Context()
	v := domain.Version{Model: "m", Number: 1, Format: domain.FormatExternal}
	_, release, err := f.Acquire(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	rt := built()
	f.Retain(ctx, func(string, int) bool { return false })
	if err := f.Health(ctx, "m", 1); err != nil || stoppedNow(rt) {
		t.Fatalf("a held version was retired: health %v, stopped %v", err, stoppedNow(rt))
	}
	release()
	release() // a second call does nothing
	<-rt.stopped
	if err := f.Health(ctx, "m", 1); err == nil {
		t.Fatal("a released, unwanted version still runs")
	}
}

// TestAcquireOfAServedVersion: releasing a version a deployment serves
// leaves it running, and two holds need two releases.
func TestAcquireOfAServedVersion(t *testing.T) {
	f, built := newTestFleet(t)
	ctx := t.Context()
	v := domain.Version{Model: "m", Number: 2, Format: domain.FormatExternal}
	if _, err := f.Start(ctx, v); err != nil {
		t.Fatal(err)
	}
	rt := built()
	f.Retain(ctx, func(string, int) bool { return true })
	_, r1, err := f.Acquire(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	_, r2, err := f.Acquire(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	r1()
	r2()
	if stoppedNow(rt) || f.Health(ctx, "m", 2) != nil {
		t.Fatal("releasing a served version stopped it")
	}
	// The deployment drops it while an evaluation holds it: it stops at
	// the last release, not before.
	_, r3, err := f.Acquire(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	f.Retain(ctx, func(string, int) bool { return false })
	if stoppedNow(rt) {
		t.Fatal("a held version stopped")
	}
	r3()
	<-rt.stopped
	if rt.starts.Load() != 1 {
		t.Fatalf("started %d times, want 1", rt.starts.Load())
	}
}
