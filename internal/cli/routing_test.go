package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/slipway-ml/slipway/internal/domain"
)

// routing set's flags go through the domain's parsers, and a bad one is
// named in the error before anything is sent.
func TestRoutingSetFlags(t *testing.T) {
	cases := []struct {
		args []string
		err  string // "" for success
		want string // the policy's JSON when it parses
	}{
		{[]string{"--sticky", "header:X-User-ID", "--rule", "header:X-Tester=yes -> 3", "--rule", "header:X-Region ^= eu-, us- -> v2"}, "",
			`{"sticky":{"header":"X-User-ID"},"rules":["header:X-Tester=yes -> 3","header:X-Region^=eu-, us- -> 2"]}`},
		{[]string{"--sticky", "json:parameters.user_id", "--shadow", "3=12.5%", "--rate", "50", "--max-concurrency", "4"}, "",
			`{"sticky":{"field":"parameters.user_id"},"shadow":{"version":3,"percent":12.5},"limits":{"requests_per_second":50,"max_concurrency":4}}`},
		{[]string{"--burst", "0"}, "", `{"limits":{}}`},
		{nil, "routing clear", ""},
		{[]string{"--sticky", ""}, "", `{}`},
		{[]string{"--sticky", "cookie:id"}, "--sticky: sticky key", ""},
		{[]string{"--rule", "header:X-Tester=yes"}, "--rule: match rule", ""},
		{[]string{"--rule", "header:X-Tester=yes -> 0"}, "not a version number", ""},
		{[]string{"--shadow", "3"}, "--shadow: shadow", ""},
		{[]string{"--rate", "fast"}, "invalid argument", ""},
		{[]string{"--rate", "NaN"}, "--rate NaN is not a number", ""},
		{[]string{"--rate", "Inf"}, "--rate +Inf is not a number", ""},
	}
	for _, c := range cases {
		var f routingFlags
		fs := pflag.NewFlagSet("set", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs)
		err := fs.Parse(c.args)
		var p domain.Routing
		if err == nil {
			p, err = f.policy(fs)
		}
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one mentioning %q", c.args, err, c.err)
		case c.err == "":
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(p)
			if got := strings.TrimSpace(b.String()); got != c.want {
				t.Errorf("%q: policy %s, want %s", c.args, got, c.want)
			}
		}
	}
}

// routing get prints the policy in the order the gateway applies it.
func TestRoutingTable(t *testing.T) {
	rule, _ := domain.ParseMatchRule("header:X-Tester=yes -> 3")
	v := routingView{Model: "fraud", Environment: "production", Revision: 4, Routing: domain.Routing{
		Sticky: &domain.StickyKey{Header: "X-User-ID"}, Rules: []domain.MatchRule{rule},
		Limits: &domain.RouteLimits{RequestsPerSecond: 20},
	}}
	var out bytes.Buffer
	if err := printTable(&out, routingTable(v)()); err != nil {
		t.Fatal(err)
	}
	want := `MODEL  ENVIRONMENT  REVISION  POLICY  SETTING
fraud  production   4         rule 1  header:X-Tester=yes -> 3
fraud  production   4         sticky  header:X-User-ID
fraud  production   4         limits  20 requests/s, burst 20
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	_ = printTable(&out, routingTable(routingView{Model: "fraud", Environment: "dev", Revision: 1})())
	if !strings.Contains(out.String(), "split   random draw by the weights") {
		t.Errorf("empty policy:\n%s", out.String())
	}
}
