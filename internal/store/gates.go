package store

import (
	"context"

	"github.com/slipway-ml/slipway/internal/domain"
)

// PromotionFilter narrows a promotion listing; zero fields match all.
type PromotionFilter struct {
	Model       string
	Environment string
	State       domain.PromotionState
	Version     int
}

// GateReader is the read side of gate policies and promotions; Reader
// includes it.
type GateReader interface {
	// GetGatePolicy returns the latest revision of a model's policy for
	// an environment; ErrNotFound when none was applied.
	GetGatePolicy(ctx context.Context, model, env string) (domain.GatePolicy, error)
	// ListGatePolicies returns the latest revision of every policy of a
	// model ("" for every model), by model then environment.
	ListGatePolicies(ctx context.Context, model string) ([]domain.GatePolicy, error)

	GetPromotion(ctx context.Context, id int64) (domain.Promotion, error)
	// ListPromotions returns promotions newest first (descending ID).
	ListPromotions(ctx context.Context, f PromotionFilter, p Page) (promotions []domain.Promotion, next string, err error)
}

// GateWriter is the write side; Tx includes it.
type GateWriter interface {
	// CreateGatePolicy stores the next revision of a policy (it assigns
	// Revision: 1 + the latest); ErrNotFound when the model does not exist.
	CreateGatePolicy(ctx context.Context, p domain.GatePolicy) (domain.GatePolicy, error)

	// CreatePromotion assigns the next ID and stores p.
	CreatePromotion(ctx context.Context, p domain.Promotion) (domain.Promotion, error)
	// UpdatePromotion replaces a promotion's state, decisions, reason,
	// previous version and times. Only a pending promotion changes:
	// ErrPrecondition for one that ended.
	UpdatePromotion(ctx context.Context, p domain.Promotion) error
}
