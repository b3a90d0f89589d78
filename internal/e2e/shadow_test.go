package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/metrics"
)

// TestShadowTraffic serves breast-cancer v1 to clients and v2 (another
// model) as a shadow at weight 0, mirroring every request through the
// routing API, and checks through the real binary that clients only ever
// see v1's answers, that the deployment's metrics show the shadow's
// calls and how far its probabilities are from v1's — the mean absolute
// difference equal to the one computed from the two versions' own
// answers — and that Prometheus exports the same.
func TestShadowTraffic(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "cancer")
	c.ok("version", "push", "cancer", example(t, "v1.json"), "--format", "xgboost-json")
	c.ok("version", "push", "cancer", example(t, "v3.json"), "--format", "xgboost-json")
	c.ok("deploy", "cancer", "1", "--env", "production")
	c.ok("traffic", "set", "cancer", "1=100", "2=0", "--env", "production")

	put, err := http.NewRequestWithContext(t.Context(), http.MethodPut,
		"http://"+srv.addr+"/api/v1/models/cancer/deployments/production/routing",
		bytes.NewReader([]byte(`{"shadow":{"version":2,"percent":100}}`)))
	if err != nil {
		t.Fatal(err)
	}
	put.Header.Set("Authorization", "Bearer "+srv.token)
	put.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(put)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT routing: %s\n%s", resp.Status, b)
	}

	g := srv.gatewayClient(t)
	rows := loadParity(t, "v1.json").Rows[:8]
	body := inferBody(t, rows)
	predict := func(path string) []float64 {
		t.Helper()
		r := g.do(http.MethodPost, path, body, nil)
		if r.status != http.StatusOK {
			t.Fatalf("POST %s: %s", path, r)
		}
		var a inferAnswer
		if err := json.Unmarshal(r.body, &a); err != nil || len(a.Outputs) != 1 {
			t.Fatalf("POST %s: answer %s (%v)", path, r.body, err)
		}
		if v := r.header.Get("X-Slipway-Version"); path == "/v2/models/cancer/infer" && v != "1" {
			t.Fatalf("answered by version %s, want the primary 1", v)
		}
		return a.Outputs[0].Data
	}
	// Pinned requests are not mirrored: these two give each version's own
	// answer without adding to the shadow's figures.
	p1, p2 := predict("/v2/models/cancer/versions/1/infer"), predict("/v2/models/cancer/versions/2/infer")
	want := 0.0
	for i := range p1 {
		want += math.Abs(p1[i] - p2[i])
	}
	want /= float64(len(p1))
	if want == 0 {
		t.Fatal("v1 and v3 predict the same on these rows; the test needs models that differ")
	}

	const n = 20
	for range n {
		if got := predict("/v2/models/cancer/infer"); !slices.Equal(got, p1) {
			t.Fatalf("client got %v, want the primary's %v", got, p1)
		}
	}

	// Mirrors are sent after the clients' answers; wait until all arrived.
	var w metrics.ShadowWindow
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := deploymentMetrics(t, srv, "cancer", "production")
		for _, v := range m.Versions {
			if v.Version == 2 && len(v.Shadow) > 0 {
				w = v.Shadow[1] // 1m
			}
		}
		if w.Requests+w.Dropped >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w.Window != "1m" || w.Requests != n || w.Errors != 0 || w.Dropped != 0 || w.Compared != n || w.Skipped != 0 {
		t.Fatalf("shadow window %+v, want %d mirrored calls, all compared", w, n)
	}
	if w.ScoreElements != uint64(n*len(rows)) || math.Abs(w.MeanAbsDiff-want) > 1e-9 || w.Disagreed != n {
		t.Errorf("shadow window %+v, want %d scores with mean absolute difference %v, every answer disagreeing", w, n*len(rows), want)
	}
	if w.P50Ms <= 0 || w.P99Ms < w.P50Ms {
		t.Errorf("shadow latency p50 %v ms, p99 %v ms", w.P50Ms, w.P99Ms)
	}
	m := deploymentMetrics(t, srv, "cancer", "production")
	for _, v := range m.Versions {
		if v.Version == 1 && v.Shadow != nil {
			t.Errorf("the primary has shadow windows: %+v", v.Shadow)
		}
		if win, ok := v.Window("1m"); ok && v.Version == 2 && win.Count != 1 {
			t.Errorf("version 2 live count %d, want only its pinned request", win.Count)
		}
	}

	prom := getText(t, "http://"+srv.addr+"/metrics", "")
	labels := map[string]string{"model": "cancer", "version": "2", "environment": "production"}
	if got := promSum(prom, metrics.NameShadowRequests, labels); got != n {
		t.Errorf("%s = %v, want %d", metrics.NameShadowRequests, got, n)
	}
	if got := promSum(prom, metrics.NameShadowComparisons, map[string]string{"model": "cancer", "result": "disagree"}); got != n {
		t.Errorf("%s{result=disagree} = %v, want %d", metrics.NameShadowComparisons, got, n)
	}
	if got := promSum(prom, metrics.NameShadowScoreElements, labels); got != float64(n*len(rows)) {
		t.Errorf("%s = %v, want %d", metrics.NameShadowScoreElements, got, n*len(rows))
	}
}
