package domain

import (
	"fmt"
	"strings"
	"time"
)

// Role is what a token may do. Every API endpoint declares the role it needs.
type Role string

// Roles. viewer reads; author registers models and versions; approver decides
// promotions; deployer moves aliases, lifecycle states and traffic; admin does
// all of it and manages tokens.
const (
	RoleViewer   Role = "viewer"
	RoleAuthor   Role = "author"
	RoleApprover Role = "approver"
	RoleDeployer Role = "deployer"
	RoleAdmin    Role = "admin"
)

// Roles lists every role.
var Roles = []Role{RoleViewer, RoleAuthor, RoleApprover, RoleDeployer, RoleAdmin}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return "", fmt.Errorf("role %q is not one of %s: %w", s, strings.Join(names, ", "), ErrInvalid)
}

// Allows reports whether a token holding r may call an endpoint that needs
// need. Every role may read; admin may do everything; the other duties are
// separate so one token cannot both push and approve. A role that is not one
// of Roles (empty, misspelt, from a damaged row) allows nothing: fail closed.
func (r Role) Allows(need Role) bool {
	if !r.known() {
		return false
	}
	switch {
	case r == RoleAdmin:
		return true
	case need == RoleViewer:
		return true
	default:
		return r == need
	}
}

func (r Role) known() bool {
	for _, k := range Roles {
		if r == k {
			return true
		}
	}
	return false
}

// Token is an API token as stored: never the secret, only its hash.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	Hash      []byte     `json:"-"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}
