// Package requestid names requests: the API and the gateway both accept a
// caller's X-Request-ID when it is safe to log as is, and make one up
// otherwise. Standard library only.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
)

// Header is where a request ID travels.
const Header = "X-Request-ID"

// Valid reports whether s is short and tame enough to be logged without
// escaping: 1 to 64 ASCII letters, digits, '-', '_' or '.'.
func Valid(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// New returns 64 random bits in hex.
func New() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// From returns the caller's ID when it is valid, a new one otherwise.
func From(s string) string {
	if Valid(s) {
		return s
	}
	return New()
}
