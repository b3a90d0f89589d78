package deployment_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

// runtimes is a test double of the fleet: versions listed in broken fail
// to start; started versions answer with a handler naming them, speaking
// the Open Inference Protocol unless listed in openai.
type runtimes struct {
	mu      sync.Mutex
	broken  map[int]bool
	openai  map[int]bool
	running map[int]bool
	starts  int
}

func (r *runtimes) Start(_ context.Context, v domain.Version) (runtime.Endpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken[v.Number] {
		return runtime.Endpoint{}, fmt.Errorf("version %d: model file is not valid XGBoost JSON", v.Number)
	}
	if !r.running[v.Number] {
		r.starts++
	}
	r.running[v.Number] = true
	n, proto := v.Number, runtime.ProtocolOIP
	if r.openai[n] {
		proto = runtime.ProtocolOpenAI
	}
	return runtime.Endpoint{Protocol: proto, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "version %d", n)
	})}, nil
}

func (r *runtimes) Health(_ context.Context, _ string, version int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running[version] {
		return errors.New("not running")
	}
	return nil
}

func (r *runtimes) Retain(_ context.Context, keep func(string, int) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for v := range r.running {
		if !keep("m", v) {
			delete(r.running, v)
		}
	}
}

func setup(t *testing.T) (*deployment.Service, *runtimes, store.Store) {
	t.Helper()
	cfg, rts := setupConfig(t)
	return deployment.New(cfg), rts, cfg.Store
}

// setupConfig is setup's store, registry and runtimes, for tests that
// build services of their own on them.
func setupConfig(t *testing.T) (deployment.Config, *runtimes) {
	t.Helper()
	st, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := registry.New(registry.Config{Store: st})
	if _, err := reg.CreateModel(t.Context(), "t", domain.Model{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := reg.PushVersion(t.Context(), "t", registry.Push{Model: "m", Format: domain.FormatExternal}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.SetState(t.Context(), "t", "m", "4", domain.StateArchived); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetAlias(t.Context(), "t", "m", "champion", "2", nil); err != nil {
		t.Fatal(err)
	}
	rts := &runtimes{broken: map[int]bool{3: true}, running: map[int]bool{}}
	return deployment.Config{Store: st, Versions: reg, Runtimes: rts}, rts
}

func weights(r *deployment.Route) string {
	if r == nil {
		return "<none>"
	}
	var parts []string
	for _, v := range r.Versions {
		parts = append(parts, fmt.Sprintf("%d=%d", v.Version, v.Weight))
	}
	return strings.Join(parts, " ")
}

func TestDeployAndSplit(t *testing.T) {
	svc, rts, st := setup(t)
	ctx := t.Context()
	d, err := svc.Deploy(ctx, "cd", "m", "1", "production", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Revision != 1 || weights(svc.Routes().Lookup("m", "production")) != "1=100" {
		t.Fatalf("after deploy: revision %d, routes %s", d.Revision, weights(svc.Routes().Lookup("m", "production")))
	}
	// Aliases resolve; the split publishes both versions.
	if _, err := svc.Deploy(ctx, "cd", "m", "@champion", "staging", nil); err != nil {
		t.Fatal(err)
	}
	rev := int64(1)
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 90, 2: 10}, 0, &rev); err != nil {
		t.Fatal(err)
	}
	r := svc.Routes().Lookup("m", "production")
	if weights(r) != "1=90 2=10" || r.Revision != 2 || r.Pick(89).Version != 1 || r.Pick(90).Version != 2 {
		t.Fatalf("split routes = %s rev %d", weights(r), r.Revision)
	}
	// A price set on a version reaches the route and survives a new split.
	if _, err := svc.SetPrice(ctx, "cd", "m", "production", 2, domain.Price{PerMTokPrompt: 0.5, PerMTokCompletion: 1.5}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 80, 2: 20}, 0, nil); err != nil {
		t.Fatal(err)
	}
	if rv := svc.Routes().Lookup("m", "production").Version(2); rv.PricePerMTokPrompt != 0.5 || rv.PricePerMTokCompletion != 1.5 {
		t.Fatalf("price on the route = %+v", rv)
	}
	if _, err := svc.SetPrice(ctx, "cd", "m", "production", 3, domain.Price{}, nil); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("price of an unserved version: %v", err)
	}
	if _, err := svc.SetPrice(ctx, "cd", "m", "production", 2, domain.Price{PerMTokPrompt: -1}, nil); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("negative price: %v", err)
	}
	// Dropping version 1 everywhere stops its runtime.
	if _, err := svc.Deploy(ctx, "cd", "m", "2", "production", nil); err != nil {
		t.Fatal(err)
	}
	if rts.running[1] || !rts.running[2] {
		t.Fatalf("running after moving off version 1: %v", rts.running)
	}
	// Every change is audited.
	es, _, err := st.ListAudit(ctx, store.AuditFilter{Subject: "model/m/deployment"}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 6 { // five in production, one in staging
		t.Fatalf("deployment changes audited: %d, want 6", len(es))
	}
	es, _, _ = st.ListAudit(ctx, store.AuditFilter{Subject: "model/m/deployment/production"}, store.Page{})
	if len(es) != 5 || es[1].Action != "deployment.set" || !strings.Contains(string(es[1].After), `"weight":90`) {
		t.Fatalf("audit = %+v", es)
	}
	stt, err := svc.Get(ctx, "m", "production")
	if err != nil || len(stt.Health) != 1 || !stt.Health[0].Healthy {
		t.Fatalf("status = %+v, %v", stt, err)
	}
}

func TestRefusedChangesLeaveTrafficUntouched(t *testing.T) {
	svc, _, st := setup(t)
	ctx := t.Context()
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 50, 2: 50}, 0, nil); err != nil {
		t.Fatal(err)
	}
	headSeq, _, _ := st.AuditHead(ctx)
	zero, stale := int64(0), int64(7)
	cases := []struct {
		name string
		do   func() error
		want error
		msg  string
	}{
		{"runtime cannot start", func() error { _, err := svc.Deploy(ctx, "cd", "m", "3", "production", nil); return err }, domain.ErrPrecondition, "not valid XGBoost"},
		{"archived version", func() error { _, err := svc.Deploy(ctx, "cd", "m", "4", "production", nil); return err }, domain.ErrPrecondition, "archived"},
		{"unknown version", func() error { _, err := svc.Deploy(ctx, "cd", "m", "9", "production", nil); return err }, domain.ErrNotFound, "9"},
		{"unknown alias", func() error { _, err := svc.Deploy(ctx, "cd", "m", "@ghost", "production", nil); return err }, domain.ErrNotFound, "ghost"},
		{"unknown model", func() error { _, err := svc.Deploy(ctx, "cd", "ghost", "1", "production", nil); return err }, domain.ErrNotFound, "ghost"},
		{"unknown environment", func() error { _, err := svc.Deploy(ctx, "cd", "m", "1", "prod", nil); return err }, domain.ErrInvalid, "prod"},
		{"weights not 100", func() error {
			_, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 50, 2: 40}, 0, nil)
			return err
		}, domain.ErrInvalid, "sum to 90"},
		{"negative weight", func() error {
			_, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 110, 2: -10}, 0, nil)
			return err
		}, domain.ErrInvalid, "weight"},
		{"one broken version in a split", func() error {
			_, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 50, 3: 50}, 0, nil)
			return err
		}, domain.ErrPrecondition, "version 3"},
		{"stable not in the split", func() error {
			_, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 50, 2: 50}, 3, nil)
			return err
		}, domain.ErrInvalid, "stable version 3"},
		{"stale revision", func() error { _, err := svc.Deploy(ctx, "cd", "m", "2", "production", &stale); return err }, domain.ErrConflict, "revision 1, expected 7"},
		{"expected absent", func() error { _, err := svc.Deploy(ctx, "cd", "m", "2", "production", &zero); return err }, domain.ErrConflict, "expected 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.want, c.msg)
			}
			if got := weights(svc.Routes().Lookup("m", "production")); got != "1=50 2=50" {
				t.Fatalf("routes changed to %s", got)
			}
			d, err := st.GetDeployment(ctx, "m", "production")
			if err != nil || d.Revision != 1 {
				t.Fatalf("stored deployment changed: %+v, %v", d, err)
			}
			if seq, _, _ := st.AuditHead(ctx); seq != headSeq {
				t.Fatalf("audit grew from %d to %d", headSeq, seq)
			}
		})
	}
}

func TestStableVersion(t *testing.T) {
	svc, _, st := setup(t)
	ctx := t.Context()
	stable := func() (stored, routed int) {
		t.Helper()
		d, err := st.GetDeployment(ctx, "m", "production")
		if err != nil {
			t.Fatal(err)
		}
		return d.Stable, svc.Routes().Lookup("m", "production").Stable
	}
	steps := []struct {
		name   string
		do     func() (domain.Deployment, error)
		stable int
	}{
		{"deploy makes the deployed version stable", func() (domain.Deployment, error) {
			return svc.Deploy(ctx, "cd", "m", "1", "production", nil)
		}, 1},
		{"a canary split keeps it", func() (domain.Deployment, error) {
			return svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 10, 2: 90}, 0, nil)
		}, 1},
		{"naming another moves it", func() (domain.Deployment, error) {
			return svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 10, 2: 90}, 2, nil)
		}, 2},
		{"a price change keeps it", func() (domain.Deployment, error) {
			return svc.SetPrice(ctx, "cd", "m", "production", 1, domain.Price{PerMTokPrompt: 1}, nil)
		}, 2},
		{"a stable version at weight 0 is still served", func() (domain.Deployment, error) {
			return svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 100, 2: 0}, 0, nil)
		}, 2},
		{"dropping it picks the highest weight", func() (domain.Deployment, error) {
			return svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 100}, 0, nil)
		}, 1},
		{"a tie keeps the current stable", func() (domain.Deployment, error) {
			if _, err := svc.Deploy(ctx, "cd", "m", "2", "production", nil); err != nil {
				return domain.Deployment{}, err
			}
			return svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 50, 2: 50}, 0, nil)
		}, 2},
	}
	for _, s := range steps {
		d, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		stored, routed := stable()
		if d.Stable != s.stable || stored != s.stable || routed != s.stable {
			t.Fatalf("%s: stable answered %d, stored %d, routed %d; want %d", s.name, d.Stable, stored, routed, s.stable)
		}
	}
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 50, 2: 50}, 3, nil); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("stable version outside the split: %v", err)
	}
	// Ties with no current stable: the lowest number.
	if d, err := svc.SetTraffic(ctx, "cd", "m", "staging", map[int]int{1: 50, 2: 50}, 0, nil); err != nil || d.Stable != 1 {
		t.Fatalf("new split with a tie: stable %d, %v", d.Stable, err)
	}
	// A row stored before stable existed (0) routes to the highest weight.
	if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		d, err := tx.GetDeployment(ctx, "m", "staging")
		if err != nil {
			return err
		}
		d.Stable, d.Versions[1].Weight, d.Versions[0].Weight, d.Revision = 0, 70, 30, d.Revision+1
		return tx.PutDeployment(ctx, d)
	}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if r := svc.Routes().Lookup("m", "staging"); r.Stable != 2 || r.StableVersion().Version != 2 {
		t.Fatalf("legacy row routes stable %d", r.Stable)
	}
}

func TestRestorePublishesWhatIsStored(t *testing.T) {
	svc, _, st := setup(t)
	ctx := t.Context()
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 70, 2: 30}, 0, nil); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.Config{Store: st})
	rts := &runtimes{running: map[int]bool{}}
	fresh := deployment.New(deployment.Config{Store: st, Versions: reg, Runtimes: rts})
	if fresh.Routes().Lookup("m", "production") != nil {
		t.Fatal("a new service publishes nothing before Restore")
	}
	if err := fresh.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if got := weights(fresh.Routes().Lookup("m", "production")); got != "1=70 2=30" || rts.starts != 2 {
		t.Fatalf("restored %s with %d starts", got, rts.starts)
	}
}

// A version that cannot start when the table is built keeps its range of
// the split: its share goes to the stable version, and the other
// versions' ranges (their sticky callers) stay where they were.
func TestVersionThatCannotStartKeepsItsRange(t *testing.T) {
	svc, rts, _ := setup(t)
	ctx := t.Context()
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 40, 2: 60}, 1, nil); err != nil {
		t.Fatal(err)
	}
	pick := func(u int) int {
		if v := svc.Routes().Lookup("m", "production").Pick(u); v != nil {
			return v.Version
		}
		return 0
	}
	restoreWith := func(broken int) {
		rts.mu.Lock()
		rts.broken = map[int]bool{broken: true}
		rts.running = map[int]bool{}
		rts.mu.Unlock()
		if err := svc.Restore(ctx); err != nil {
			t.Fatal(err)
		}
	}
	restoreWith(2) // the canary is down: its share goes to the stable version
	for _, u := range []int{0, 39, 40, 99} {
		if got := pick(u); got != 1 {
			t.Fatalf("canary down: Pick(%d) = %d, want the stable version 1", u, got)
		}
	}
	restoreWith(1) // the stable version is down: its range answers nobody, 2 keeps its own
	for u, want := range map[int]int{0: 0, 39: 0, 40: 2, 99: 2} {
		if got := pick(u); got != want {
			t.Fatalf("stable down: Pick(%d) = %d, want %d", u, got, want)
		}
	}
}
