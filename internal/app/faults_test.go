package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

func TestParseFaultEnvs(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"dev,staging", "[dev staging]", ""},
		{"", "[]", ""},
		{"  ", "[]", ""},
		{" staging , production ", "[staging production]", ""},
		{"dev,dev", "[dev]", ""},
		{"qa", "", `"qa" is not an environment`},
		{"dev,,staging", "", "--fault-injection-envs"},
		{"Prod!", "", "--fault-injection-envs"},
	} {
		got, err := parseFaultEnvs(c.in, domain.DefaultEnvironments)
		switch {
		case c.err == "" && (err != nil || fmt.Sprint(got) != c.want):
			t.Errorf("%q: %v, %v; want %s", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: %v, %v; want an error naming %q", c.in, got, err, c.err)
		}
	}
}
