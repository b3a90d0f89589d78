package controller

import (
	"context"
	"errors"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/rollout"
	"github.com/slipway-ml/slipway/internal/store"
)

// carryOut makes a stored state's actions true: the deployment's split
// first (one atomic route swap, the part that matters in a rollback),
// then the environment's aliases. Both state an end, so doing it twice
// changes nothing the second time.
func (c *Controller) carryOut(ctx context.Context, id int64, a rollout.Actions) error {
	if _, err := c.cfg.Deployments.ApplySplit(ctx, actorName(id), a.Model, a.Environment, split(a)); err != nil {
		return err
	}
	if a.Aliases == nil {
		return nil
	}
	return c.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return moveAliases(ctx, tx, actorName(id), c.cfg.Clock.Now(), a.Model, *a.Aliases)
	})
}

// split is the deployment split an action asks for.
func split(a rollout.Actions) deployment.Split {
	t := a.Traffic
	s := deployment.Split{Weights: map[int]int{}, Stable: a.Stable, Sticky: t.Sticky}
	if !a.RetireCandidate {
		s.Weights[a.Candidate] = t.Candidate
	}
	if !t.BaselineRetired {
		s.Weights[a.Baseline] = t.Baseline
	}
	if t.ShadowPercent > 0 && !a.RetireCandidate {
		s.Shadow = &domain.Shadow{Version: a.Candidate, Percent: t.ShadowPercent}
	}
	return s
}

// moveAliases points m's aliases at m.To; with m.From set, only those
// still pointing at m.From, so putting them back never undoes a later,
// unrelated move. A version archived since cannot take an alias; it is
// left where it is rather than blocking the rest forever.
func moveAliases(ctx context.Context, tx store.Tx, actor string, now time.Time, model string, m rollout.AliasMove) error {
	v, err := tx.GetVersion(ctx, model, m.To)
	if err != nil {
		return err
	}
	if v.State == domain.StateArchived {
		return nil
	}
	for _, name := range m.Aliases {
		cur, err := tx.GetAlias(ctx, model, name)
		switch {
		case err != nil && !errors.Is(err, domain.ErrNotFound):
			return err
		case m.From != 0 && (err != nil || cur.Version != m.From):
			continue
		case err == nil && cur.Version == m.To:
			continue
		}
		if _, _, err := registry.MoveAlias(ctx, tx, actor, now, v, name, nil); err != nil {
			return err
		}
	}
	return nil
}
