package domain

import (
	"fmt"
	"regexp"
)

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateName checks a model, alias or token name against the one pattern
// slipway uses for every name a person types: lower case, digits, '.', '_'
// and '-', starting with a letter or digit, at most 63 characters.
func ValidateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty: %w", kind, ErrInvalid)
	}
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s name %q must match %s (lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters): %w",
			kind, truncate(name, 80), namePattern.String(), ErrInvalid)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
