package store

import (
	"context"

	"github.com/slipway-ml/slipway/internal/domain"
)

// RolloutFilter narrows a rollout listing; zero fields match all, and
// every given field must match.
type RolloutFilter struct {
	Model       string
	Environment string
	Phase       domain.RolloutPhase
	// Active keeps only rollouts that have not ended.
	Active bool
	// NotInEffect keeps only rollouts whose stored state the controller
	// has not yet carried out, terminal ones included: what it redoes
	// after a restart.
	NotInEffect bool
}

// RolloutReader is the read side of rollouts; Reader includes it.
type RolloutReader interface {
	GetRollout(ctx context.Context, id int64) (domain.Rollout, error)
	// ListRollouts returns rollouts newest first (descending ID). An
	// unknown phase in the filter is ErrInvalid.
	ListRollouts(ctx context.Context, f RolloutFilter, p Page) (rollouts []domain.Rollout, next string, err error)
	// ActiveRollout returns the rollout of a model in an environment that
	// has not ended; ErrNotFound when there is none.
	ActiveRollout(ctx context.Context, model, env string) (domain.Rollout, error)
}

// RolloutWriter is the write side; Tx includes it. Rollouts are
// write-ahead (docs/adr/009-rollout-write-ahead.md): the controller
// stores each new state with UpdateRollout before it acts on it.
type RolloutWriter interface {
	// CreateRollout assigns the next ID and Revision 1 and stores r,
	// which must be valid and active (ErrInvalid). The model and both
	// versions must exist (ErrNotFound). A model has at most one active
	// rollout per environment: ErrConflict, naming the active one, when
	// it has one.
	CreateRollout(ctx context.Context, r domain.Rollout) (domain.Rollout, error)
	// UpdateRollout stores r over rollout r.ID if, and only if, its
	// stored Revision is still expectedRevision (ErrConflict otherwise:
	// reload and decide again), and returns it as stored, its Revision
	// bumped. The model, environment, strategy, versions, candidate ref,
	// spec and creation never change (ErrInvalid). A rollout that has
	// ended changes once at most, from not in effect to in effect with
	// nothing else but UpdatedAt (ErrPrecondition otherwise). ErrNotFound
	// when there is no such rollout. Rollouts are never deleted.
	UpdateRollout(ctx context.Context, r domain.Rollout, expectedRevision int64) (domain.Rollout, error)
}
