package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

// parityTolerance is how close slipway's predictions must be to XGBoost's.
const parityTolerance = 1e-6

// TestGatewayParity serves the breast-cancer example model through the
// gateway and checks XGBoost's own predictions come back, rows with
// missing values included, with and without a version pin; then metadata,
// readiness, health in `deployment get`, and a pin to a version the
// environment does not serve.
func TestGatewayParity(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "cancer")
	var v1 domain.Version
	c.json(&v1, "version", "push", "cancer", example(t, "v1.json"), "--format", "xgboost-json")
	if v1.Number != 1 || v1.Format != domain.FormatXGBoostJSON {
		t.Fatalf("push: %+v", v1)
	}
	// Version 2 is registered but never deployed.
	c.ok("version", "push", "cancer", example(t, "v3.json"), "--format", "xgboost-json")
	c.ok("deploy", "cancer", "1", "--env", "production")

	pc := loadParity(t, "v1.json")
	missing := 0
	for _, row := range pc.Rows {
		if slices.Contains(row, nil) {
			missing++
		}
	}
	if missing == 0 {
		t.Fatal("parity.json has no row with missing values; the test would prove less than it says")
	}
	g := srv.gatewayClient(t)
	body := inferBody(t, pc.Rows)
	for _, path := range []string{"/v2/models/cancer/infer", "/v2/models/cancer/versions/1/infer"} {
		r := g.do(http.MethodPost, path, body, nil)
		if r.status != http.StatusOK || r.header.Get("X-Slipway-Version") != "1" {
			t.Fatalf("POST %s: %s", path, r)
		}
		var out inferAnswer
		decodeStrict(t, string(r.body), &out)
		if out.ModelName != "cancer" || out.ModelVersion != "1" || len(out.Outputs) != 1 {
			t.Fatalf("POST %s: %+v", path, out)
		}
		got := out.Outputs[0]
		if !slices.Equal(got.Shape, []int64{int64(len(pc.Rows))}) || len(got.Data) != len(pc.Predictions) {
			t.Fatalf("POST %s: output shape %v with %d values for %d rows", path, got.Shape, len(got.Data), len(pc.Rows))
		}
		for i, want := range pc.Predictions {
			if math.Abs(got.Data[i]-want[0]) > parityTolerance {
				t.Errorf("POST %s: row %d: got %.9f, XGBoost %.9f", path, i, got.Data[i], want[0])
			}
		}
	}

	// Metadata and readiness, under slipway's name and versions.
	r := g.do(http.MethodGet, "/v2/models/cancer", nil, nil)
	var md struct {
		Name     string   `json:"name"`
		Versions []string `json:"versions"`
		Platform string   `json:"platform"`
		Inputs   []struct {
			Name       string  `json:"name"`
			Datatype   string  `json:"datatype"`
			Shape      []int64 `json:"shape"`
			Parameters struct {
				FeatureNames []string `json:"feature_names"`
			} `json:"parameters"`
		} `json:"inputs"`
		Outputs []json.RawMessage `json:"outputs"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET metadata: %s", r)
	}
	decodeStrict(t, string(r.body), &md)
	if md.Name != "cancer" || !slices.Equal(md.Versions, []string{"1"}) || len(md.Inputs) != 1 ||
		!slices.Equal(md.Inputs[0].Shape, []int64{-1, int64(len(pc.Rows[0]))}) || len(md.Outputs) != 1 ||
		len(md.Inputs[0].Parameters.FeatureNames) != len(pc.Rows[0]) || md.Inputs[0].Parameters.FeatureNames[0] != "mean_radius" {
		t.Fatalf("GET metadata: %s", r)
	}
	for _, path := range []string{"/v2/models/cancer/ready", "/v2/models/cancer/versions/1/ready"} {
		if r := g.do(http.MethodGet, path, nil, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"ready":true`) {
			t.Fatalf("GET %s: %s", path, r)
		}
	}
	if r := g.do(http.MethodGet, "/v2/health/ready", nil, nil); r.status != http.StatusOK {
		t.Fatalf("GET /v2/health/ready: %s", r)
	}

	assertHealthyRow(t, c.ok("deployment", "get", "cancer", "--env", "production"), "cancer production 1 100%")
	var st deployment.Status
	c.json(&st, "deployment", "get", "cancer", "--env", "production")
	if len(st.Health) != 1 || !st.Health[0].Healthy || st.Revision != 1 {
		t.Fatalf("deployment get: %+v", st)
	}

	// A pin to a registered version the environment does not serve.
	for _, path := range []string{"/v2/models/cancer/versions/2/infer", "/v2/models/cancer/versions/9/infer"} {
		r := g.do(http.MethodPost, path, body, nil)
		msg := oipErrorOf(t, r, http.StatusNotFound)
		if !strings.Contains(msg, "is not served") || !strings.Contains(msg, "served versions: 1") {
			t.Fatalf("POST %s: %s", path, r)
		}
	}
}

// TestTrafficChangesUnderLoad moves traffic between two healthy versions
// twenty times, taking versions out of the deployment and back, while
// four clients call the gateway without pause: every request must be
// answered 200, by the version its X-Slipway-Version names.
func TestTrafficChangesUnderLoad(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "cancer")
	c.ok("version", "push", "cancer", example(t, "v1.json"), "--format", "xgboost-json")
	c.ok("version", "push", "cancer", example(t, "v3.json"), "--format", "xgboost-json")
	c.ok("deploy", "cancer", "1", "--env", "production")

	// A row the two models score differently tells the answers apart.
	p1, p3 := loadParity(t, "v1.json"), loadParity(t, "v3.json")
	row := -1
	for i := range p1.Rows {
		if i < len(p3.Rows) && rowsEqual(p1.Rows[i], p3.Rows[i]) && math.Abs(p1.Predictions[i][0]-p3.Predictions[i][0]) > 1e-3 {
			row = i
			break
		}
	}
	if row < 0 {
		t.Fatal("no parity row that v1 and v3 score differently")
	}
	want := map[string]float64{"1": p1.Predictions[row][0], "2": p3.Predictions[row][0]}
	body := inferBody(t, p1.Rows[row:row+1])

	g := srv.gatewayClient(t)
	var (
		done     atomic.Int64
		byVer    sync.Map // version header → *atomic.Int64
		mu       sync.Mutex
		failures []string
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	fail := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, s)
		}
	}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := g.send(t.Context(), http.MethodPost, "/v2/models/cancer/infer", body, nil)
				done.Add(1)
				if err != nil {
					fail(err.Error())
					continue
				}
				ver := r.header.Get("X-Slipway-Version")
				var out inferAnswer
				if r.status != http.StatusOK || json.Unmarshal(r.body, &out) != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 1 {
					fail(r.String())
					continue
				}
				if w, ok := want[ver]; !ok || math.Abs(out.Outputs[0].Data[0]-w) > parityTolerance || out.ModelVersion != ver {
					fail(fmt.Sprintf("version header %q, model_version %q, prediction %v", ver, out.ModelVersion, out.Outputs[0].Data))
					continue
				}
				n, _ := byVer.LoadOrStore(ver, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	// Each change waits for requests under the table before it, so the
	// load overlaps every change, not just the first.
	waitFor := func(n int64) {
		t.Helper()
		poll(t, 30*time.Second, fmt.Sprintf("%d requests", n), func() (bool, string) {
			return done.Load() >= n, fmt.Sprintf("%d done", done.Load())
		})
	}
	splits := [][]string{{"1=50", "2=50"}, {"2=100"}, {"1=10", "2=90"}, {"1=100"}, {"1=0", "2=100"}}
	var last []string
	for i := range 20 {
		waitFor(done.Load() + 8)
		last = splits[i%len(splits)]
		c.ok(append([]string{"traffic", "set", "cancer", "--env", "production"}, last...)...)
	}
	waitFor(done.Load() + 8)
	stopLoad()

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d requests, failures (first %d):\n%s", done.Load(), len(failures), strings.Join(failures, "\n"))
	}
	for _, v := range []string{"1", "2"} {
		n, ok := byVer.Load(v)
		if !ok || n.(*atomic.Int64).Load() == 0 {
			t.Errorf("version %s never answered in %d requests", v, done.Load())
		}
	}
	t.Logf("%d requests over 20 traffic changes, all answered 200", done.Load())
	var st deployment.Status
	c.json(&st, "deployment", "get", "cancer", "--env", "production")
	if st.Revision != 21 || len(st.Versions) != 2 || st.Versions[0].Weight != 0 || st.Versions[1].Weight != 100 {
		t.Fatalf("after 20 changes ending in %v: %+v", last, st)
	}
}

// assertHealthyRow checks a `deployment get` table has a row starting
// with prefix (fields separated by any spaces) that says healthy.
func assertHealthyRow(t *testing.T, table, prefix string) {
	t.Helper()
	prefix = strings.Join(strings.Fields(prefix), " ")
	for l := range strings.Lines(table) {
		fields := strings.Fields(l)
		if strings.HasPrefix(strings.Join(fields, " "), prefix) && slices.Contains(fields, "healthy") {
			return
		}
	}
	t.Errorf("no healthy row starting with %q in:\n%s", prefix, table)
}

// example is the absolute path of a file of examples/breast-cancer.
func example(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "examples", "breast-cancer", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// parityCase is one model's rows and XGBoost's predictions in parity.json.
type parityCase struct {
	Model string `json:"model"`
	// Rows hold nil for a missing value (null in the file).
	Rows        [][]*float64 `json:"rows"`
	Predictions [][]float64  `json:"predictions"`
}

func loadParity(t *testing.T, model string) parityCase {
	t.Helper()
	b, err := os.ReadFile(example(t, "parity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []parityCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("parity.json: %v", err)
	}
	for _, c := range f.Cases {
		if c.Model == model {
			if len(c.Rows) == 0 || len(c.Rows) != len(c.Predictions) {
				t.Fatalf("parity.json: %s has %d rows and %d predictions", model, len(c.Rows), len(c.Predictions))
			}
			return c
		}
	}
	t.Fatalf("parity.json has no case for %s", model)
	return parityCase{}
}

func rowsEqual(a, b []*float64) bool {
	return slices.EqualFunc(a, b, func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) })
}

// inferBody is an Open Inference Protocol request of rows as one FP64
// tensor [rows, features], nulls for missing values.
func inferBody(t *testing.T, rows [][]*float64) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"inputs": []map[string]any{{
		"name": "input-0", "shape": []int{len(rows), len(rows[0])}, "datatype": "FP64", "data": rows,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inferAnswer is an Open Inference Protocol infer answer.
type inferAnswer struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id,omitempty"`
	Parameters   map[string]any `json:"parameters,omitempty"`
	Outputs      []struct {
		Name     string    `json:"name"`
		Shape    []int64   `json:"shape"`
		Datatype string    `json:"datatype"`
		Data     []float64 `json:"data"`
	} `json:"outputs"`
}

// gatewayClient calls one server's gateway over loopback HTTP.
type gatewayClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

// gatewayClient returns a client of s's gateway with its own connection
// pool. Its timeout is a safety net, not an assertion.
func (s *server) gatewayClient(t *testing.T) *gatewayClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &gatewayClient{t: t, base: "http://" + s.gateway, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// reply is one answer of the gateway, read to the end.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(string(r.body)))
}

// send makes one request; headers may be nil.
func (g *gatewayClient) send(ctx context.Context, method, path string, body []byte, header map[string]string) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// do is send for the test's goroutine: a failed exchange fails the test.
func (g *gatewayClient) do(method, path string, body []byte, header map[string]string) reply {
	g.t.Helper()
	r, err := g.send(g.t.Context(), method, path, body, header)
	if err != nil {
		g.t.Fatal(err)
	}
	return r
}

// oipErrorOf checks r is an Open Inference Protocol error with status and
// exactly the body {"error": "..."}, and returns the message.
func oipErrorOf(t *testing.T, r reply, status int) string {
	t.Helper()
	if r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("want %d with a JSON error body, got %s (Content-Type %q)", status, r, r.header.Get("Content-Type"))
	}
	var e struct {
		Error string `json:"error"`
	}
	decodeStrict(t, string(r.body), &e)
	if strings.TrimSpace(e.Error) == "" {
		t.Fatalf("error body without a message: %s", r)
	}
	return e.Error
}

// poll calls cond until it reports true, pausing a little longer each
// time, and fails the test with cond's last note after limit: a safety
// net for something that must happen, not a measurement.
func poll(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	pause := 5 * time.Millisecond
	for {
		ok, note := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last: %s", limit, what, note)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}
