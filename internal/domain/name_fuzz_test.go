package domain

import (
	"errors"
	"testing"
)

// FuzzValidateName checks that ValidateName never panics and that every name
// it accepts has the documented shape, checked here without the regexp.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", "fraud-scorer", "-a", "A", "a\n", "é", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName("model", name)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateName(%q) = %v, want it to wrap ErrInvalid", name, err)
			}
			if wellFormedName(name) {
				t.Fatalf("ValidateName(%q) refused a well-formed name: %v", name, err)
			}
			return
		}
		if !wellFormedName(name) {
			t.Fatalf("ValidateName(%q) accepted a name outside the documented pattern", name)
		}
	})
}

// wellFormedName restates the documented rule byte by byte: 1..63 bytes,
// first [a-z0-9], the rest [a-z0-9._-].
func wellFormedName(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if i == 0 && !alnum {
			return false
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}
