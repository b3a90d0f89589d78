package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

// policyRoute serves versions 1 (70), 2 (30) and 3 (0) with the rules
// given in text form and a sticky key ("" for none).
func policyRoute(t *testing.T, sticky string, rules ...string) *deployment.Route {
	t.Helper()
	r := &deployment.Route{Model: "fraud", Environment: "production", Stable: 1,
		Versions: []deployment.RouteVersion{{Version: 1, Weight: 70}, {Version: 2, Weight: 30}, {Version: 3}}}
	if sticky != "" {
		k, err := domain.ParseStickyKey(sticky)
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

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// constDraw is a Rand that always draws u.
func constDraw(u int) func(int) int { return func(int) int { return u } }

// TestPickVersionOrder walks the order of evaluation: rules first (first
// match wins), then the sticky key, then the draw.
func TestPickVersionOrder(t *testing.T) {
	rules := []string{"header:X-Tester=yes -> 3", "header:X-Region^=eu- -> 2", "header:X-Beta -> 3", "header:X-Tester -> 2"}
	bucketOf := func(key string) int { return policyRoute(t, "").Bucket([]byte(key)) }
	// Two users on either side of the 70/30 boundary.
	var low, high string
	for i := 0; low == "" || high == ""; i++ {
		u := "user-" + strconv.Itoa(i)
		if b := bucketOf(u); b < 70 && low == "" {
			low = u
		} else if b >= 70 && high == "" {
			high = u
		}
	}
	cases := []struct {
		name    string
		sticky  string
		h       http.Header
		body    string
		draw    int
		version int
		by      routedBy
	}{
		{"no policy: the draw", "", nil, "", 69, 1, routedSplit},
		{"no policy: the draw past 70", "", nil, "", 70, 2, routedSplit},
		{"equals", "", header("X-Tester", "yes"), "", 0, 3, routedRule},
		{"equals is exact", "", header("X-Tester", "Yes"), "", 0, 2, routedRule}, // the presence rule, 4th
		{"header names are case-insensitive", "", header("x-tester", "yes"), "", 0, 3, routedRule},
		{"any of the header's values", "", header("X-Tester", "no", "X-Tester", "yes"), "", 0, 3, routedRule},
		{"prefix", "", header("X-Region", "eu-west-1"), "", 0, 2, routedRule},
		{"prefix not matching", "", header("X-Region", "us-east-1"), "", 0, 1, routedSplit},
		{"presence with an empty value", "", header("X-Beta", ""), "", 0, 3, routedRule},
		{"first match wins", "", header("X-Region", "eu-1", "X-Beta", "1"), "", 0, 2, routedRule},
		{"rule before sticky", "header:X-User-ID", header("X-User-ID", low, "X-Beta", "1"), "", 0, 3, routedRule},
		{"sticky low bucket", "header:X-User-ID", header("X-User-ID", low), "", 99, 1, routedSticky},
		{"sticky high bucket", "header:X-User-ID", header("X-User-ID", high), "", 0, 2, routedSticky},
		{"sticky key missing: the draw", "header:X-User-ID", nil, "", 99, 2, routedSplit},
		{"sticky key empty: the draw", "header:X-User-ID", header("X-User-ID", ""), "", 99, 2, routedSplit},
		{"json sticky", "json:user", nil, `{"user":"` + high + `"}`, 0, 2, routedSticky},
		{"json sticky nested", "json:parameters.user_id", nil, `{"inputs":[],"parameters":{"user_id":"` + low + `"}}`, 99, 1, routedSticky},
		{"json sticky escaped is the same key", "json:user", nil, `{"user":"` + strings.Replace(high, "u", `\u0075`, 1) + `"}`, 0, 2, routedSticky},
		{"json sticky absent", "json:user", nil, `{"model":"m"}`, 99, 2, routedSplit},
		{"json sticky without a body", "json:user", nil, "", 99, 2, routedSplit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rt := policyRoute(t, c.sticky, rules...)
			h := c.h
			if h == nil {
				h = http.Header{}
			}
			rv, by := pickVersion(rt, h, []byte(c.body), constDraw(c.draw))
			if rv == nil || rv.Version != c.version || by != c.by {
				t.Errorf("picked %+v by %v, want version %d by %v", rv, by, c.version, c.by)
			}
		})
	}
}

// A rule whose version could not start has no target: its requests take
// the split, as if the rule were not there.
func TestRuleWithoutTargetFallsThrough(t *testing.T) {
	rt := policyRoute(t, "", "header:X-Tester=yes -> 3")
	rt.Rules[0].Target = nil
	rv, by := pickVersion(rt, header("X-Tester", "yes"), nil, constDraw(75))
	if rv == nil || rv.Version != 2 || by != routedSplit {
		t.Errorf("picked %+v by %v, want version 2 by the split", rv, by)
	}
}

// No version taking traffic and no rule matching: nil, and the gateway
// answers 503.
func TestPickVersionNoTraffic(t *testing.T) {
	rt := &deployment.Route{Model: "m", Versions: []deployment.RouteVersion{{Version: 1}}}
	if rv, _ := pickVersion(rt, http.Header{}, nil, constDraw(0)); rv != nil {
		t.Errorf("picked %+v from a route without weights", rv)
	}
}

func TestJSONStickyKey(t *testing.T) {
	cases := []struct {
		body, path, key string
		ok              bool
	}{
		{`{"user":"alice"}`, "user", "alice", true},
		{`{"user":"al\"ice"}`, "user", `al"ice`, true},
		{`{"user":"\u00e9"}`, "user", "é", true},
		{`{"user":42}`, "user", "42", true},
		{`{"user":-1.5e3}`, "user", "-1.5e3", true},
		{`{"user":true}`, "user", "true", true},
		{`{ "a" : { "b" : { "c" : "deep" } } }`, "a.b.c", "deep", true},
		{`{"user":""}`, "user", "", false},
		{`{"user":"\u0000"}`, "user", "\x00", true},
		{`{"user":null}`, "user", "", false},
		{`{"user":{"id":1}}`, "user", "", false},
		{`{"user":[1]}`, "user", "", false},
		{`{"user":"a","user":"b"}`, "user", "", false},
		{`{"a":{"user":"x"}}`, "user", "", false},
		{`{"a":"not an object"}`, "a.b", "", false},
		{`[{"user":"x"}]`, "user", "", false},
		{`{"user":"x"`, "user", "", false},
		{`{"user":"x"} trailing`, "user", "", false},
		{``, "user", "", false},
	}
	for _, c := range cases {
		key, ok := jsonStickyKey([]byte(c.body), c.path)
		if ok != c.ok || string(key) != c.key {
			t.Errorf("%s at %s: %q %v, want %q %v", c.body, c.path, key, ok, c.key, c.ok)
		}
	}
}

// Routing by header rules and header keys allocates nothing per request,
// given header names in canonical form as the deployment service compiles
// them (X-User-Id for X-User-ID).
func TestPickVersionAllocatesNothing(t *testing.T) {
	rt := policyRoute(t, "header:X-User-Id", "header:X-Tester=yes -> 3", "header:X-Region^=eu- -> 2")
	hs := []http.Header{header("X-User-ID", "user-123456789-abcdefghijklmnopqrstuvwxyz"), header("X-Tester", "yes"), header("X-Region", "eu-1"), {}}
	draw := constDraw(5)
	for _, h := range hs {
		if n := testing.AllocsPerRun(100, func() { _, _ = pickVersion(rt, h, nil, draw) }); n != 0 {
			t.Errorf("headers %v: %v allocations per pick", h, n)
		}
	}
}

// FuzzJSONStickyKey checks the key against encoding/json: whatever key it
// reads is, at that path of a valid document, a non-empty string (its
// unescaped text), a number or a boolean (its literal).
func FuzzJSONStickyKey(f *testing.F) {
	for _, s := range []string{
		`{"user":"alice"}`, `{"parameters":{"user_id":7}}`, `{"user":"a\u0062"}`, `{"user":null}`,
		`{"user":"a","user":"b"}`, `{"a":{"b":{"c":true}}}`, "{\"user\":\"\xff\"}", `{"user":1e999}`,
	} {
		f.Add([]byte(s), "user")
		f.Add([]byte(s), "parameters.user_id")
		f.Add([]byte(s), "a.b.c")
	}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		if k, err := domain.ParseStickyKey("json:" + path); err != nil || k.Field != path {
			return
		}
		key, ok := jsonStickyKey(body, path)
		if !ok {
			return
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("read key %q from %q, which encoding/json refuses: %v", key, body, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("read key %q from %q, which has data after its object", key, body)
		}
		for _, seg := range strings.Split(path, ".") {
			m, isObj := v.(map[string]any)
			if !isObj {
				t.Fatalf("read key %q from %q at %s, which encoding/json does not find", key, body, path)
			}
			v = m[seg]
		}
		switch v := v.(type) {
		case string:
			if v == "" {
				t.Fatalf("read key %q from %q at %s, an empty string", key, body, path)
			}
			if utf8.ValidString(v) && utf8.Valid(key) && string(key) != v {
				t.Fatalf("read key %q from %q at %s; encoding/json reads %q", key, body, path, v)
			}
		case json.Number:
			if string(key) != string(v) {
				t.Fatalf("read key %q from %q at %s; encoding/json reads %v", key, body, path, v)
			}
		case bool:
			if string(key) != strconv.FormatBool(v) {
				t.Fatalf("read key %q from %q at %s; encoding/json reads %v", key, body, path, v)
			}
		default:
			t.Fatalf("read key %q from %q at %s, where encoding/json has %T", key, body, path, v)
		}
	})
}

// BenchmarkPickVersion measures the policy's cost per request: a header
// rule miss then a header key, and a JSON key in a chat body.
func BenchmarkPickVersion(b *testing.B) {
	rules := []string{"header:X-Tester=yes -> 3", "header:X-Region^=eu- -> 2"}
	draw := constDraw(5)
	b.Run("header", func(b *testing.B) {
		rt := policyRoute(&testing.T{}, "header:X-User-Id", rules...)
		h := header("X-User-ID", "user-1234567", "Content-Type", "application/json")
		b.ReportAllocs()
		for b.Loop() {
			_, _ = pickVersion(rt, h, nil, draw)
		}
	})
	b.Run("json", func(b *testing.B) {
		rt := policyRoute(&testing.T{}, "json:user", rules...)
		body := []byte(`{"model":"chat","messages":[{"role":"user","content":"hello there"}],"temperature":0.2,"user":"user-1234567"}`)
		h := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = pickVersion(rt, h, body, draw)
		}
	})
}
