package deployment_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func TestRoutingPolicy(t *testing.T) {
	svc, _, st := setup(t)
	ctx := t.Context()
	if _, err := svc.SetRouting(ctx, "cd", "m", "production", domain.Routing{}, nil); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("routing of nothing deployed: %v", err)
	}
	if _, err := svc.Deploy(ctx, "cd", "m", "1", "production", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 100, 2: 0}, 1, nil); err != nil {
		t.Fatal(err)
	}
	rule, _ := domain.ParseMatchRule("header:X-Tester=yes -> 2")
	pol := domain.Routing{
		Sticky: &domain.StickyKey{Header: "X-User-ID"},
		Rules:  []domain.MatchRule{rule},
		Shadow: &domain.Shadow{Version: 2, Percent: 10},
		Limits: &domain.RouteLimits{RequestsPerSecond: 5, MaxConcurrency: 2},
	}
	d, err := svc.SetRouting(ctx, "cd", "m", "production", pol, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Revision != 3 || !reflect.DeepEqual(d.Routing, pol) {
		t.Fatalf("after SetRouting: %+v", d)
	}
	r := svc.Routes().Lookup("m", "production")
	// Header names are compiled to canonical form; the stored policy keeps
	// the names as written.
	if r.Sticky == nil || r.Sticky.Header != "X-User-Id" || len(r.Rules) != 1 || r.Rules[0].Target.Version != 2 || r.Rules[0].Header != "X-Tester" ||
		r.Shadow == nil || r.Shadow.Target.Version != 2 || r.Shadow.Percent != 10 || r.Limits.MaxConcurrency != 2 {
		t.Fatalf("compiled route = %+v", r)
	}
	if r.Rules[0].Target != r.Version(2) {
		t.Fatal("a rule's target is not the route's version")
	}
	got, _ := st.GetDeployment(ctx, "m", "production")
	if !reflect.DeepEqual(got.Routing, pol) {
		t.Fatalf("stored routing = %+v", got.Routing)
	}

	// A split that would leave the policy pointing at nothing is refused,
	// and nothing changes.
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 100}, 0, nil); !errors.Is(err, domain.ErrInvalid) ||
		!strings.Contains(err.Error(), "change the routing first") {
		t.Fatalf("split dropping the rule's version: %v", err)
	}
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 50, 2: 50}, 0, nil); !errors.Is(err, domain.ErrInvalid) ||
		!strings.Contains(err.Error(), "takes no live traffic") {
		t.Fatalf("split giving the shadow traffic: %v", err)
	}
	// A policy naming a version not served, or a stale revision, is refused.
	bad := pol
	bad.Shadow = &domain.Shadow{Version: 3, Percent: 1}
	if _, err := svc.SetRouting(ctx, "cd", "m", "production", bad, nil); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("shadow of an unserved version: %v", err)
	}
	stale := int64(1)
	if _, err := svc.SetRouting(ctx, "cd", "m", "production", domain.Routing{}, &stale); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("stale revision: %v", err)
	}
	got, _ = st.GetDeployment(ctx, "m", "production")
	if got.Revision != 3 || !reflect.DeepEqual(got.Routing, pol) {
		t.Fatalf("refused changes changed the deployment: %+v", got)
	}

	// A split that keeps the policy valid keeps the policy.
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 100, 2: 0}, 0, nil); err != nil {
		t.Fatal(err)
	}
	if r := svc.Routes().Lookup("m", "production"); len(r.Rules) != 1 || r.Shadow == nil {
		t.Fatalf("policy lost on a new split: %+v", r)
	}
	// Deploying one version drops rules and shadow (they name versions)
	// and keeps the sticky key and limits.
	d, err = svc.Deploy(ctx, "cd", "m", "1", "production", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Routing.Rules) != 0 || d.Routing.Shadow != nil || d.Routing.Sticky == nil || d.Routing.Limits == nil {
		t.Fatalf("routing after deploy = %+v", d.Routing)
	}
	es, _, _ := st.ListAudit(ctx, store.AuditFilter{Subject: "model/m/deployment/production"}, store.Page{})
	if !strings.Contains(string(es[2].After), `"header:X-Tester=yes -\u003e 2"`) && !strings.Contains(string(es[2].After), `"header:X-Tester=yes -> 2"`) {
		t.Fatalf("routing change audited as %s", es[2].After)
	}
}

// Sticky buckets are stable, spread evenly, and move minimally when the
// weights move.
func TestBucketStickiness(t *testing.T) {
	r := &deployment.Route{Model: "m", Versions: []deployment.RouteVersion{{Version: 1, Weight: 90}, {Version: 2, Weight: 10}}}
	counts := make([]int, 100)
	for i := range 100000 {
		counts[r.Bucket(fmt.Appendf(nil, "user-%d", i))]++
	}
	for b, c := range counts {
		if c < 800 || c > 1200 { // expected 1,000 each
			t.Fatalf("bucket %d holds %d of 100,000 keys", b, c)
		}
	}
	if r.Bucket([]byte("alice")) != r.Bucket([]byte("alice")) {
		t.Fatal("the same key fell in two buckets")
	}
	other := &deployment.Route{Model: "n"}
	same := 0
	for i := range 1000 {
		k := fmt.Appendf(nil, "user-%d", i)
		if r.Bucket(k) == other.Bucket(k) {
			same++
		}
	}
	if same > 30 {
		t.Fatalf("%d of 1,000 keys share a bucket across models; buckets should be independent", same)
	}
	moved := 0
	next := &deployment.Route{Model: "m", Versions: []deployment.RouteVersion{{Version: 1, Weight: 80}, {Version: 2, Weight: 20}}}
	for i := range 10000 {
		b := r.Bucket(fmt.Appendf(nil, "user-%d", i))
		before, after := r.Pick(b).Version, next.Pick(b).Version
		if before != after {
			if before != 1 || after != 2 {
				t.Fatalf("a key moved from %d to %d when only 10 points moved to version 2", before, after)
			}
			moved++
		}
	}
	if moved < 800 || moved > 1200 { // 10 % should move
		t.Fatalf("%d of 10,000 keys moved, want about 1,000", moved)
	}
}

// A shadow that speaks another protocol than the versions taking traffic
// would never be sent a mirror: the policy is refused; and versions of two
// protocols may not both take traffic.
func TestTrafficAndShadowSpeakOneProtocol(t *testing.T) {
	svc, rts, _ := setup(t)
	ctx := t.Context()
	rts.mu.Lock()
	rts.openai = map[int]bool{2: true}
	rts.mu.Unlock()
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 100, 2: 0}, 1, nil); err != nil {
		t.Fatal(err)
	}
	pol := domain.Routing{Shadow: &domain.Shadow{Version: 2, Percent: 50}}
	if _, err := svc.SetRouting(ctx, "cd", "m", "production", pol, nil); !errors.Is(err, domain.ErrInvalid) ||
		!strings.Contains(err.Error(), "shadow version 2 speaks openai but version 1, which takes traffic, speaks oip-v2") {
		t.Fatalf("openai shadow of an oip-v2 split: %v", err)
	}
	if d, _ := svc.Get(ctx, "m", "production"); d.Routing.Shadow != nil || d.Revision != 1 {
		t.Fatalf("a refused policy changed the deployment: %+v", d)
	}
	// Versions taking traffic must speak one protocol too.
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 50, 2: 50}, 1, nil); !errors.Is(err, domain.ErrInvalid) ||
		!strings.Contains(err.Error(), "version 1 speaks oip-v2 but version 2 speaks openai") {
		t.Fatalf("split across protocols: %v", err)
	}
	rts.mu.Lock()
	rts.openai = map[int]bool{}
	rts.mu.Unlock()
	if _, err := svc.SetRouting(ctx, "cd", "m", "production", pol, nil); err != nil {
		t.Fatalf("same-protocol shadow: %v", err)
	}
}
