package app

import (
	"fmt"
	"slices"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
)

// parseFaultEnvs reads --fault-injection-envs: environment names,
// comma-separated, each one of envs; empty (or only blanks) allows
// fault injection nowhere. The list comes back without duplicates.
func parseFaultEnvs(s string, envs []string) ([]string, error) {
	var out []string
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if err := domain.ValidateName("environment", name); err != nil {
			return nil, fmt.Errorf("--fault-injection-envs: %w", err)
		}
		if !slices.Contains(envs, name) {
			return nil, fmt.Errorf("--fault-injection-envs: %q is not an environment (environments: %s)", name, strings.Join(envs, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}
