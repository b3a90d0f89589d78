package domain_test

import (
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// FuzzParseMatchRule: the parser never panics, everything it accepts is
// valid, and its text form reads back as the same rule.
func FuzzParseMatchRule(f *testing.F) {
	for _, s := range []string{
		"header:X-Tester=yes -> 3", "header:X-Region^=eu- -> v2", "header:X-Beta -> 12",
		"header:X=a=b -> 1", "header:X^^=a -> 1", "header:X=a->b -> 2", " header : X = y -> 1 ",
		"HEADER:x=\u00e9 -> 4", "header:X=1 -> 03", "->", "header:->1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := domain.ParseMatchRule(s)
		if err != nil {
			return
		}
		d := domain.Deployment{Model: "m", Environment: "e", Versions: []domain.ServedVersion{{Version: r.Version, Weight: 100}}, Routing: domain.Routing{Rules: []domain.MatchRule{r}}}
		if err := d.Validate(); err != nil {
			t.Fatalf("ParseMatchRule(%q) accepted a rule Validate refuses: %v", s, err)
		}
		back, err := domain.ParseMatchRule(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseMatchRule(%q) = %+v; its text %q reads back as %+v, %v", s, r, r.String(), back, err)
		}
	})
}

// FuzzParseStickyKey: never panics; accepted keys round-trip.
func FuzzParseStickyKey(f *testing.F) {
	for _, s := range []string{"header:X-User-ID", "json:user", "json:parameters.user_id", "json:a..b", "header:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := domain.ParseStickyKey(s)
		if err != nil {
			return
		}
		back, err := domain.ParseStickyKey(k.String())
		if err != nil || back != k {
			t.Fatalf("ParseStickyKey(%q) = %+v; %q reads back as %+v, %v", s, k, k.String(), back, err)
		}
	})
}
