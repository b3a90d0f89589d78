package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

func TestParseMatchRule(t *testing.T) {
	good := []struct {
		in   string
		want domain.MatchRule
		text string
	}{
		{"header:X-Tester=yes -> 3", domain.MatchRule{Header: "X-Tester", Op: domain.MatchEquals, Value: "yes", Version: 3}, "header:X-Tester=yes -> 3"},
		{"  header:X-Tester = yes->v3 ", domain.MatchRule{Header: "X-Tester", Op: domain.MatchEquals, Value: "yes", Version: 3}, "header:X-Tester=yes -> 3"},
		{"HEADER:X-Region^=eu- -> 2", domain.MatchRule{Header: "X-Region", Op: domain.MatchPrefix, Value: "eu-", Version: 2}, "header:X-Region^=eu- -> 2"},
		{"header:X-Beta -> 12", domain.MatchRule{Header: "X-Beta", Op: domain.MatchPresent, Version: 12}, "header:X-Beta -> 12"},
		{"header:X-Q=a=b c -> 1", domain.MatchRule{Header: "X-Q", Op: domain.MatchEquals, Value: "a=b c", Version: 1}, "header:X-Q=a=b c -> 1"},
	}
	for _, c := range good {
		got, err := domain.ParseMatchRule(c.in)
		if err != nil {
			t.Errorf("ParseMatchRule(%q): %v", c.in, err)
			continue
		}
		if got != c.want || got.String() != c.text {
			t.Errorf("ParseMatchRule(%q) = %+v (%s), want %+v (%s)", c.in, got, got, c.want, c.text)
		}
	}
	bad := map[string]string{
		"":                    "no \"-> VERSION\"",
		"header:X=1":          "no \"-> VERSION\"",
		"header:X=1 -> 0":     "not a version number",
		"header:X=1 -> 03":    "not a version number",
		"header:X=1 -> three": "not a version number",
		"cookie:X=1 -> 2":     "must start with header:",
		"header:=1 -> 2":      "header name is empty",
		"header:X Y=1 -> 2":   "may not contain",
		"header:X= -> 2":      "value to match is empty",
		"header:X=a->b -> 2":  "contain \"->\"",
		"header:X=\x01 -> 2":  "control character",
		"header:X^^=a -> 2":   "may not end in ^",
		"header:X=" + strings.Repeat("a", 300) + " -> 2": "at most 256",
	}
	for in, want := range bad {
		_, err := domain.ParseMatchRule(in)
		if err == nil || !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMatchRule(%q) = %v, want an invalid-input error containing %q", in, err, want)
		}
	}
}

func TestMatchRuleMatches(t *testing.T) {
	eq, _ := domain.ParseMatchRule("header:X-T=yes -> 2")
	pre, _ := domain.ParseMatchRule("header:X-T^=eu- -> 2")
	any, _ := domain.ParseMatchRule("header:X-T -> 2")
	cases := []struct {
		r       domain.MatchRule
		v       string
		present bool
		want    bool
	}{
		{eq, "yes", true, true}, {eq, "Yes", true, false}, {eq, "", false, false}, {eq, "yess", true, false},
		{pre, "eu-west", true, true}, {pre, "us-east", true, false}, {pre, "", false, false},
		{any, "", true, true}, {any, "x", true, true}, {any, "", false, false},
	}
	for _, c := range cases {
		if got := c.r.Matches(c.v, c.present); got != c.want {
			t.Errorf("%s matches %q (present %v) = %v, want %v", c.r, c.v, c.present, got, c.want)
		}
	}
}

func TestParseStickyKeyAndShadow(t *testing.T) {
	k, err := domain.ParseStickyKey("header:X-User-ID")
	if err != nil || k.Header != "X-User-ID" || k.String() != "header:X-User-ID" {
		t.Fatalf("header key: %+v %v", k, err)
	}
	k, err = domain.ParseStickyKey("json:parameters.user_id")
	if err != nil || k.Field != "parameters.user_id" || len(k.Path()) != 2 {
		t.Fatalf("json key: %+v %v", k, err)
	}
	for _, in := range []string{"", "user", "cookie:x", "header:", "json:", "json:a..b", "json:a.b.c.d.e", "header:X Y", `json:a"b`} {
		if _, err := domain.ParseStickyKey(in); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("ParseStickyKey(%q) = %v, want invalid", in, err)
		}
	}
	s, err := domain.ParseShadow("3=12.5%")
	if err != nil || s.Version != 3 || s.Percent != 12.5 {
		t.Fatalf("shadow: %+v %v", s, err)
	}
	for _, in := range []string{"3", "x=10", "3=0", "3=101", "3=NaN", "0=10", "3=ten"} {
		if _, err := domain.ParseShadow(in); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("ParseShadow(%q) = %v, want invalid", in, err)
		}
	}
}

func TestRoutingValidateAgainstDeployment(t *testing.T) {
	d := domain.Deployment{Model: "m", Environment: "production", Versions: []domain.ServedVersion{{Version: 1, Weight: 100}, {Version: 2, Weight: 0}}}
	rule := func(s string) domain.MatchRule { r, _ := domain.ParseMatchRule(s); return r }
	ok := domain.Routing{
		Sticky: &domain.StickyKey{Header: "X-User-ID"},
		Rules:  []domain.MatchRule{rule("header:X-Tester=yes -> 2")},
		Shadow: &domain.Shadow{Version: 2, Percent: 5},
		Limits: &domain.RouteLimits{RequestsPerSecond: 100, MaxConcurrency: 8},
	}
	d.Routing = ok
	if err := d.Validate(); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	bad := map[string]domain.Routing{
		"does not serve":   {Rules: []domain.MatchRule{rule("header:X=1 -> 3")}},
		"not served":       {Shadow: &domain.Shadow{Version: 3, Percent: 5}},
		"takes no live":    {Shadow: &domain.Shadow{Version: 1, Percent: 5}},
		"both header":      {Sticky: &domain.StickyKey{Header: "X", Field: "y"}},
		"neither":          {Sticky: &domain.StickyKey{}},
		"needs requests":   {Limits: &domain.RouteLimits{Burst: 3}},
		"requests_per_sec": {Limits: &domain.RouteLimits{RequestsPerSecond: -1}},
		"max_concurrency":  {Limits: &domain.RouteLimits{MaxConcurrency: -2}},
		"at most 32":       {Rules: make([]domain.MatchRule, 33)},
	}
	for want, r := range bad {
		d.Routing = r
		if err := d.Validate(); !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Validate = %v", want, err)
		}
	}
	if got := (domain.RouteLimits{RequestsPerSecond: 2.5}).EffectiveBurst(); got != 3 {
		t.Errorf("EffectiveBurst = %d, want 3", got)
	}
}

func TestRoutingJSONRoundTrip(t *testing.T) {
	in := `{"sticky":{"header":"X-User-ID"},"rules":["header:X-Tester = yes -> 2"],"shadow":{"version":2,"percent":10}}`
	var r domain.Routing
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(r)
	want := `{"sticky":{"header":"X-User-ID"},"rules":["header:X-Tester=yes -\u003e 2"],"shadow":{"version":2,"percent":10}}`
	if string(out) != want {
		t.Fatalf("round trip:\n got %s\nwant %s", out, want)
	}
	if err := json.Unmarshal([]byte(`{"rules":[{"header":"x"}]}`), &r); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("object rule: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"rules":["header:x -> 0"]}`), &r); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("bad rule: %v", err)
	}
}
