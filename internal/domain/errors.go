package domain

import "errors"

// The five domain errors. Every package wraps one of them with a message that
// names the thing ("alias %q of model %q: %w"); the API maps them to HTTP
// status codes in a single place.
var (
	// ErrNotFound: the named thing does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request collides with current state (a duplicate name,
	// an expected version that is no longer current).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input itself is malformed, whatever the state.
	ErrInvalid = errors.New("invalid")
	// ErrPrecondition: the input is well formed but the current state does
	// not allow it (an illegal lifecycle transition, an archived target).
	ErrPrecondition = errors.New("precondition failed")
	// ErrUnavailable: a dependency is down or the server is shutting down.
	ErrUnavailable = errors.New("unavailable")
)
