package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/rollout"
	"github.com/slipway-ml/slipway/internal/store"
)

// StartOptions are how a rollout is started.
type StartOptions struct {
	// Supersede ends the model's active rollout in the environment
	// (superseded, its baseline put back) before this one starts; without
	// it an active rollout is an ErrConflict naming it.
	Supersede bool
}

// Start creates a rollout from a Rollout document and hands it to its
// loop, which takes the first steps at once. The baseline is the version
// the environment serves now (its stable version); the candidate is the
// spec's, resolved now. When the environment has a gate policy the
// candidate must have passed it: a completed promotion into the
// environment. A failure stores nothing.
func (c *Controller) Start(ctx context.Context, who Actor, file string, data []byte, opt StartOptions) (domain.Rollout, error) {
	spec, err := rollout.ParseSpec(file, data)
	if err != nil {
		return domain.Rollout{}, err
	}
	if spec.Analysis != nil && c.cfg.Prometheus == nil {
		for i, r := range spec.Analysis.Rules {
			if r.Prometheus != nil {
				return domain.Rollout{}, fmt.Errorf("%s: analysis rule %d asks Prometheus, but this server has none (start it with --prometheus-url): %w", file, i+1, domain.ErrPrecondition)
			}
		}
	}
	if !slices.Contains(c.cfg.Deployments.Environments(), spec.Environment) {
		return domain.Rollout{}, fmt.Errorf("%s: environment %q is not one of %v: %w", file, spec.Environment, c.cfg.Deployments.Environments(), domain.ErrInvalid)
	}
	cand, err := c.cfg.Versions.GetVersion(ctx, spec.Model, registry.Ref(spec.Candidate.String()))
	if err != nil {
		return domain.Rollout{}, fmt.Errorf("%s: candidate %s: %w", file, spec.Candidate, err)
	}
	if cand.State == domain.StateArchived {
		return domain.Rollout{}, fmt.Errorf("%s: version %d of %q is archived and cannot be rolled out: %w", file, cand.Number, spec.Model, domain.ErrPrecondition)
	}
	promotion, err := c.gatePassed(ctx, spec.Model, spec.Environment, cand.Number)
	if err != nil {
		return domain.Rollout{}, err
	}
	baseline, err := c.baseline(ctx, spec.Model, spec.Environment, cand.Number)
	if err != nil {
		return domain.Rollout{}, err
	}
	if opt.Supersede {
		// Checked above, so a refused start ends nothing; the superseded
		// rollout puts its baseline back, which is what serves now.
		if err := c.supersede(ctx, who, spec.Model, spec.Environment); err != nil {
			return domain.Rollout{}, err
		}
		if baseline, err = c.baseline(ctx, spec.Model, spec.Environment, cand.Number); err != nil {
			return domain.Rollout{}, err
		}
	}
	r, err := rollout.NewRollout(spec, baseline, cand.Number, who.Name, c.cfg.Clock.Now())
	if err != nil {
		return domain.Rollout{}, err
	}
	r.PromotionID = promotion
	err = c.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if r, err = tx.CreateRollout(ctx, r); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{
			Time: r.CreatedAt, Actor: who.Name, Action: "rollout.create", Subject: subject(r),
			After: audit.Document(map[string]any{
				"strategy": r.Strategy, "baseline": r.Baseline, "candidate": r.Candidate, "candidate_ref": r.CandidateRef,
				"promotion": r.PromotionID, "spec": r.Spec,
			}),
		})
		return err
	})
	if err != nil {
		return domain.Rollout{}, err
	}
	rn := c.ensure(r.ID)
	// The first steps (start, candidate beside the baseline at 0 %) run
	// now. A candidate that cannot be served (its runtime does not start,
	// it speaks another protocol) fails the rollout at once, the baseline
	// untouched, and the caller sees why in the rollout returned. A store
	// error is left to the loop, which tries again: the rollout exists.
	if _, err := rn.tick(ctx, nil); err != nil {
		c.cfg.Log.Warn("a new rollout's first steps failed; its loop tries again", "rollout", r.ID, "err", err.Error())
	} else if rn.failFast(ctx) {
		c.cfg.Log.Warn("a new rollout's candidate cannot be served; the rollout failed", "rollout", r.ID)
	}
	rn.poke()
	return rn.current(), nil
}

// baseline is the version model serves in env now (its stable version),
// which a rollout of candidate compares with.
func (c *Controller) baseline(ctx context.Context, model, env string, candidate int) (int, error) {
	dep, err := c.cfg.Store.GetDeployment(ctx, model, env)
	if errors.Is(err, domain.ErrNotFound) {
		return 0, fmt.Errorf("%q is not deployed in %s, so there is no baseline to compare with; deploy a first version (slipway deploy %s VERSION --env %s): %w",
			model, env, model, env, domain.ErrPrecondition)
	}
	if err != nil {
		return 0, err
	}
	b := dep.StableVersion()
	if b == candidate {
		return 0, fmt.Errorf("version %d already serves %q in %s (it is the stable version); roll out another version: %w", candidate, model, env, domain.ErrPrecondition)
	}
	return b, nil
}

// gatePassed returns the completed promotion of version into env, 0
// when env has no gate policy, or why the version may not be rolled out.
func (c *Controller) gatePassed(ctx context.Context, model, env string, version int) (int64, error) {
	if _, err := c.cfg.Store.GetGatePolicy(ctx, model, env); errors.Is(err, domain.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	ps, _, err := c.cfg.Store.ListPromotions(ctx, store.PromotionFilter{Model: model, Environment: env, Version: version, State: domain.PromotionCompleted}, store.Page{Limit: 1})
	if err != nil {
		return 0, err
	}
	if len(ps) == 0 {
		return 0, fmt.Errorf("version %d of %q has not passed the %s gate: promote it first (slipway promote %s %d --to %s) and roll it out once approved: %w",
			version, model, env, model, version, env, domain.ErrPrecondition)
	}
	return ps[0].ID, nil
}

// supersede ends the active rollout of model in env, if any.
func (c *Controller) supersede(ctx context.Context, who Actor, model, env string) error {
	old, err := c.cfg.Store.ActiveRollout(ctx, model, env)
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = c.Command(ctx, who, old.ID, rollout.CommandSupersede, "superseded by a new rollout")
	return err
}

// Get returns a rollout.
func (c *Controller) Get(ctx context.Context, id int64) (domain.Rollout, error) {
	return c.cfg.Store.GetRollout(ctx, id)
}

// List returns rollouts newest first.
func (c *Controller) List(ctx context.Context, f store.RolloutFilter, p store.Page) ([]domain.Rollout, string, error) {
	return c.cfg.Store.ListRollouts(ctx, f, p)
}

// Status is a rollout with its plan and the judge's latest verdict, for
// `slipway rollout status` and `watch`.
type Status struct {
	Rollout domain.Rollout `json:"rollout"`
	// Steps are the plan's steps in order; the rollout's Step indexes them.
	Steps []PlanStep `json:"steps"`
	// Live is the judge's latest verdict on the current run (nil when
	// nothing is judged now, or this process has not judged it yet).
	Live *Live `json:"live,omitempty"`
}

// PlanStep is one step of a plan, for people.
type PlanStep struct {
	Kind        rollout.StepKind `json:"kind"`
	Description string           `json:"description"`
}

// Status returns rollout id with its plan and live verdict.
func (c *Controller) Status(ctx context.Context, id int64) (Status, error) {
	r, err := c.cfg.Store.GetRollout(ctx, id)
	if err != nil {
		return Status{}, err
	}
	st, err := rollout.Load(r)
	if err != nil {
		return Status{}, err
	}
	s := Status{Rollout: r}
	for _, p := range st.Plan.Steps {
		s.Steps = append(s.Steps, PlanStep{Kind: p.Kind, Description: p.String()})
	}
	if rn := c.lookup(id); rn != nil && r.Active() {
		if l := rn.live(); l != nil && l.Run == r.Run {
			s.Live = l
		}
	}
	return s, nil
}
