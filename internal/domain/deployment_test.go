package domain

import (
	"errors"
	"testing"
)

func TestDeploymentStable(t *testing.T) {
	served := func(ws ...int) []ServedVersion {
		var out []ServedVersion
		for i := 0; i+1 < len(ws); i += 2 {
			out = append(out, ServedVersion{Version: ws[i], Weight: ws[i+1]})
		}
		return out
	}
	cases := []struct {
		name               string
		versions           []ServedVersion
		stable             int
		wantDefault, wantV int
		invalid            bool
	}{
		{"highest weight", served(1, 10, 2, 90), 0, 2, 2, false},
		{"tie: lowest number", served(3, 50, 5, 50), 0, 3, 3, false},
		{"chosen one kept", served(1, 90, 2, 10), 2, 1, 2, false},
		{"chosen at weight 0", served(1, 100, 2, 0), 2, 1, 2, false},
		{"chosen not served", served(1, 100), 7, 1, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Deployment{Model: "m", Environment: "production", Versions: c.versions, Stable: c.stable}
			if got := d.DefaultStable(); got != c.wantDefault {
				t.Errorf("DefaultStable = %d, want %d", got, c.wantDefault)
			}
			if got := d.StableVersion(); got != c.wantV {
				t.Errorf("StableVersion = %d, want %d", got, c.wantV)
			}
			if err := d.Validate(); c.invalid != errors.Is(err, ErrInvalid) {
				t.Errorf("Validate = %v, invalid %v", err, c.invalid)
			}
		})
	}
	if (Deployment{}).DefaultStable() != 0 {
		t.Error("an empty deployment has a stable version")
	}
}
