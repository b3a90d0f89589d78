package domain

import (
	"fmt"
	"strings"
)

// State is a version's lifecycle state.
type State string

// Lifecycle states.
const (
	StateRegistered State = "registered"
	StateStaging    State = "staging"
	StateProduction State = "production"
	StateArchived   State = "archived"
)

// States lists every lifecycle state.
var States = []State{StateRegistered, StateStaging, StateProduction, StateArchived}

// stateTransitions is the whole lifecycle: a version may move from the key
// state to any state in its list, and nowhere else. Archived versions may
// only come back to registered, so an old artifact re-enters through the
// same gates as a new one.
var stateTransitions = map[State][]State{
	StateRegistered: {StateStaging, StateProduction, StateArchived},
	StateStaging:    {StateRegistered, StateProduction, StateArchived},
	StateProduction: {StateStaging, StateArchived},
	StateArchived:   {StateRegistered},
}

// ParseState validates a state name.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(States))
	for i, st := range States {
		names[i] = string(st)
	}
	return "", fmt.Errorf("state %q is not one of %s: %w", s, strings.Join(names, ", "), ErrInvalid)
}

// CanTransition reports whether from -> to is a legal lifecycle move.
func CanTransition(from, to State) bool {
	for _, s := range stateTransitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// CheckTransition returns ErrPrecondition naming the legal targets when
// from -> to is not allowed.
func CheckTransition(from, to State) error {
	if CanTransition(from, to) {
		return nil
	}
	legal := make([]string, len(stateTransitions[from]))
	for i, s := range stateTransitions[from] {
		legal[i] = string(s)
	}
	return fmt.Errorf("cannot move a version from %s to %s; from %s it may move to %s: %w",
		from, to, from, strings.Join(legal, ", "), ErrPrecondition)
}
