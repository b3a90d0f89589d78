package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// shadowed is a route of model "m" in production: primary v1 takes all
// traffic, v2 (weight 0) gets pct percent of it mirrored.
func shadowed(primary, shadow deployment.RouteVersion, pct float64) *deployment.Route {
	primary.Version, primary.Weight = 1, 100
	shadow.Version, shadow.Weight = 2, 0
	r := route("m", "production", primary, shadow)
	r.Shadow = &deployment.RouteShadow{Target: &r.Versions[1], Percent: pct}
	return r
}

// closeGateway drains the gateway's mirrors: after it, every mirror
// queued so far has been recorded. The context is a guard against a
// hang, not a timing assertion.
func closeGateway(t *testing.T, h *harness) {
	t.Helper()
	h.settle()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.gw.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// shadowLabels are the model and environment labels of shadow series.
const shadowLabels = `environment="production",model="m",`

// The client gets the primary's answer, whatever the shadow does; the
// shadow's failures are recorded as its own and touch nothing of the
// primary's.
func TestShadowNeverChangesTheClientsAnswer(t *testing.T) {
	primary := &fakeModel{}
	want := func() string { // what the primary answers on its own
		h := newHarness(t, nil, route("m", "production", inProcess(1, 100, primary)))
		resp, b := h.do("POST", "/v2/models/m/infer", inferBody)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("primary alone: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}()
	for _, tc := range []struct {
		kind    string
		outcome string
	}{
		{upGarbage, "transport_error"},
		{up500, "server_error"},
		{upReset, "transport_error"},
		{upHang, "timeout"},
		{upRefuse, "transport_error"},
		{upOK, "ok"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			up := newFailingUpstream(t, tc.kind)
			h := newHarness(t, func(c *Config) {
				if tc.kind == upHang {
					c.Shadow.Timeout = 100 * time.Millisecond // the only wait in this test: the shadow's own timeout
				}
			},
				shadowed(inProcess(0, 0, primary), up.version(t, 0, 0, runtime.ProtocolOIP), 100))
			for range 3 {
				resp, b := h.doCtx("POST", "/v2/models/m/infer", inferBody)
				if resp.StatusCode != http.StatusOK || string(b) != want || resp.Header.Get(HeaderVersion) != "1" {
					t.Fatalf("client got %d (version %s) %s, want the primary's 200 %s", resp.StatusCode, resp.Header.Get(HeaderVersion), b, want)
				}
			}
			closeGateway(t, h)
			got := gather(t, h.reg)
			if n := got[metrics.NameShadowRequests+`{`+shadowLabels+`outcome="`+tc.outcome+`",version="2"}`]; n != 3 {
				t.Errorf("shadow requests with outcome %s = %v, want 3; metrics %v", tc.outcome, n, shadowSeries(got))
			}
			if n := got[`slipway_gateway_requests_total{code="200",environment="production",model="m",version="1"}`]; n != 3 {
				t.Errorf("primary requests = %v, want 3", n)
			}
			for name, v := range got {
				if strings.Contains(name, `version="2"`) && !strings.HasPrefix(name, "slipway_gateway_shadow_") && v != 0 {
					t.Errorf("the shadow's calls show in live metrics: %s", name)
				}
			}
		})
	}
}

func shadowSeries(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "slipway_gateway_shadow_") {
			out[k] = v
		}
	}
	return out
}

// The shadow gets the primary's body and headers, without credentials,
// marked as a mirror.
func TestShadowRequestCarriesTheBodyNotTheCredentials(t *testing.T) {
	shadow := &fakeModel{}
	srv := httptest.NewServer(shadow)
	t.Cleanup(srv.Close)
	h := newHarness(t, nil, shadowed(inProcess(0, 0, &fakeModel{}), remote(t, 0, 0, srv.URL, runtime.ProtocolOIP), 100))
	h.do("POST", "/v2/models/m/infer?trace=1", inferBody, "Authorization", "Bearer sk-caller", "Cookie", "s=1",
		"X-Api-Key", "k", "X-Team", "fraud", HeaderRequestID, "req-42", HeaderEnvironment, "production")
	closeGateway(t, h)
	s := shadow.last()
	if s.Path != "/v2/models/m/infer" || s.Body != inferBody || s.Method != "POST" {
		t.Fatalf("shadow saw %s %s %q, want the primary's request", s.Method, s.Path, s.Body)
	}
	for name, want := range map[string]string{
		HeaderShadow: "true", "X-Team": "fraud", HeaderRequestID: "req-42",
		"Authorization": "", "Cookie": "", "X-Api-Key": "", HeaderEnvironment: "",
	} {
		if got := s.Header.Get(name); got != want {
			t.Errorf("shadow header %s = %q, want %q", name, got, want)
		}
	}
	if !validTraceparent(s.Header.Get(HeaderTraceparent)) {
		t.Errorf("shadow traceparent %q", s.Header.Get(HeaderTraceparent))
	}
}

// blockingShadow is an in-process shadow that signals entered and then
// waits for release before answering like fakeModel.
type blockingShadow struct {
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func newBlockingShadow() *blockingShadow {
	return &blockingShadow{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blockingShadow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.calls.Add(1)
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-r.Context().Done():
		return
	}
	(&fakeModel{}).ServeHTTP(w, r)
}

// A shadow that does not answer does not delay the client: the client has
// its answer while the shadow's handler is still blocked.
func TestHangingShadowDoesNotDelayTheClient(t *testing.T) {
	shadow := newBlockingShadow()
	h := newHarness(t, nil, shadowed(inProcess(0, 0, &fakeModel{}), inProcess(0, 0, shadow), 100))
	resp, b := h.doCtx("POST", "/v2/models/m/infer", inferBody)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("client got %d %s", resp.StatusCode, b)
	}
	<-shadow.entered // the mirror is at the shadow, which cannot answer yet
	select {
	case <-shadow.release:
		t.Fatal("released before the client's answer")
	default:
	}
	close(shadow.release)
	closeGateway(t, h)
	w := shadowWindow(t, h, 2)
	if w.Requests != 1 || w.Errors != 0 || w.Compared != 1 || w.Disagreed != 0 || w.ScoreElements != 1 {
		t.Errorf("shadow window %+v, want one agreeing call", w)
	}
}

// shadowWindow is the 10 s shadow window of version v of m.
func shadowWindow(t *testing.T, h *harness, v int) metrics.ShadowWindow {
	t.Helper()
	for _, vw := range h.rec.Snapshot("m", "production") {
		if vw.Version == v && len(vw.Shadow) > 0 {
			return vw.Shadow[0]
		}
	}
	t.Fatalf("no shadow windows for version %d in %+v", v, h.rec.Snapshot("m", "production"))
	return metrics.ShadowWindow{}
}

// A full queue drops mirrors and counts them; clients are answered.
func TestShadowQueueFullDrops(t *testing.T) {
	shadow := newBlockingShadow()
	h := newHarness(t, func(c *Config) { c.Shadow.Workers, c.Shadow.QueueSize = 1, 1 },
		shadowed(inProcess(0, 0, &fakeModel{}), inProcess(0, 0, shadow), 100))
	if resp, b := h.doCtx("POST", "/v2/models/m/infer", inferBody); resp.StatusCode != http.StatusOK {
		t.Fatalf("client got %d %s", resp.StatusCode, b)
	}
	<-shadow.entered // the only worker is busy with the first mirror
	for range 4 {    // the second waits in the queue; three find it full
		if resp, b := h.doCtx("POST", "/v2/models/m/infer", inferBody); resp.StatusCode != http.StatusOK {
			t.Fatalf("client got %d %s", resp.StatusCode, b)
		}
	}
	h.settle()
	if n := gather(t, h.reg)[metrics.NameShadowDropped+`{`+shadowLabels+`reason="queue_full",version="2"}`]; n != 3 {
		t.Errorf("dropped = %v, want 3", n)
	}
	close(shadow.release)
	closeGateway(t, h)
	w := shadowWindow(t, h, 2)
	if w.Requests != 2 || w.Dropped != 3 || shadow.calls.Load() != 2 {
		t.Errorf("shadow window %+v, %d calls; want 2 sent and 3 dropped", w, shadow.calls.Load())
	}
}

// Close drains what it can; past its context, calls in flight are
// cancelled and what is left is dropped, and later mirrors are dropped.
func TestShadowCloseDropsWhatItCannotSend(t *testing.T) {
	shadow := newBlockingShadow()
	h := newHarness(t, func(c *Config) { c.Shadow.Workers = 1 },
		shadowed(inProcess(0, 0, &fakeModel{}), inProcess(0, 0, shadow), 100))
	h.doCtx("POST", "/v2/models/m/infer", inferBody)
	<-shadow.entered
	h.doCtx("POST", "/v2/models/m/infer", inferBody) // queued behind the blocked one
	h.settle()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.gw.Close(ctx); err == nil {
		t.Error("Close with an ended context reported no dropped mirrors")
	}
	h.doCtx("POST", "/v2/models/m/infer", inferBody) // after Close: not mirrored
	h.settle()
	w := shadowWindow(t, h, 2)
	if w.Requests != 0 || w.Dropped != 3 {
		t.Errorf("shadow window %+v, want nothing sent and 3 dropped", w)
	}
	if n := gather(t, h.reg)[metrics.NameShadowDropped+`{`+shadowLabels+`reason="shutdown",version="2"}`]; n != 3 {
		t.Errorf("dropped at shutdown = %v, want 3", n)
	}
}

// inferAnswer answers every infer request with the same body.
func inferAnswer(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	})
}

// Disagreement figures are exact: labels differ on 2 of 5, scores by 0.75
// in all over 4, per request.
func TestShadowDisagreementFigures(t *testing.T) {
	primary := inferAnswer(oipAns("label:INT64:[5]:[1,0,1,1,0]", "proba:FP64:[2,2]:[[0.5,0.25],[0.125,1]]"))
	shadow := inferAnswer(oipAns("label:INT64:[5]:[1,1,1,0,0]", "proba:FP64:[2,2]:[[1,0.25],[0.125,0.75]]"))
	h := newHarness(t, nil, shadowed(inProcess(0, 0, primary), inProcess(0, 0, shadow), 100))
	for range 4 {
		h.do("POST", "/v2/models/m/infer", inferBody)
	}
	closeGateway(t, h)
	w := shadowWindow(t, h, 2)
	want := metrics.ShadowWindow{Window: "10s", Seconds: 10, Requests: 4, Compared: 4, Disagreed: 4, DisagreementRatio: 1,
		LabelElements: 20, LabelMismatches: 8, LabelMismatchRate: 0.4, ScoreElements: 16, MeanAbsDiff: 0.1875}
	w.P50Ms, w.P90Ms, w.P99Ms = 0, 0, 0
	if w != want {
		t.Errorf("\n got %+v\nwant %+v", w, want)
	}
	got := gather(t, h.reg)
	l := `environment="production",model="m",`
	for name, v := range map[string]float64{
		metrics.NameShadowComparisons + `{` + l + `result="disagree",version="2"}`:   4,
		metrics.NameShadowLabelElements + `{` + l + `result="mismatch",version="2"}`: 8,
		metrics.NameShadowLabelElements + `{` + l + `result="match",version="2"}`:    12,
		metrics.NameShadowScoreElements + `{` + l + `version="2"}`:                   16,
		metrics.NameShadowAbsDiff + `{` + l + `version="2"}`:                         3,
		metrics.NameShadowDuration + `_count{` + l + `version="2"}`:                  4,
	} {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}

// A failed primary is not compared, and the skip is counted.
func TestShadowSkipsComparisonWhenPrimaryFails(t *testing.T) {
	up := newFailingUpstream(t, up500)
	h := newHarness(t, nil, shadowed(up.version(t, 0, 0, runtime.ProtocolOIP), inProcess(0, 0, &fakeModel{}), 100))
	if resp, _ := h.do("POST", "/v2/models/m/infer", inferBody); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("client got %d, want the primary's 500", resp.StatusCode)
	}
	closeGateway(t, h)
	w := shadowWindow(t, h, 2)
	if w.Requests != 1 || w.Skipped != 1 || w.Compared != 0 {
		t.Errorf("shadow window %+v, want one call, skipped", w)
	}
	l := `environment="production",model="m",`
	if n := gather(t, h.reg)[metrics.NameShadowSkipped+`{`+l+`reason="primary_failed",version="2"}`]; n != 1 {
		t.Errorf("skipped for primary_failed = %v, want 1", n)
	}
}

// OpenAI chat answers are compared by content.
func TestShadowChatDisagreement(t *testing.T) {
	chat := func(content string) deployment.RouteVersion {
		return deployment.RouteVersion{Endpoint: runtime.Endpoint{Protocol: runtime.ProtocolOpenAI, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			answer := content
			if strings.Contains(string(b), "same") {
				answer = "same"
			}
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]}`, answer)
		})}}
	}
	h := newHarness(t, nil, shadowed(chat("hello"), chat("hullo"), 100))
	for _, body := range []string{`{"model":"m","messages":[]}`, `{"model":"m","messages":[{"role":"user","content":"same"}]}`, `{"model":"m","messages":[]}`} {
		if resp, b := h.do("POST", "/v1/chat/completions", body); resp.StatusCode != http.StatusOK || strings.Contains(string(b), "hullo") {
			t.Fatalf("client got %d %s", resp.StatusCode, b)
		}
	}
	closeGateway(t, h)
	w := shadowWindow(t, h, 2)
	if w.Compared != 3 || w.Disagreed != 2 || w.LabelElements != 3 || w.LabelMismatches != 2 {
		t.Errorf("shadow window %+v, want 2 of 3 chat answers disagreeing", w)
	}
}

// A percentage mirrors about that share of the split's requests; pinned
// requests, rule-routed requests and metadata are never mirrored.
func TestShadowSampling(t *testing.T) {
	shadow := &fakeModel{}
	r := shadowed(inProcess(0, 0, &fakeModel{}), inProcess(0, 0, shadow), 25)
	rule, err := domain.ParseMatchRule("header:X-Tester=yes -> 1")
	if err != nil {
		t.Fatal(err)
	}
	r.Rules = []deployment.RouteRule{{MatchRule: rule, Target: &r.Versions[0]}}
	h := newHarness(t, nil, r)
	const n = 4000
	for range n {
		h.do("POST", "/v2/models/m/infer", inferBody)
	}
	for range 50 {
		h.do("POST", "/v2/models/m/versions/1/infer", inferBody, "X-Kind", "pinned")
		h.do("POST", "/v2/models/m/infer", inferBody, "X-Tester", "yes")
		h.do("GET", "/v2/models/m", "")
	}
	closeGateway(t, h)
	w := shadowWindow(t, h, 2)
	mirrored := w.Requests + w.Dropped
	if share := float64(mirrored) / n; share < 0.23 || share > 0.27 {
		t.Errorf("mirrored %d of %d split requests (%.3f), want 25 %% ± 2 points", mirrored, n, share)
	}
	shadow.mu.Lock()
	defer shadow.mu.Unlock()
	for _, s := range shadow.reqs {
		if s.Method != "POST" || s.Header.Get("X-Kind") != "" || s.Header.Get("X-Tester") != "" {
			t.Fatalf("mirrored a request that is not the split's: %s %s %v", s.Method, s.Path, s.Header)
		}
	}
}

// Remote versions on both sides, through the gateway's own proxy path:
// the client's answer is kept for the comparison as it streams past,
// for a JSON answer and for an event stream.
func TestShadowRemoteAnswersCompared(t *testing.T) {
	oipSrv := httptest.NewServer(&fakeModel{})
	t.Cleanup(oipSrv.Close)
	h := newHarness(t, nil, shadowed(remote(t, 0, 0, oipSrv.URL, runtime.ProtocolOIP), remote(t, 0, 0, oipSrv.URL, runtime.ProtocolOIP), 100))
	for range 3 {
		if resp, b := h.do("POST", "/v2/models/m/infer", inferBody); resp.StatusCode != http.StatusOK {
			t.Fatalf("client got %d %s", resp.StatusCode, b)
		}
	}
	closeGateway(t, h)
	if w := shadowWindow(t, h, 2); w.Requests != 3 || w.Compared != 3 || w.Disagreed != 0 || w.ScoreElements != 3 {
		t.Errorf("OIP shadow window %+v, want 3 agreeing answers of one score each", w)
	}

	stream := func(words ...string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			for _, word := range words {
				fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	primary, same, other := stream("hel", "lo"), stream("h", "ello"), stream("hel", "p")
	for _, tc := range []struct {
		shadow   *httptest.Server
		disagree uint64
	}{{same, 0}, {other, 1}} {
		h := newHarness(t, nil, shadowed(remote(t, 0, 0, primary.URL, runtime.ProtocolOpenAI), remote(t, 0, 0, tc.shadow.URL, runtime.ProtocolOpenAI), 100))
		if resp, b := h.do("POST", "/v1/chat/completions", `{"model":"m","stream":true,"messages":[]}`); resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"lo"`) {
			t.Fatalf("client got %d %s", resp.StatusCode, b)
		}
		closeGateway(t, h)
		if w := shadowWindow(t, h, 2); w.Compared != 1 || w.Disagreed != tc.disagree || w.LabelElements != 1 {
			t.Errorf("streamed chat shadow window %+v, want %d disagreement in 1", w, tc.disagree)
		}
	}
}
