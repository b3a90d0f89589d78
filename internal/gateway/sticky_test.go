package gateway

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// okModel answers every infer with the same small OIP answer: the tests
// here count versions, not sums.
var okModel = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"model_name":"fraud","outputs":[]}`)
})

// split serves fraud at versions 1 and 2 with weights w1 and 100-w1,
// sticky on key (text form, "" for none), version 1 stable.
func split(t *testing.T, w1 int, key string, rules ...string) *deployment.Route {
	t.Helper()
	r := withStable(route("fraud", "production", inProcess(1, w1, okModel), inProcess(2, 100-w1, okModel)), 1)
	if key != "" {
		k, err := domain.ParseStickyKey(key)
		if err != nil {
			t.Fatal(err)
		}
		r.Sticky = &k
	}
	for _, s := range rules {
		m, err := domain.ParseMatchRule(s)
		if err != nil {
			t.Fatal(err)
		}
		r.Rules = append(r.Rules, deployment.RouteRule{MatchRule: m, Target: r.Version(m.Version)})
	}
	return r
}

// versionOf sends one request and returns the version that answered.
func (h *harness) versionOf(path, body string, header ...string) string {
	h.t.Helper()
	resp, b := h.do("POST", path, body, header...)
	if resp.StatusCode != 200 {
		h.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	return resp.Header.Get(HeaderVersion)
}

// One user always gets the same version while the weights stay put,
// whatever the random draws say; and users spread by the weights.
func TestStickyUnderUnchangedWeights(t *testing.T) {
	const users, repeats = 200, 10
	h := newHarness(t, nil, split(t, 50, "header:X-User-ID"))
	first := map[string]string{}
	perVersion := map[string]int{}
	for i := range repeats {
		for u := range users {
			id := "user-" + strconv.Itoa(u)
			v := h.versionOf("/v2/models/fraud/infer", inferBody, "X-User-ID", id)
			if i == 0 {
				first[id] = v
				perVersion[v]++
			} else if v != first[id] {
				t.Fatalf("%s got version %s, then %s on request %d", id, first[id], v, i+1)
			}
		}
		if i == 0 {
			// A new table with the same weights (a redeploy publishes one)
			// keeps everyone in place too.
			h.routes.t.Store(deployment.NewTable(split(t, 50, "header:X-User-ID")))
		}
	}
	// 200 users at 50/50: 4 SD is ±28.
	if d := math.Abs(float64(perVersion["1"] - 100)); d > 28 || perVersion["1"]+perVersion["2"] != users {
		t.Errorf("users per version %v, want about 100 each", perVersion)
	}
}

// When the weights move from 90/10 to 80/20, about a tenth of the users
// move, all from version 1 to version 2: only the buckets that changed
// owner move.
func TestStickyMinimalMovement(t *testing.T) {
	const users = 10_000
	h := newHarness(t, nil, split(t, 90, "header:X-User-ID"))
	before := make([]string, users)
	on := map[string]int{}
	for u := range users {
		before[u] = h.versionOf("/v2/models/fraud/infer", inferBody, "X-User-ID", "u"+strconv.Itoa(u))
		on[before[u]]++
	}
	if share := 100 * float64(on["2"]) / users; math.Abs(share-10) > 2 {
		t.Fatalf("at 90/10, version 2 has %.2f %% of the users", share)
	}
	h.routes.t.Store(deployment.NewTable(split(t, 80, "header:X-User-ID")))
	moved := map[string]int{}
	for u := range users {
		if after := h.versionOf("/v2/models/fraud/infer", inferBody, "X-User-ID", "u"+strconv.Itoa(u)); after != before[u] {
			moved[before[u]+"→"+after]++
		}
	}
	if len(moved) != 1 || moved["1→2"] == 0 {
		t.Fatalf("moves %v; want only 1→2", moved)
	}
	// Each bucket holds about 1 % of the users; ten change owner.
	if share := 100 * float64(moved["1→2"]) / users; math.Abs(share-10) > 2 {
		t.Errorf("%.2f %% of the users moved, want about 10 %%", share)
	}
}

// A JSON field keeps a caller on one version: a nested OIP parameter and
// OpenAI's top-level "user". Without the field the split is random and
// holds its ratio.
func TestStickyJSONField(t *testing.T) {
	t.Run("OIP parameters.user_id", func(t *testing.T) {
		h := newHarness(t, nil, split(t, 50, "json:parameters.user_id"))
		for u := range 40 {
			body := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"user_id":"u%d"}}`, u)
			first := h.versionOf("/v2/models/fraud/infer", body)
			for range 5 {
				if v := h.versionOf("/v2/models/fraud/infer", body); v != first {
					t.Fatalf("user u%d got version %s, then %s", u, first, v)
				}
			}
			// The same user written with an escape is the same key.
			esc := fmt.Sprintf(`{"parameters":{"user_id":"\u0075%d"},"inputs":[]}`, u)
			if v := h.versionOf("/v2/models/fraud/infer", esc); v != first {
				t.Fatalf("user u%d escaped got version %s, unescaped %s", u, v, first)
			}
		}
	})
	t.Run("OpenAI user", func(t *testing.T) {
		llm := func(v int) *openAIServer {
			return newOpenAIServer(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"id":"c","object":"chat.completion","model":"v%d","choices":[]}`, v)
			})
		}
		r := route("chat", "production", llmVersion(t, 1, 50, llm(1).URL), llmVersion(t, 2, 50, llm(2).URL))
		r.Sticky = &domain.StickyKey{Field: "user"}
		h := newHarness(t, nil, r)
		got := map[string]int{}
		for u := range 30 {
			body := fmt.Sprintf(`{"model":"chat","user":"user-%d","messages":[{"role":"user","content":"hi"}]}`, u)
			first := h.versionOf("/v1/chat/completions", body)
			got[first]++
			for range 4 {
				if v := h.versionOf("/v1/chat/completions", body); v != first {
					t.Fatalf("user-%d got version %s, then %s", u, first, v)
				}
			}
		}
		if got["1"] == 0 || got["2"] == 0 {
			t.Errorf("30 users all on one version: %v", got)
		}
	})
}

// Requests without the sticky key take the random split, whose ratios
// hold (±2 points over 5,000; 7 SD at 80/20).
func TestStickyKeyMissingTakesTheSplit(t *testing.T) {
	const n = 5000
	h := newHarness(t, nil, split(t, 80, "header:X-User-ID"))
	got := map[string]int{}
	for range n {
		got[h.versionOf("/v2/models/fraud/infer", inferBody)]++
	}
	if share := 100 * float64(got["2"]) / n; math.Abs(share-20) > 2 || got["1"]+got["2"] != n {
		t.Errorf("without a key, version 2 served %.2f %% (%v), weight 20 %%", share, got)
	}
}

// Match rules send requests to their version whatever the weights, first
// match first; a rule to a version missing from the route (it failed to
// start, so the deployment service compiled the rule without a target)
// leaves its requests to the split.
func TestMatchRules(t *testing.T) {
	r := withStable(route("fraud", "production", inProcess(1, 100, okModel), inProcess(2, 0, okModel), inProcess(3, 0, okModel)), 1)
	for _, s := range []string{"header:X-Tester=yes -> 3", "header:X-Region^=eu- -> 2", "header:X-Beta -> 3", "header:X-Canary=1 -> 4"} {
		m, err := domain.ParseMatchRule(s)
		if err != nil {
			t.Fatal(err)
		}
		r.Rules = append(r.Rules, deployment.RouteRule{MatchRule: m, Target: r.Version(m.Version)}) // nil for 4
	}
	h := newHarness(t, nil, r)
	cases := []struct {
		name    string
		header  []string
		version string
	}{
		{"no header: the split", nil, "1"},
		{"equals", []string{"X-Tester", "yes"}, "3"},
		{"equals, other value", []string{"X-Tester", "no"}, "1"},
		{"prefix", []string{"X-Region", "eu-west-1"}, "2"},
		{"prefix, other region", []string{"X-Region", "us-east-1"}, "1"},
		{"presence", []string{"X-Beta", "anything"}, "3"},
		{"first match wins", []string{"X-Region", "eu-north-1", "X-Beta", "1"}, "2"},
		{"rule to a version that failed to start", []string{"X-Canary", "1"}, "1"},
	}
	for _, c := range cases {
		for range 20 { // weights alone would never pick 2 or 3
			if v := h.versionOf("/v2/models/fraud/infer", inferBody, c.header...); v != c.version {
				t.Fatalf("%s: version %s, want %s", c.name, v, c.version)
			}
		}
	}
	// A pinned path is not subject to the rules.
	if v := h.versionOf("/v2/models/fraud/versions/1/infer", inferBody, "X-Tester", "yes"); v != "1" {
		t.Errorf("pinned to 1 with a tester header: version %s", v)
	}
}

// A request routed by a rule is not pinned: while the rule's version has
// its breaker open, the stable version answers it and says so.
func TestRuleVersionFallsBackToStable(t *testing.T) {
	up := newFailingUpstream(t, up500)
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	r := withStable(route("fraud", "production", inProcess(1, 100, okModel), up.version(t, 2, 0, runtime.ProtocolOIP)), 1)
	m, _ := domain.ParseMatchRule("header:X-Tester=yes -> 2")
	r.Rules = []deployment.RouteRule{{MatchRule: m, Target: r.Version(2)}}
	h := newHarness(t, func(c *Config) {
		c.Clock = clk
		c.Breaker.ConsecutiveFailures = 1
	}, r)
	resp, b := h.doCtx("POST", "/v2/models/fraud/infer", inferBody, "X-Tester", "yes")
	if resp.StatusCode != 500 || resp.Header.Get(HeaderVersion) != "2" {
		t.Fatalf("first tester request: %d %s from %q; want the model's 500 from version 2", resp.StatusCode, b, resp.Header.Get(HeaderVersion))
	}
	for range 3 {
		resp, b = h.doCtx("POST", "/v2/models/fraud/infer", inferBody, "X-Tester", "yes")
		if resp.StatusCode != 200 || resp.Header.Get(HeaderVersion) != "1" || resp.Header.Get(HeaderFallbackFrom) != "2" {
			t.Fatalf("tester request, breaker open: %d %s version %q from %q; want the stable version, fallback from 2",
				resp.StatusCode, b, resp.Header.Get(HeaderVersion), resp.Header.Get(HeaderFallbackFrom))
		}
	}
	if up.hits.Load() != 1 {
		t.Errorf("version 2 reached %d times with its breaker open", up.hits.Load())
	}
	h.settle()
	if got := gather(t, h.reg)[`slipway_gateway_fallbacks_total{environment="production",from_version="2",model="fraud",to_version="1"}`]; got != 3 {
		t.Errorf("fallbacks_total = %v, want 3", got)
	}
}
