package gateway

import (
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/requestid"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

func TestHealthAndServerMetadata(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ServerVersion = "1.2.3" })

	resp, b := h.do("GET", "/v2/health/live", "")
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"live":true}` {
		t.Errorf("live: %d %s", resp.StatusCode, b)
	}
	resp, b = h.do("GET", "/v2/health/ready", "")
	if resp.StatusCode != http.StatusBadRequest || strings.TrimSpace(string(b)) != `{"ready":false}` {
		t.Errorf("ready before any table: %d %s, want 400 not ready", resp.StatusCode, b)
	}
	h.routes.t.Store(deployment.NewTable())
	resp, b = h.do("GET", "/v2/health/ready", "")
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"ready":true}` {
		t.Errorf("ready with a table: %d %s", resp.StatusCode, b)
	}
	resp, b = h.do("GET", "/v2", "")
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"name":"slipway","version":"1.2.3","extensions":[]}` {
		t.Errorf("server metadata: %d %s", resp.StatusCode, b)
	}
	resp, _ = h.do("POST", "/v2/health/live", "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST live: %d Allow=%q, want 405 with Allow", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestInferInProcess(t *testing.T) {
	model := &fakeModel{}
	h := newHarness(t, nil, route("fraud", "production", inProcess(3, 100, model)))

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody, "X-Request-ID", "caller-42", "traceparent", tp, "Authorization", "Bearer secret")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out oip.InferResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.ModelName != "fraud" || out.Outputs[0].Data[0] != 6.5 {
		t.Errorf("answer %s", b)
	}
	if got := resp.Header.Get(HeaderVersion); got != "3" {
		t.Errorf("%s = %q, want 3", HeaderVersion, got)
	}
	if got := resp.Header.Get(HeaderRequestID); got != "caller-42" {
		t.Errorf("request id %q, want the caller's", got)
	}
	s := model.last()
	if s.Path != "/v2/models/fraud/versions/3/infer" {
		t.Errorf("handler saw path %q", s.Path)
	}
	if s.Body != inferBody {
		t.Errorf("handler saw body %q", s.Body)
	}
	if s.Header.Get("traceparent") != tp || s.Header.Get(HeaderRequestID) != "caller-42" {
		t.Errorf("handler saw traceparent %q request id %q", s.Header.Get("traceparent"), s.Header.Get(HeaderRequestID))
	}
	if s.Header.Get("Authorization") != "" {
		t.Error("the caller's credentials reached the model")
	}

	// Without trace context or a sane request ID, the gateway makes them.
	resp, _ = h.do("POST", "/v2/models/fraud/infer", inferBody, "X-Request-ID", "bad id with spaces")
	id := resp.Header.Get(HeaderRequestID)
	if !requestid.Valid(id) || id == "bad id with spaces" {
		t.Errorf("generated request id %q", id)
	}
	if got := model.last().Header.Get("traceparent"); !validTraceparent(got) {
		t.Errorf("created traceparent %q is not valid W3C trace context", got)
	}
}

func TestInferUpstream(t *testing.T) {
	model := &fakeModel{}
	up := httptest.NewServer(model)
	defer up.Close()
	rv := remote(t, 2, 100, up.URL+"/base/", runtime.ProtocolOIP)
	rv.UpstreamModel = "fraud-v2-onnx"
	h := newHarness(t, nil, route("fraud", "production", rv))

	resp, b := h.do("POST", "/v2/models/fraud/infer?trace=1", inferBody, "Authorization", "Bearer secret")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	s := model.last()
	if s.Path != "/base/v2/models/fraud-v2-onnx/infer" {
		t.Errorf("upstream saw path %q", s.Path)
	}
	if s.Body != inferBody || s.Header.Get("Authorization") != "" || s.Header.Get(HeaderRequestID) == "" || !validTraceparent(s.Header.Get("traceparent")) {
		t.Errorf("upstream saw body %q headers %v", s.Body, s.Header)
	}
	var out oip.InferResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.ModelName != "fraud" || out.ModelVersion != "2" || out.ID != "r1" || out.Outputs[0].Data[0] != 6.5 {
		t.Errorf("answer %s: want slipway's name and version with the upstream's outputs", b)
	}
	if resp.Header.Get(HeaderVersion) != "2" {
		t.Errorf("%s = %q", HeaderVersion, resp.Header.Get(HeaderVersion))
	}
}

func TestMetadataAndReadyForwarded(t *testing.T) {
	up := httptest.NewServer(&fakeModel{name: "remote-name"})
	defer up.Close()
	rv := remote(t, 2, 0, up.URL, runtime.ProtocolOIP)
	rv.UpstreamModel = "remote-name"
	h := newHarness(t, nil, route("fraud", "production", inProcess(1, 100, &fakeModel{}), rv))

	for _, path := range []string{"/v2/models/fraud", "/v2/models/fraud/versions/2"} {
		resp, b := h.do("GET", path, "")
		var md oip.ModelMetadata
		if err := json.Unmarshal(b, &md); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		if md.Name != "fraud" || strings.Join(md.Versions, ",") != "1,2" || md.Platform != "fake" || len(md.Inputs) != 1 {
			t.Errorf("%s: metadata %s, want name fraud and versions 1,2", path, b)
		}
	}
	resp, b := h.do("GET", "/v2/models/fraud/versions/2/ready", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"name":"fraud"`) || !strings.Contains(string(b), `"ready":true`) {
		t.Errorf("ready: %d %s", resp.StatusCode, b)
	}
	resp, _ = h.do("GET", "/v2/models/fraud/infer", "")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET infer: %d, want 405", resp.StatusCode)
	}
}

func TestVersionPin(t *testing.T) {
	h := newHarness(t, nil, route("fraud", "production", inProcess(1, 100, &fakeModel{}), inProcess(2, 0, &fakeModel{})))
	tests := []struct {
		path     string
		status   int
		version  string
		contains string
	}{
		{"/v2/models/fraud/versions/2/infer", 200, "2", ""},
		{"/v2/models/fraud/versions/1/infer", 200, "1", ""},
		{"/v2/models/fraud/versions/7/infer", 404, "", "served versions: 1, 2"},
		{"/v2/models/fraud/versions/champion/infer", 400, "", "not a version number"},
		{"/v2/models/fraud/versions/+1/infer", 400, "", "not a version number"},
		{"/v2/models/fraud/versions/01/infer", 400, "", "not a version number"},
		{"/v2/models/fraud/versions//infer", 404, "", "no inference endpoint"},
		{"/v2/models/fraud/versions/2/explain", 404, "", "no inference endpoint"},
	}
	for _, tt := range tests {
		resp, b := h.do("POST", tt.path, inferBody)
		if resp.StatusCode != tt.status || resp.Header.Get(HeaderVersion) != tt.version {
			t.Errorf("%s: %d version %q, want %d %q (%s)", tt.path, resp.StatusCode, resp.Header.Get(HeaderVersion), tt.status, tt.version, b)
		}
		if tt.contains != "" && !strings.Contains(oipError(t, b), tt.contains) {
			t.Errorf("%s: error %s does not say %q", tt.path, b, tt.contains)
		}
	}
}

func TestWeightedSplit(t *testing.T) {
	const n, weight = 2000, 10
	h := newHarness(t, nil, route("fraud", "production", inProcess(1, 100-weight, &fakeModel{}), inProcess(2, weight, &fakeModel{})))
	got := map[string]int{}
	for range n {
		resp, _ := h.do("POST", "/v2/models/fraud/infer", inferBody)
		got[resp.Header.Get(HeaderVersion)]++
	}
	p := weight / 100.0
	mean, sd := n*p, math.Sqrt(n*p*(1-p))
	if d := math.Abs(float64(got["2"]) - mean); d > 4*sd || got["1"]+got["2"] != n {
		t.Errorf("version 2 got %d of %d requests, want %.0f ± %.0f (4 SD)", got["2"], n, mean, 4*sd)
	}
}

// TestSplitRatiosOverTenThousand is the bar: every version's share
// over 10,000 requests within ±2 percentage points of its weight (6 SD and
// more at these sizes, so it does not flake).
func TestSplitRatiosOverTenThousand(t *testing.T) {
	const n = 10_000
	weights := map[string]int{"1": 70, "2": 25, "3": 5}
	h := newHarness(t, nil, route("fraud", "production",
		inProcess(1, 70, &fakeModel{}), inProcess(2, 25, &fakeModel{}), inProcess(3, 5, &fakeModel{})))
	got := map[string]int{}
	for range n {
		resp, _ := h.do("POST", "/v2/models/fraud/infer", inferBody)
		got[resp.Header.Get(HeaderVersion)]++
	}
	for v, w := range weights {
		share := 100 * float64(got[v]) / n
		if math.Abs(share-float64(w)) > 2 {
			t.Errorf("version %s served %.2f %% of %d requests, weight %d %%", v, share, n, w)
		}
	}
	if got["1"]+got["2"]+got["3"] != n {
		t.Fatalf("answers by version: %v", got)
	}
}

func TestEnvironmentRule(t *testing.T) {
	h := newHarness(t, nil,
		route("fraud", "production", inProcess(1, 100, &fakeModel{})),
		route("fraud", "staging", inProcess(2, 100, &fakeModel{})))
	tests := []struct {
		env     string
		status  int
		version string
	}{
		{"", 200, "1"},
		{"production", 200, "1"},
		{"staging", 200, "2"},
		{"dev", 404, ""},
		{"Not A Name", 400, ""},
	}
	for _, tt := range tests {
		var hdr []string
		if tt.env != "" {
			hdr = []string{HeaderEnvironment, tt.env}
		}
		resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody, hdr...)
		if resp.StatusCode != tt.status || resp.Header.Get(HeaderVersion) != tt.version {
			t.Errorf("env %q: %d version %q, want %d %q: %s", tt.env, resp.StatusCode, resp.Header.Get(HeaderVersion), tt.status, tt.version, b)
		}
	}
	_, b := h.do("POST", "/v2/models/fraud/infer", inferBody, HeaderEnvironment, "dev")
	if msg := oipError(t, b); !strings.Contains(msg, `"dev"`) {
		t.Errorf("404 does not name the environment: %s", msg)
	}
	// The configured default applies when the header is absent.
	h2 := newHarness(t, func(c *Config) { c.DefaultEnvironment = "staging" },
		route("fraud", "staging", inProcess(2, 100, &fakeModel{})))
	if resp, _ := h2.do("POST", "/v2/models/fraud/infer", inferBody); resp.Header.Get(HeaderVersion) != "2" {
		t.Errorf("default environment staging: status %d", resp.StatusCode)
	}
}

func TestUnknownModelAndPath(t *testing.T) {
	h := newHarness(t, nil, route("fraud", "production", inProcess(1, 100, &fakeModel{})))
	resp, b := h.do("POST", "/v2/models/nope/infer", inferBody)
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("unknown model: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if msg := oipError(t, b); !strings.Contains(msg, `model "nope" is not served in environment "production"`) {
		t.Errorf("message %q", msg)
	}
	resp, b = h.do("GET", "/v3/whatever", "")
	if resp.StatusCode != 404 || oipError(t, b) == "" {
		t.Errorf("unknown path: %d %s", resp.StatusCode, b)
	}
	if resp.Header.Get(HeaderVersion) != "" || resp.Header.Get(HeaderRequestID) == "" {
		t.Errorf("unrouted answer headers %v", resp.Header)
	}
}

// upstreamFailure runs one infer against a version at base and returns the
// status and error message.
func upstreamFailure(t *testing.T, base string, cfg func(*Config)) (*harness, int, string, string) {
	t.Helper()
	h := newHarness(t, cfg, route("fraud", "production", remote(t, 1, 100, base, runtime.ProtocolOIP)))
	resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody, "X-Request-ID", "req-77")
	return h, resp.StatusCode, oipError(t, b), resp.Header.Get(HeaderVersion)
}

func TestUpstreamRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, status, msg, ver := upstreamFailure(t, "http://"+addr, nil)
	if status != http.StatusBadGateway || !strings.Contains(msg, "connection refused") || !strings.Contains(msg, "req-77") || ver != "1" {
		t.Errorf("closed port: %d %q version %q, want 502 naming the cause and request id", status, msg, ver)
	}
	if strings.Contains(msg, addr) {
		t.Errorf("error %q reveals the upstream address", msg)
	}
}

func TestUpstreamHangs(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)
	h, status, msg, _ := upstreamFailure(t, up.URL, func(c *Config) { c.UpstreamTimeout = 50 * time.Millisecond })
	if status != http.StatusGatewayTimeout || !strings.Contains(msg, "did not answer within 50ms") || !strings.Contains(msg, "req-77") {
		t.Errorf("hanging upstream: %d %q, want 504 with the request id", status, msg)
	}
	h.settle()
	w, _ := h.rec.Snapshot("fraud", "production")[0].Window("10s")
	if w.Errors != 1 {
		t.Errorf("timeout not counted as an error: %+v", w)
	}
}

func TestGarbageUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\r\n"))
			c.Close()
		}
	}()
	_, status, msg, _ := upstreamFailure(t, "http://"+ln.Addr().String(), nil)
	if status != http.StatusBadGateway || !strings.Contains(msg, "req-77") {
		t.Errorf("garbage upstream: %d %q, want 502", status, msg)
	}
}

func TestEndpointWithoutTransportIsRefused(t *testing.T) {
	rv := remote(t, 1, 100, "http://127.0.0.1:1", runtime.ProtocolOIP)
	rv.Endpoint.Transport = nil // only the egress transport may reach a server
	h := newHarness(t, nil, route("fraud", "production", rv))
	if resp, _ := h.do("POST", "/v2/models/fraud/infer", inferBody); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
}

func TestBodyOverCap(t *testing.T) {
	model := &fakeModel{}
	h := newHarness(t, func(c *Config) { c.MaxBodyBytes = 64 }, route("fraud", "production", inProcess(1, 100, model)))
	big := `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"id":"` + strings.Repeat("a", 100) + `"}`
	resp, b := h.do("POST", "/v2/models/fraud/infer", big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(oipError(t, b), "64 bytes") {
		t.Errorf("declared length: %d %s", resp.StatusCode, b)
	}
	// Without a Content-Length the cap still holds while reading.
	req, _ := http.NewRequest("POST", h.srv.URL+"/v2/models/fraud/infer", struct{ *strings.Reader }{strings.NewReader(big)})
	req.ContentLength = -1
	h.sent++
	resp2, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: %d", resp2.StatusCode)
	}
	if model.last().Path != "" {
		t.Error("an oversized body reached the model")
	}
	h.settle()
	if got := gather(t, h.reg)[`slipway_gateway_unrouted_requests_total{code="413"}`]; got != 2 {
		t.Errorf("unrouted 413 = %v, want 2", got)
	}
}

func TestPanickingHandler(t *testing.T) {
	boom := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("model bug") })
	h := newHarness(t, nil, route("fraud", "production", inProcess(1, 100, boom)))
	resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody)
	if resp.StatusCode != 500 || !strings.Contains(oipError(t, b), resp.Header.Get(HeaderRequestID)) {
		t.Errorf("panic: %d %s", resp.StatusCode, b)
	}
}

func TestMetricsRecorded(t *testing.T) {
	failing := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { oip.WriteError(w, 503, "overloaded") })
	h := newHarness(t, nil,
		route("fraud", "production", inProcess(1, 100, &fakeModel{}), inProcess(2, 0, failing)))
	for range 3 {
		h.do("POST", "/v2/models/fraud/infer", inferBody)
	}
	h.do("POST", "/v2/models/fraud/versions/2/infer", inferBody)
	h.do("POST", "/v2/models/fraud/versions/1/infer", `{"inputs": []}`) // 400 from the model
	h.do("POST", "/v2/models/unknown/infer", inferBody)
	h.settle()

	snap := h.rec.Snapshot("fraud", "production")
	if len(snap) != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
	v1, _ := snap[0].Window("1m")
	v2, _ := snap[1].Window("1m")
	if v1.Count != 4 || v1.Errors != 0 || v2.Count != 1 || v2.Errors != 1 || v2.ErrorRatio != 1 {
		t.Errorf("windows v1 %+v v2 %+v", v1, v2)
	}
	if v1.P50Ms <= 0 || snap[0].InFlight != 0 {
		t.Errorf("v1 latency %v in flight %d", v1.P50Ms, snap[0].InFlight)
	}
	got := gather(t, h.reg)
	for k, want := range map[string]float64{
		`slipway_gateway_requests_total{code="200",environment="production",model="fraud",version="1"}`:      3,
		`slipway_gateway_requests_total{code="400",environment="production",model="fraud",version="1"}`:      1,
		`slipway_gateway_requests_total{code="503",environment="production",model="fraud",version="2"}`:      1,
		`slipway_gateway_request_duration_seconds_count{environment="production",model="fraud",version="1"}`: 4,
		`slipway_gateway_requests_in_flight{environment="production",model="fraud",version="1"}`:             0,
		`slipway_gateway_unrouted_requests_total{code="404"}`:                                                1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}

// Tables published while requests are in flight are picked up without
// failing a request (run with -race).
func TestRouteSwapUnderLoad(t *testing.T) {
	m1, m2 := &fakeModel{}, &fakeModel{}
	tables := []*deployment.Table{
		deployment.NewTable(route("fraud", "production", inProcess(1, 100, m1), inProcess(2, 0, m2))),
		deployment.NewTable(route("fraud", "production", inProcess(1, 50, m1), inProcess(2, 50, m2))),
		deployment.NewTable(route("fraud", "production", inProcess(2, 100, m2))),
	}
	h := newHarness(t, nil)
	h.routes.t.Store(tables[0])
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				h.routes.t.Store(tables[i%len(tables)])
			}
		}
	}()
	var wg sync.WaitGroup
	failures := make(chan string, 400)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				resp, err := h.client.Post(h.srv.URL+"/v2/models/fraud/infer", "application/json", strings.NewReader(inferBody))
				if err != nil {
					failures <- err.Error()
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures <- resp.Status
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-swapped
	close(failures)
	for f := range failures {
		t.Errorf("request failed during route swaps: %s", f)
	}
}

// A deployed version whose runtime could not start keeps its share of
// the split, which the stable version answers; pinned, it answers 503
// saying why rather than 404 "not served".
func TestVersionThatCouldNotStart(t *testing.T) {
	r := route("fraud", "production", inProcess(1, 50, &fakeModel{}))
	r.Stable, r.Down = 1, []deployment.DownVersion{{Version: 2, Weight: 50}}
	h := newHarness(t, nil, r)
	for i := range 20 {
		if resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody); resp.StatusCode != 200 || resp.Header.Get(HeaderVersion) != "1" {
			t.Fatalf("request %d: %d %s from version %q, want the stable version's answer", i, resp.StatusCode, b, resp.Header.Get(HeaderVersion))
		}
	}
	resp, b := h.do("POST", "/v2/models/fraud/versions/2/infer", inferBody)
	if msg := oipError(t, b); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(msg, "could not start") {
		t.Fatalf("pinned to the version that could not start: %d %q", resp.StatusCode, msg)
	}
	if resp, _ := h.do("POST", "/v2/models/fraud/versions/3/infer", inferBody); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("pinned to a version not deployed: %d", resp.StatusCode)
	}
}

// A remote infer answer gets slipway's model name and version whether it
// arrives whole in the connection's buffer (rewritten in place into a
// lent buffer), larger than that buffer, or chunked; one that is not a
// JSON object, or names neither, passes byte for byte. Answers of
// different sizes one after another on the same connections check that
// a lent buffer never carries bytes from an earlier answer.
func TestInferUpstreamAnswerRewrite(t *testing.T) {
	big := `{"model_name":"up","outputs":[{"name":"p","shape":[1],"datatype":"BYTES","data":["` + strings.Repeat("x", 9000) + `"]}],"model_version":"7"}`
	cases := []struct {
		name, answer, want string
		chunked            bool
	}{
		{"small", `{"model_name":"up","model_version":"7","outputs":[]}`, `{"model_name":"fraud","model_version":"2","outputs":[]}`, false},
		{"version only", `{"outputs":[1],"model_version":7}`, `{"outputs":[1],"model_version":"2"}`, false},
		{"neither", `{"outputs":[1,2,3]}`, `{"outputs":[1,2,3]}`, false},
		{"array", `[1,2]`, `[1,2]`, false},
		{"not JSON", `{"model_name":`, `{"model_name":`, false},
		{"larger than the buffer", big, strings.Replace(strings.Replace(big, `"up"`, `"fraud"`, 1), `"7"`, `"2"`, 1), false},
		{"chunked", `{"model_name":"up","outputs":[]}`, `{"model_name":"fraud","outputs":[]}`, true},
	}
	var mu sync.Mutex
	answer, chunked := "", false
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		a, c := answer, chunked
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if c {
			_, _ = io.WriteString(w, a[:5])
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, a[5:])
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(a)))
		_, _ = io.WriteString(w, a)
	}))
	defer up.Close()
	h := newHarness(t, nil, route("fraud", "production", remote(t, 2, 100, up.URL, runtime.ProtocolOIP)))
	for round := 0; round < 3; round++ {
		for _, c := range cases {
			mu.Lock()
			answer, chunked = c.answer, c.chunked
			mu.Unlock()
			resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody)
			if resp.StatusCode != 200 || string(b) != c.want {
				t.Fatalf("%s: %d %s, want %s", c.name, resp.StatusCode, b, c.want)
			}
			if cl := resp.Header.Get("Content-Length"); !c.chunked && cl != strconv.Itoa(len(c.want)) {
				t.Errorf("%s: Content-Length %s, want %d", c.name, cl, len(c.want))
			}
		}
	}
}

func TestModelPath(t *testing.T) {
	for _, c := range []struct{ req, model, suffix, want string }{
		{"/v2/models/iris/infer", "iris", "/infer", "/v2/models/iris/infer"},
		{"/v2/models/iris/versions/2/infer", "iris", "/infer", "/v2/models/iris/infer"},
		{"/v2/models/iris/infer", "iris-onnx", "/infer", "/v2/models/iris-onnx/infer"},
		{"/v2/models/irix/infer", "iris", "/infer", "/v2/models/iris/infer"},
		{"/v2/models/iris/ready", "iris", "/infer", "/v2/models/iris/infer"},
		{"/v2/models/iris", "iris", "", "/v2/models/iris"},
	} {
		if got := modelPath(c.req, c.model, c.suffix); got != c.want {
			t.Errorf("modelPath(%q, %q, %q) = %q, want %q", c.req, c.model, c.suffix, got, c.want)
		}
	}
}
