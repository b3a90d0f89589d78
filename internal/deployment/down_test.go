package deployment_test

import (
	"testing"
)

// A version whose runtime could not start when the table was published
// joins its split once RetryDown finds it can start, without a deployment
// change; while everything runs, RetryDown does nothing.
func TestRetryDown(t *testing.T) {
	svc, rts, _ := setup(t)
	ctx := t.Context()
	if _, err := svc.Deploy(ctx, "cd", "m", "1", "production", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetTraffic(ctx, "cd", "m", "production", map[int]int{1: 90, 2: 10}, 1, nil); err != nil {
		t.Fatal(err)
	}
	if tried, err := svc.RetryDown(ctx); tried || err != nil {
		t.Fatalf("RetryDown with every version running: tried %v, %v", tried, err)
	}
	// Version 2's server goes away and the table is rebuilt (a restart).
	rts.mu.Lock()
	rts.broken[2] = true
	delete(rts.running, 2)
	rts.mu.Unlock()
	if err := svc.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	r := svc.Routes().Lookup("m", "production")
	if len(r.Down) != 1 || r.Down[0].Version != 2 || r.Version(2) != nil {
		t.Fatalf("after the restart: versions %s, down %+v", weights(r), r.Down)
	}
	// Still broken: it tries, and version 2 stays down.
	if tried, err := svc.RetryDown(ctx); !tried || err != nil {
		t.Fatalf("RetryDown with version 2 broken: tried %v, %v", tried, err)
	}
	if r := svc.Routes().Lookup("m", "production"); len(r.Down) != 1 {
		t.Fatalf("version 2 came up while broken: %+v", r.Down)
	}
	// Its server is back: the next retry puts it in the split.
	rts.mu.Lock()
	delete(rts.broken, 2)
	rts.mu.Unlock()
	if tried, err := svc.RetryDown(ctx); !tried || err != nil {
		t.Fatalf("RetryDown once version 2 can start: tried %v, %v", tried, err)
	}
	r = svc.Routes().Lookup("m", "production")
	if len(r.Down) != 0 || weights(r) != "1=90 2=10" || r.Revision != 2 {
		t.Fatalf("after the retry: versions %s, down %+v, revision %d", weights(r), r.Down, r.Revision)
	}
	if tried, _ := svc.RetryDown(ctx); tried {
		t.Fatal("RetryDown tried again with every version running")
	}
}
