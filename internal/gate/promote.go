package gate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/store"
)

// Request is a promotion request.
type Request struct {
	Model   string
	Version string // a number or @alias
	To      string // the environment
	// BreakGlass skips gates and approvals (admin only, with a Reason).
	BreakGlass bool
	Reason     string
}

// maxReason bounds reasons and comments.
const maxReason = 2000

// Promote judges a version against the gate policy of the environment it
// asks to enter and records the promotion: rejected with the failing
// rules, pending when people must approve, completed (aliases moved,
// state set) when nobody must. The version's evaluation on the policy's
// dataset is reused when one exists for the same dataset version, else
// run; so is the champion's when a rule compares with it. A version that
// already holds every alias of the environment is refused.
func (s *Service) Promote(ctx context.Context, who Actor, req Request) (domain.Promotion, error) {
	if !who.Role.Allows(domain.RoleAuthor) && !who.Role.Allows(domain.RoleDeployer) {
		return domain.Promotion{}, fmt.Errorf("requesting a promotion needs the author, deployer or admin role; %s has %s: %w", who.Name, who.Role, auth.ErrForbidden)
	}
	if err := s.checkEnv(req.To); err != nil {
		return domain.Promotion{}, err
	}
	if len(req.Reason) > maxReason {
		return domain.Promotion{}, fmt.Errorf("reason is %d bytes, at most %d allowed: %w", len(req.Reason), maxReason, domain.ErrInvalid)
	}
	v, err := s.cfg.Versions.GetVersion(ctx, req.Model, registry.Ref(req.Version))
	if err != nil {
		return domain.Promotion{}, err
	}
	if v.State == domain.StateArchived {
		return domain.Promotion{}, fmt.Errorf("version %d of model %q is archived and cannot be promoted: %w", v.Number, v.Model, domain.ErrPrecondition)
	}
	if held := domain.EnvironmentAliases(req.To); !slices.ContainsFunc(held, func(a string) bool { return !slices.Contains(v.Aliases, a) }) {
		return domain.Promotion{}, fmt.Errorf("version %d of model %q already holds %s (%s): there is nothing to promote: %w",
			v.Number, v.Model, req.To, strings.Join(held, ", "), domain.ErrPrecondition)
	}
	now := s.cfg.Clock.Now()
	p := domain.Promotion{Model: v.Model, Version: v.Number, Environment: req.To, RequestedBy: who.Name, CreatedAt: now, UpdatedAt: now}
	if req.BreakGlass {
		return s.breakGlass(ctx, who, v, p, req.Reason)
	}
	if req.Reason != "" {
		return domain.Promotion{}, fmt.Errorf("a reason is given only with --break-glass: %w", domain.ErrInvalid)
	}
	pol, err := s.cfg.Store.GetGatePolicy(ctx, v.Model, req.To)
	switch {
	case errors.Is(err, domain.ErrNotFound) && domain.NeedsPolicy(req.To):
		return domain.Promotion{}, fmt.Errorf("environment %s has no gate policy for model %q, and every environment but dev needs one; apply one with slipway apply -f policy.yaml: %w", req.To, v.Model, domain.ErrPrecondition)
	case errors.Is(err, domain.ErrNotFound):
		p.Reason = "no gate policy for " + req.To
	case err != nil:
		return domain.Promotion{}, err
	default:
		p.PolicyRevision, p.Required, p.Role = pol.Revision, pol.Approvals.Required, pol.Approvals.Role
		if err := s.judge(ctx, who, pol, v, &p); err != nil {
			return domain.Promotion{}, err
		}
	}
	var out domain.Promotion
	err = s.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := s.stillCurrent(ctx, tx, p); err != nil {
			return err
		}
		pending, _, err := tx.ListPromotions(ctx, store.PromotionFilter{Model: p.Model, Environment: p.Environment, State: domain.PromotionPending, Version: p.Version}, store.Page{Limit: 1})
		if err != nil {
			return err
		}
		if len(pending) > 0 && p.State != domain.PromotionRejected {
			return fmt.Errorf("promotion %d of version %d to %s is already pending; approve or reject it: %w", pending[0].ID, p.Version, p.Environment, domain.ErrConflict)
		}
		switch {
		case p.State == domain.PromotionRejected:
			out, err = s.record(ctx, tx, who.Name, "promotion.reject", EventRejected, p, true)
			return err
		case p.Required > 0:
			p.State = domain.PromotionPending
			out, err = s.record(ctx, tx, who.Name, "promotion.request", EventRequested, p, true)
			return err
		}
		p.State = domain.PromotionPending
		if p, err = s.record(ctx, tx, who.Name, "promotion.request", EventRequested, p, true); err != nil {
			return err
		}
		out, err = s.complete(ctx, tx, who.Name, p)
		return err
	})
	return out, err
}

// judge evaluates the version (and the champion when a rule needs it) on
// the policy's dataset and fills the results; a failing rule makes the
// promotion rejected.
func (s *Service) judge(ctx context.Context, who Actor, pol domain.GatePolicy, v domain.Version, p *domain.Promotion) error {
	if len(pol.Rules) == 0 {
		return nil
	}
	d, err := s.cfg.Datasets.GetDataset(ctx, pol.Dataset)
	if err != nil {
		return fmt.Errorf("the gate policy's dataset %s: %w", pol.Dataset, err)
	}
	cand, err := s.evaluation(ctx, who, v.Model, v.Number, d)
	if err != nil {
		return err
	}
	p.Evaluation = cand.ID
	if cand.Status != domain.EvaluationSucceeded {
		p.State, p.Reason = domain.PromotionRejected, fmt.Sprintf("evaluation %d of version %d on %s failed: %s", cand.ID, v.Number, d.Ref(), cand.Error)
		return nil
	}
	var champ *domain.Evaluation
	if needsChampion(pol) {
		a, err := s.cfg.Store.GetAlias(ctx, v.Model, "champion")
		switch {
		case errors.Is(err, domain.ErrNotFound):
		case err != nil:
			return err
		default:
			p.Champion = a.Version
			ce, err := s.evaluation(ctx, who, v.Model, a.Version, d)
			if err != nil {
				return fmt.Errorf("evaluating the champion (version %d): %w", a.Version, err)
			}
			if ce.Status != domain.EvaluationSucceeded {
				p.State, p.Reason = domain.PromotionRejected, fmt.Sprintf("evaluation %d of the champion (version %d) on %s failed: %s", ce.ID, a.Version, d.Ref(), ce.Error)
				return nil
			}
			p.ChampionEvaluation, champ = ce.ID, &ce
		}
	}
	results, ok := Judge(pol, cand, champ)
	p.Results = results
	if !ok {
		var broke []string
		for _, r := range results {
			if r.Verdict == domain.VerdictFail {
				broke = append(broke, fmt.Sprintf("%s %s (%s)", ruleName(r), r.Kind, r.Reason))
			}
		}
		p.State, p.Reason = domain.PromotionRejected, fmt.Sprintf("%d of %d gate rules failed: %s", len(broke), len(results), strings.Join(broke, "; "))
	}
	return nil
}

func ruleName(r domain.RuleResult) string {
	if r.Group != "" {
		return r.Metric + "[" + r.Group + "]"
	}
	return r.Metric
}

func needsChampion(p domain.GatePolicy) bool {
	for _, r := range p.Rules {
		if r.NeedsChampion() {
			return true
		}
	}
	return false
}

// evaluation reuses the latest succeeded evaluation of a version on the
// dataset version (its digest and its roles: the same bytes pushed with
// another label, segments or sensitive column are scored differently), or
// runs one.
func (s *Service) evaluation(ctx context.Context, who Actor, model string, version int, d domain.Dataset) (domain.Evaluation, error) {
	e, err := s.cfg.Store.LatestEvaluation(ctx, store.EvaluationFilter{Model: model, Version: version, DatasetDigest: d.Digest,
		Dataset: d.Name, DatasetVersion: d.Number, Status: domain.EvaluationSucceeded})
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, domain.ErrNotFound) {
		return e, err
	}
	if s.cfg.Evaluator == nil {
		return e, fmt.Errorf("no evaluator is configured to evaluate version %d: %w", version, domain.ErrUnavailable)
	}
	return s.cfg.Evaluator.Evaluate(ctx, who.Name, model, strconv.Itoa(version), d.Ref())
}

// stillCurrent refuses to record a promotion judged by a policy revision
// that is no longer in force.
func (s *Service) stillCurrent(ctx context.Context, tx store.Tx, p domain.Promotion) error {
	if p.BreakGlass {
		return nil
	}
	pol, err := tx.GetGatePolicy(ctx, p.Model, p.Environment)
	switch {
	case errors.Is(err, domain.ErrNotFound) && p.PolicyRevision == 0:
		return nil
	case err != nil && !errors.Is(err, domain.ErrNotFound):
		return err
	case pol.Revision != p.PolicyRevision:
		return fmt.Errorf("the gate policy of %s changed (revision %d, judged by %d) while promotion %d was decided: %w", p.Environment, pol.Revision, p.PolicyRevision, p.ID, domain.ErrConflict)
	}
	return nil
}

// breakGlass completes a promotion without gates or approvals: admin only,
// with a reason, audited as such.
func (s *Service) breakGlass(ctx context.Context, who Actor, v domain.Version, p domain.Promotion, why string) (domain.Promotion, error) {
	if who.Role != domain.RoleAdmin {
		return domain.Promotion{}, fmt.Errorf("--break-glass needs the admin role; %s has %s: %w", who.Name, who.Role, auth.ErrForbidden)
	}
	why = strings.TrimSpace(why)
	if why == "" {
		return domain.Promotion{}, fmt.Errorf("--break-glass needs --reason saying why the gates are skipped: %w", domain.ErrInvalid)
	}
	p.BreakGlass, p.Reason, p.State = true, why, domain.PromotionPending
	var out domain.Promotion
	err := s.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		if p, err = s.record(ctx, tx, who.Name, "promotion.break_glass", EventRequested, p, true); err != nil {
			return err
		}
		out, err = s.complete(ctx, tx, who.Name, p)
		return err
	})
	if err == nil {
		s.cfg.Log.Warn("promotion with gates skipped (break glass)", "promotion", out.ID, "model", v.Model,
			"version", v.Number, "environment", p.Environment, "actor", who.Name, "reason", why)
	}
	return out, err
}

// Decide records one person's approval or rejection of a pending
// promotion. The server enforces separation of duties: the decider holds
// the policy's approval role, did not author the version, did not request
// the promotion, and has not decided it before; N approvals need N
// people. The last approval completes the promotion.
func (s *Service) Decide(ctx context.Context, who Actor, id int64, approve bool, comment string) (domain.Promotion, error) {
	comment = strings.TrimSpace(comment)
	if len(comment) > maxReason {
		return domain.Promotion{}, fmt.Errorf("comment is %d bytes, at most %d allowed: %w", len(comment), maxReason, domain.ErrInvalid)
	}
	if !approve && comment == "" {
		return domain.Promotion{}, fmt.Errorf("a rejection needs --comment saying why: %w", domain.ErrInvalid)
	}
	verb := "approve"
	if !approve {
		verb = "reject"
	}
	var out domain.Promotion
	cancelled := false
	err := s.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		cancelled = false
		p, err := tx.GetPromotion(ctx, id)
		if err != nil {
			return err
		}
		if p.State != domain.PromotionPending {
			why := ""
			if p.Reason != "" {
				why = " (" + p.Reason + ")"
			}
			return fmt.Errorf("promotion %d is %s%s; only a pending promotion can be %sd: %w", id, p.State, why, verb, domain.ErrPrecondition)
		}
		role := p.Role
		if role == "" {
			role = domain.RoleApprover
		}
		if !who.Role.Allows(role) {
			return fmt.Errorf("to %s promotion %d you need the %s role; %s has %s: %w", verb, id, role, who.Name, who.Role, auth.ErrForbidden)
		}
		v, err := tx.GetVersion(ctx, p.Model, p.Version)
		if err != nil {
			return err
		}
		if v.State == domain.StateArchived {
			p.State, p.UpdatedAt = domain.PromotionCancelled, s.cfg.Clock.Now()
			p.Reason = fmt.Sprintf("version %d was archived after the promotion was requested", v.Number)
			out, err = s.record(ctx, tx, who.Name, "promotion.cancel", EventCancelled, p, false)
			cancelled = err == nil
			return err
		}
		switch {
		case who.Name == v.CreatedBy:
			return fmt.Errorf("%s pushed version %d of %q and may not %s its promotion; separation of duties needs someone else: %w", who.Name, v.Number, v.Model, verb, auth.ErrForbidden)
		case who.Name == p.RequestedBy:
			return fmt.Errorf("%s requested promotion %d and may not %s it; separation of duties needs someone else: %w", who.Name, id, verb, auth.ErrForbidden)
		}
		for _, d := range p.Decisions {
			if d.By == who.Name {
				return fmt.Errorf("%s already decided promotion %d; %d approvals need %d different people: %w", who.Name, id, p.Required, p.Required, domain.ErrConflict)
			}
		}
		if err := s.stillCurrent(ctx, tx, p); err != nil {
			return err
		}
		now := s.cfg.Clock.Now()
		p.Decisions = append(p.Decisions, domain.Decision{By: who.Name, Approve: approve, Comment: comment, At: now})
		p.UpdatedAt = now
		if !approve {
			p.State, p.Reason = domain.PromotionRejected, "rejected by "+who.Name+": "+comment
			out, err = s.record(ctx, tx, who.Name, "promotion.reject", EventRejected, p, false)
			return err
		}
		if p.Approvals() < p.Required {
			out, err = s.record(ctx, tx, who.Name, "promotion.approve", EventApproved, p, false)
			return err
		}
		if p, err = s.record(ctx, tx, who.Name, "promotion.approve", EventApproved, p, false); err != nil {
			return err
		}
		out, err = s.complete(ctx, tx, who.Name, p)
		return err
	})
	if err == nil && cancelled {
		return out, fmt.Errorf("promotion %d cannot complete and was cancelled: %s: %w", id, out.Reason, domain.ErrPrecondition)
	}
	return out, err
}

// complete moves the environment's aliases to the version and sets its
// lifecycle state, cancels the other pending promotions into the
// environment (superseded), and records the promotion completed — all in
// tx, so either everything happened or nothing did. A version archived
// since the request cannot complete.
func (s *Service) complete(ctx context.Context, tx store.Tx, actor string, p domain.Promotion) (domain.Promotion, error) {
	v, err := tx.GetVersion(ctx, p.Model, p.Version)
	if err != nil {
		return p, err
	}
	now := s.cfg.Clock.Now()
	for _, alias := range domain.EnvironmentAliases(p.Environment) {
		_, prev, err := registry.MoveAlias(ctx, tx, actor, now, v, alias, nil)
		if err != nil {
			return p, fmt.Errorf("promotion %d cannot complete: %w", p.ID, err)
		}
		if p.Previous == 0 { // the environment's own alias first, else champion
			p.Previous = prev
		}
	}
	if to := domain.EnvironmentState(p.Environment); to != "" && stateRank(v.State) < stateRank(to) {
		if _, err := registry.MoveState(ctx, tx, actor, now, v, to); err != nil {
			return p, fmt.Errorf("promotion %d cannot complete: %w", p.ID, err)
		}
	}
	why := fmt.Sprintf("superseded by promotion %d, which moved %s to version %d", p.ID, p.Environment, p.Version)
	if _, err := s.cancelPending(ctx, tx, actor, p.Model, p.Environment, p.ID, why); err != nil {
		return p, err
	}
	p.State, p.UpdatedAt, p.CompletedAt = domain.PromotionCompleted, now, &now
	return s.record(ctx, tx, actor, "promotion.complete", EventCompleted, p, false)
}

// stateRank orders the states a promotion moves a version up through.
func stateRank(s domain.State) int {
	switch s {
	case domain.StateStaging:
		return 1
	case domain.StateProduction:
		return 2
	}
	return 0
}
