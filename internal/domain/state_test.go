package domain

import (
	"errors"
	"strings"
	"testing"
)

// TestLifecycleTable walks every (from, to) cell of the lifecycle, including
// staying put, and asserts exactly the legal set.
func TestLifecycleTable(t *testing.T) {
	legal := map[State]map[State]bool{
		StateRegistered: {StateStaging: true, StateProduction: true, StateArchived: true},
		StateStaging:    {StateRegistered: true, StateProduction: true, StateArchived: true},
		StateProduction: {StateStaging: true, StateArchived: true},
		StateArchived:   {StateRegistered: true},
	}
	if len(legal) != len(States) {
		t.Fatalf("test table covers %d states, the domain has %d", len(legal), len(States))
	}
	cells := 0
	for _, from := range States {
		for _, to := range States {
			cells++
			want := legal[from][to]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
			err := CheckTransition(from, to)
			if want {
				if err != nil {
					t.Errorf("CheckTransition(%s, %s) = %v, want nil", from, to, err)
				}
				continue
			}
			if !errors.Is(err, ErrPrecondition) {
				t.Errorf("CheckTransition(%s, %s) = %v, want ErrPrecondition", from, to, err)
				continue
			}
			// The message names both ends and every legal target.
			msg := err.Error()
			if !strings.Contains(msg, string(from)) || !strings.Contains(msg, string(to)) {
				t.Errorf("CheckTransition(%s, %s) message %q does not name both states", from, to, msg)
			}
			for target := range legal[from] {
				if !strings.Contains(msg, string(target)) {
					t.Errorf("CheckTransition(%s, %s) message %q does not list legal target %s", from, to, msg, target)
				}
			}
		}
	}
	if cells != 16 {
		t.Fatalf("walked %d cells, want 16", cells)
	}
}

func TestLifecycleUnknownStates(t *testing.T) {
	for _, c := range [][2]State{{"", StateStaging}, {"bogus", StateRegistered}, {StateRegistered, ""}, {StateStaging, "bogus"}} {
		if CanTransition(c[0], c[1]) {
			t.Errorf("CanTransition(%q, %q) = true", c[0], c[1])
		}
		if err := CheckTransition(c[0], c[1]); !errors.Is(err, ErrPrecondition) {
			t.Errorf("CheckTransition(%q, %q) = %v, want ErrPrecondition", c[0], c[1], err)
		}
	}
}

// TestRoleAllows walks every (holder, need) pair of roles, plus holders that
// are empty or unknown, which must be allowed nothing.
func TestRoleAllows(t *testing.T) {
	holders := append(append([]Role{}, Roles...), "", "bogus", "Admin")
	for _, holder := range holders {
		for _, need := range Roles {
			var want bool
			switch holder {
			case RoleAdmin:
				want = true
			case RoleViewer, RoleAuthor, RoleApprover, RoleDeployer:
				want = need == RoleViewer || need == holder
			default:
				want = false
			}
			if got := holder.Allows(need); got != want {
				t.Errorf("Role(%q).Allows(%q) = %v, want %v", holder, need, got, want)
			}
		}
	}
	// The separation of duties the comment promises.
	if RoleAuthor.Allows(RoleApprover) || RoleApprover.Allows(RoleAuthor) {
		t.Error("author and approver must be separate duties")
	}
}
