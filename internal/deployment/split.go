package deployment

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// Split is what a rollout asks a deployment to serve: each version's
// weight, the version traffic falls back to, the version mirrored (nil:
// none) and the sticky key (nil: keep the deployment's own).
type Split struct {
	Weights map[int]int
	Stable  int
	Shadow  *domain.Shadow
	Sticky  *domain.StickyKey
}

// ApplySplit makes the deployment of model in env serve s, keeping its
// limits, its prices and faults of versions that stay, and the match
// rules whose version is still served. It is idempotent: when the
// deployment already serves s nothing is written and it is returned as
// it is, so a controller may carry a decision out again after a restart.
// Only the rollout controller calls it; people's changes go through
// Deploy, SetTraffic and SetRouting, which refuse while a rollout holds
// the deployment.
func (s *Service) ApplySplit(ctx context.Context, actor, model, env string, sp Split) (domain.Deployment, error) {
	if err := s.checkEnv(env); err != nil {
		return domain.Deployment{}, err
	}
	cur, err := s.cfg.Store.GetDeployment(ctx, model, env)
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		return domain.Deployment{}, err
	}
	served := make([]domain.ServedVersion, 0, len(sp.Weights))
	for v, w := range sp.Weights {
		served = append(served, domain.ServedVersion{Version: v, Weight: w})
	}
	slices.SortFunc(served, func(a, b domain.ServedVersion) int { return a.Version - b.Version })
	routing := cur.Routing
	routing.Shadow = sp.Shadow
	if sp.Sticky != nil {
		k := *sp.Sticky
		routing.Sticky = &k
	}
	routing.Rules = slices.DeleteFunc(slices.Clone(routing.Rules), func(m domain.MatchRule) bool {
		_, ok := sp.Weights[m.Version]
		return !ok
	})
	if len(routing.Rules) == 0 {
		routing.Rules = nil
	}
	if err == nil && sameSplit(cur, served, sp.Stable, routing) {
		return cur, nil
	}
	return s.change(ctx, actor, model, env, spec{served: served, stable: sp.Stable, routing: &routing, action: "deployment.rollout"}, nil)
}

// sameSplit reports whether d already serves exactly these weights,
// stable version and routing.
func sameSplit(d domain.Deployment, served []domain.ServedVersion, stable int, r domain.Routing) bool {
	if len(d.Versions) != len(served) || d.StableVersion() != stable {
		return false
	}
	for i, v := range d.Versions {
		if v.Version != served[i].Version || v.Weight != served[i].Weight {
			return false
		}
	}
	eqShadow := d.Routing.Shadow == nil && r.Shadow == nil ||
		d.Routing.Shadow != nil && r.Shadow != nil && *d.Routing.Shadow == *r.Shadow
	eqSticky := d.Routing.Sticky == nil && r.Sticky == nil ||
		d.Routing.Sticky != nil && r.Sticky != nil && *d.Routing.Sticky == *r.Sticky
	return eqShadow && eqSticky && slices.Equal(d.Routing.Rules, r.Rules)
}

// heldByRollout refuses a person's change to a deployment an active
// rollout is moving: the controller would undo it, or judge traffic it
// did not set.
func heldByRollout(ctx context.Context, tx store.Tx, model, env string) error {
	r, err := tx.ActiveRollout(ctx, model, env)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("rollout %d of %q in %s is %s and moves this deployment's traffic; abort it (slipway rollout abort %d; undo while it is promoting) before changing the split or routing by hand: %w",
		r.ID, model, env, r.Phase, r.ID, domain.ErrPrecondition)
}

// gated refuses a person's change that gives traffic to a version the
// environment's gate policy has not let in: with a policy, every version
// taking traffic it did not take before needs a completed promotion into
// the environment (slipway promote; an admin may --break-glass). Versions
// kept warm at 0 % and versions already serving are not asked again.
func gated(ctx context.Context, tx store.Tx, cur, next domain.Deployment) error {
	if _, err := tx.GetGatePolicy(ctx, next.Model, next.Environment); errors.Is(err, domain.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	for _, sv := range next.Versions {
		if sv.Weight == 0 || servesWithTraffic(cur, sv.Version) {
			continue
		}
		ps, _, err := tx.ListPromotions(ctx, store.PromotionFilter{Model: next.Model, Environment: next.Environment, Version: sv.Version, State: domain.PromotionCompleted}, store.Page{Limit: 1})
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return fmt.Errorf("version %d of %q has not passed the %s gate policy, so it may not take traffic there: promote it (slipway promote %s %d --to %s; an admin may add --break-glass --reason) and roll it out: %w",
				sv.Version, next.Model, next.Environment, next.Model, sv.Version, next.Environment, domain.ErrPrecondition)
		}
	}
	return nil
}

// servesWithTraffic reports whether d gives version n a weight above 0.
func servesWithTraffic(d domain.Deployment, n int) bool {
	for _, v := range d.Versions {
		if v.Version == n && v.Weight > 0 {
			return true
		}
	}
	return false
}
