package controller_test

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/controller"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime/fleet"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

const examples = "../../examples/breast-cancer/"

// env is a real store, registry, fleet (XGBoost in process), deployment
// service and live-metrics recorder, with model bc v1 (serving in
// production), v2 and v3 pushed.
type env struct {
	t     *testing.T
	dir   string
	st    *sqlstore.Store
	reg   *registry.Registry
	deps  *deployment.Service
	live  *metrics.Recorder
	log   *slog.Logger
	ctl   *controller.Controller
	stop  func()
	admin controller.Actor
	// disagree, when above 0, makes every disagree-th mirrored answer
	// differ from the primary's.
	disagree int
	// failStatus is the status of the candidate's failed answers (500
	// when 0).
	failStatus int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(dir, "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobs, err := artifact.OpenLocal(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	reg := registry.New(registry.Config{Store: st, Blobs: blobs})
	fl, err := fleet.Open(fleet.Config{Manifests: reg, Blobs: blobs, Dir: filepath.Join(dir, "runtimes"), Log: log,
		Factory: fleet.NewFactory(fleet.FactoryConfig{Log: log})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close(context.Background()) })
	deps := deployment.New(deployment.Config{Store: st, Versions: reg, Runtimes: fl, Log: log, FaultEnvironments: []string{"production"}})
	e := &env{t: t, dir: dir, st: st, reg: reg, deps: deps, log: log,
		live: metrics.New(prometheus.NewRegistry(), nil), admin: controller.Actor{Name: "alice", Role: domain.RoleAdmin}}
	if _, err := reg.CreateModel(t.Context(), "alice", domain.Model{Name: "bc"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"v1.json", "v2.json", "v3.json"} {
		e.push(f)
	}
	if _, err := deps.Deploy(t.Context(), "alice", "bc", "1", "production", nil); err != nil {
		t.Fatal(err)
	}
	e.start()
	return e
}

// start runs a new controller over the env's store, as a restarted
// process would (with a new metrics recorder: the old counters are gone).
func (e *env) start() {
	e.t.Helper()
	e.ctl = controller.New(controller.Config{Store: e.st, Deployments: e.deps, Versions: e.reg, Metrics: e.live, Log: e.log,
		Interval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.ctl.Run(ctx); err != nil {
			e.t.Errorf("controller: %v", err)
		}
	}()
	e.stop = func() {
		cancel()
		<-done
	}
	e.t.Cleanup(e.stop)
}

func (e *env) push(file string) domain.Version {
	e.t.Helper()
	b, err := os.ReadFile(examples + file)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.pushBytes(b)
}

// pushBytes registers content as the next xgboost-json version of bc,
// unchecked: the fleet finds out whether it loads.
func (e *env) pushBytes(b []byte) domain.Version {
	e.t.Helper()
	digest := artifact.DigestOf(b)
	blobs, err := artifact.OpenLocal(filepath.Join(e.dir, "artifacts"))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := blobs.Put(e.t.Context(), digest, int64(len(b)), bytes.NewReader(b)); err != nil {
		e.t.Fatal(err)
	}
	m := &artifact.Manifest{Files: []artifact.File{{Path: "model.json", Size: int64(len(b)), SHA256: strings.TrimPrefix(digest, "sha256:")}}}
	v, err := e.reg.PushVersion(e.t.Context(), "alice", registry.Push{Model: "bc", Format: domain.FormatXGBoostJSON, Manifest: m})
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// rollout starts a rollout from YAML.
func (e *env) rollout(spec string, who controller.Actor) domain.Rollout {
	e.t.Helper()
	r, err := e.ctl.Start(e.t.Context(), who, "rollout.yaml", []byte(spec), controller.StartOptions{})
	if err != nil {
		e.t.Fatalf("start: %v", err)
	}
	return r
}

// traffic plays the gateway: every few milliseconds it sends 50
// requests split by the weights the route table holds now, recording
// each version's outcome in the live counters; the candidate's requests
// fail at rate failEvery (every Nth; 0 never). It stops when the
// rollout has ended and its end is in effect, or after limit, and
// returns the requests served and the failed ones by version.
func (e *env) traffic(id int64, candidate, failEvery int, limit time.Duration) (served map[int]int, failed map[int]int, r domain.Rollout) {
	e.t.Helper()
	served, failed = map[int]int{}, map[int]int{}
	deadline := time.Now().Add(limit)
	n := 0
	for time.Now().Before(deadline) {
		var err error
		if r, err = e.ctl.Get(e.t.Context(), id); err != nil {
			e.t.Fatal(err)
		}
		if r.Phase.Terminal() && r.InEffect {
			return served, failed, r
		}
		rt := e.deps.Routes().Lookup("bc", "production")
		for i := range 50 {
			n++
			v, ok := e.request(rt, i, n, candidate, failEvery)
			served[v]++
			if !ok {
				failed[v]++
			}
		}
		time.Sleep(2 * time.Millisecond) // pacing of the synthetic traffic
	}
	e.t.Fatalf("rollout %d did not end within %s: %s (%s)", id, limit, r.Phase, r.Reason)
	return
}

// weights is the deployment's split as stored.
func (e *env) weights() map[int]int {
	e.t.Helper()
	d, err := e.st.GetDeployment(e.t.Context(), "bc", "production")
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int]int{}
	for _, v := range d.Versions {
		out[v.Version] = v.Weight
	}
	return out
}

func (e *env) alias(name string) int {
	e.t.Helper()
	a, err := e.st.GetAlias(e.t.Context(), "bc", name)
	if err != nil {
		return 0
	}
	return a.Version
}

// audit checks the hash chain end to end and returns the actions
// recorded about rollout id, in order.
func (e *env) audit(id int64) []string {
	e.t.Helper()
	if rep, err := audit.VerifyLog(e.t.Context(), e.st); err != nil || !rep.OK {
		e.t.Fatalf("audit log does not verify: %+v, %v", rep, err)
	}
	var out []string
	if err := e.st.ScanAudit(e.t.Context(), func(en audit.Entry) error {
		if strings.HasSuffix(en.Subject, "/rollout/"+strconv.FormatInt(id, 10)) {
			out = append(out, en.Action)
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func metricsKey(v int) metrics.Key {
	return metrics.Key{Model: "bc", Environment: "production", Version: v}
}

func storeAll() store.RolloutFilter { return store.RolloutFilter{} }

func pageAll() store.Page { return store.Page{Limit: store.MaxLimit} }

func newRecorder() *metrics.Recorder { return metrics.New(prometheus.NewRegistry(), nil) }

// request plays the gateway for the i-th of 50 requests of a round: it
// picks the version by the route's weights, records its outcome in the
// live counters — the candidate failing every failEvery-th request (the
// n-th overall) — and mirrors it as the route's shadow says. It returns
// the version and whether it answered well.
func (e *env) request(rt *deployment.Route, i, n, candidate, failEvery int) (int, bool) {
	v := rt.Pick(i * 2)
	if v == nil {
		e.t.Fatal("the route picks no version")
	}
	status := 200
	if v.Version == candidate && failEvery > 0 && n%failEvery == 0 {
		status = cmp.Or(e.failStatus, 500)
	}
	e.live.Observe(metricsKey(v.Version), status, 2*time.Millisecond)
	if sh := rt.Shadow; sh != nil && float64(i*2) < sh.Percent {
		// The gateway's mirror: the shadow answers as the candidate
		// would, failing as often.
		call := metrics.ShadowCall{Status: 200, Latency: 2 * time.Millisecond, Compare: metrics.ShadowComparison{Result: metrics.CompareAgree}}
		if sh.Target.Version == candidate && failEvery > 0 && n%failEvery == 0 {
			call.Status = 500
		}
		if e.disagree > 0 && n%e.disagree == 0 {
			call.Compare.Result = metrics.CompareDisagree
		}
		e.live.ObserveShadow(metricsKey(sh.Target.Version), call)
	}
	return v.Version, status == 200
}
