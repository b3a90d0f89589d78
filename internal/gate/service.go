package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/store"
)

// Actor is who asks: the token's name (the identity separation of duties
// compares) and its role.
type Actor struct {
	Name string
	Role domain.Role
}

// Versions resolves a version reference (a number or @alias).
type Versions interface {
	GetVersion(ctx context.Context, model string, ref registry.Ref) (domain.Version, error)
}

// Datasets resolves a dataset reference (NAME or NAME@N).
type Datasets interface {
	GetDataset(ctx context.Context, ref string) (domain.Dataset, error)
}

// Evaluator runs a version over a dataset and records the evaluation. An
// evaluation that ran and failed comes back with status failed and a nil
// error.
type Evaluator interface {
	Evaluate(ctx context.Context, actor, model, versionRef, datasetRef string) (domain.Evaluation, error)
}

// Events records a notification inside the transaction that caused it
// (a webhook outbox); nil sends none.
type Events func(ctx context.Context, tx store.Tx, typ, subject string, data any) error

// Event types a promotion emits.
const (
	EventRequested = "promotion.requested"
	EventRejected  = "promotion.rejected"
	EventApproved  = "promotion.approved"
	EventCompleted = "promotion.completed"
	EventCancelled = "promotion.cancelled"
)

// Config wires a Service.
type Config struct {
	Store        store.Store
	Versions     Versions
	Datasets     Datasets
	Evaluator    Evaluator
	Environments []string
	Events       Events
	Clock        clock.Clock
	Log          *slog.Logger
}

// Service applies gate policies and runs promotions.
type Service struct {
	cfg Config
}

// New returns a service.
func New(c Config) *Service {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if len(c.Environments) == 0 {
		c.Environments = domain.DefaultEnvironments
	}
	return &Service{cfg: c}
}

func (s *Service) checkEnv(env string) error {
	if err := domain.ValidateName("environment", env); err != nil {
		return err
	}
	if !slices.Contains(s.cfg.Environments, env) {
		return fmt.Errorf("environment %q is not one of %s: %w", env, strings.Join(s.cfg.Environments, ", "), domain.ErrInvalid)
	}
	return nil
}

func policySubject(model, env string) string { return "model/" + model + "/policy/" + env }

// ApplyResult is what an apply did.
type ApplyResult struct {
	Policy domain.GatePolicy `json:"policy"`
	// Unchanged: the policy equals the one in force; no revision was made.
	Unchanged bool `json:"unchanged"`
	// Cancelled lists the pending promotions the new revision cancelled.
	Cancelled []int64 `json:"cancelled,omitempty"`
}

// ApplyPolicy stores a new revision of a gate policy from YAML (file names
// it in errors). Only an admin may apply. A policy whose dataset does not
// exist is refused; one equal to the policy in force changes nothing.
// Pending promotions into the environment were judged by the old policy,
// so a new revision cancels them.
func (s *Service) ApplyPolicy(ctx context.Context, who Actor, file string, data []byte) (ApplyResult, error) {
	if !who.Role.Allows(domain.RoleAdmin) {
		return ApplyResult{}, fmt.Errorf("applying a gate policy needs the admin role; %s has %s: %w", who.Name, who.Role, auth.ErrForbidden)
	}
	p, err := ParsePolicy(file, data)
	if err != nil {
		return ApplyResult{}, err
	}
	if err := s.checkEnv(p.Environment); err != nil {
		return ApplyResult{}, &PolicyError{File: file, Line: keyLineOf(data, "environment"), Reason: reason(err)}
	}
	if p.Dataset != "" {
		d, err := s.cfg.Datasets.GetDataset(ctx, p.Dataset)
		if err != nil {
			if errors.Is(err, domain.ErrNotFound) {
				return ApplyResult{}, &PolicyError{File: file, Line: keyLineOf(data, "evaluation"),
					Reason: fmt.Sprintf("dataset %q does not exist; push it first with slipway dataset push", p.Dataset)}
			}
			return ApplyResult{}, err
		}
		for i, r := range p.Rules {
			if why := ruleUnmeasurable(r, d); why != "" {
				line := 0
				if lines := ruleLines(data); i < len(lines) {
					line = lines[i]
				}
				return ApplyResult{}, &PolicyError{File: file, Line: line, Reason: fmt.Sprintf("rule %d: %s", i+1, why)}
			}
		}
	}
	p.CreatedBy, p.CreatedAt = who.Name, s.cfg.Clock.Now()
	var res ApplyResult
	err = s.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		res = ApplyResult{}
		cur, err := tx.GetGatePolicy(ctx, p.Model, p.Environment)
		switch {
		case err == nil && samePolicy(cur, p):
			res.Policy, res.Unchanged = cur, true
			return nil
		case err != nil && !errors.Is(err, domain.ErrNotFound):
			return err
		}
		if res.Policy, err = tx.CreateGatePolicy(ctx, p); err != nil {
			return err
		}
		var before any
		if cur.Revision > 0 {
			before = policyDoc(cur)
		}
		if _, err := tx.AppendAudit(ctx, audit.Entry{
			Time: p.CreatedAt, Actor: who.Name, Action: "gate_policy.apply", Subject: policySubject(p.Model, p.Environment),
			Before: audit.Document(before), After: audit.Document(policyDoc(res.Policy)),
		}); err != nil {
			return err
		}
		why := fmt.Sprintf("the gate policy changed to revision %d after this promotion was judged; request it again", res.Policy.Revision)
		res.Cancelled, err = s.cancelPending(ctx, tx, who.Name, p.Model, p.Environment, 0, why)
		return err
	})
	return res, err
}

// ruleUnmeasurable says why no evaluation on dataset d could ever give
// the rule a value ("" when one can): a metric of the other task, or a
// fairness gap over a column the dataset does not group by. Such a rule
// would reject every promotion, so the policy is refused instead.
func ruleUnmeasurable(r domain.GateRule, d domain.Dataset) string {
	ref := d.Ref()
	if !slices.Contains(domain.EvaluationMetrics[d.Task], r.Metric) {
		return fmt.Sprintf("%s is not measured on %s dataset %s; its metrics are %s",
			r.Metric, d.Task, ref, strings.Join(domain.EvaluationMetrics[d.Task], ", "))
	}
	if r.Group == "" || r.Group == d.Sensitive || (r.Metric == domain.MetricTPRGap && slices.Contains(d.Segments, r.Group)) {
		return ""
	}
	sens := "none"
	if d.Sensitive != "" {
		sens = strconv.Quote(d.Sensitive)
	}
	if r.Metric == domain.MetricTPRGap {
		return fmt.Sprintf("group %q is neither the sensitive column (%s) nor a segment column of dataset %s; push the dataset with --sensitive %s or --segment %s",
			r.Group, sens, ref, r.Group, r.Group)
	}
	return fmt.Sprintf("%s needs group to be the sensitive column of dataset %s (%s), not %q; push the dataset with --sensitive %s",
		r.Metric, ref, sens, r.Group, r.Group)
}

func samePolicy(a, b domain.GatePolicy) bool {
	return a.Dataset == b.Dataset && a.Approvals == b.Approvals && reflect.DeepEqual(a.Rules, b.Rules)
}

func policyDoc(p domain.GatePolicy) map[string]any {
	return map[string]any{"revision": p.Revision, "dataset": p.Dataset, "rules": p.Rules, "approvals": p.Approvals}
}

// keyLineOf is the line of a top-level key in a YAML document (0 when it
// cannot be found), for errors found after parsing.
func keyLineOf(data []byte, key string) int {
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, key+":") {
			return i + 1
		}
	}
	return 0
}

// GetPolicy returns the policy in force for a model and environment.
func (s *Service) GetPolicy(ctx context.Context, model, env string) (domain.GatePolicy, error) {
	if err := s.checkEnv(env); err != nil {
		return domain.GatePolicy{}, err
	}
	return s.cfg.Store.GetGatePolicy(ctx, model, env)
}

// ListPolicies returns the policies in force for a model ("" for all).
func (s *Service) ListPolicies(ctx context.Context, model string) ([]domain.GatePolicy, error) {
	if model != "" {
		if err := s.checkModel(ctx, model); err != nil {
			return nil, err
		}
	}
	return s.cfg.Store.ListGatePolicies(ctx, model)
}

// GetPromotion returns one promotion.
func (s *Service) GetPromotion(ctx context.Context, id int64) (domain.Promotion, error) {
	return s.cfg.Store.GetPromotion(ctx, id)
}

// ListPromotions lists promotions newest first: the history of who held
// each environment, when and why.
func (s *Service) ListPromotions(ctx context.Context, f store.PromotionFilter, p store.Page) ([]domain.Promotion, string, error) {
	if f.State != "" {
		if _, err := domain.ParsePromotionState(string(f.State)); err != nil {
			return nil, "", err
		}
	}
	if f.Model != "" {
		if err := s.checkModel(ctx, f.Model); err != nil {
			return nil, "", err
		}
	}
	if f.Environment != "" {
		if err := s.checkEnv(f.Environment); err != nil {
			return nil, "", err
		}
	}
	return s.cfg.Store.ListPromotions(ctx, f, p)
}

// checkModel refuses a listing of a model that does not exist (404), so
// a misspelt name is not answered with an empty history.
func (s *Service) checkModel(ctx context.Context, model string) error {
	if err := domain.ValidateName("model", model); err != nil {
		return err
	}
	_, err := s.cfg.Store.GetModel(ctx, model)
	return err
}

// cancelPending cancels the pending promotions of a model into env
// (except keep) with a reason, audited; it returns their IDs.
func (s *Service) cancelPending(ctx context.Context, tx store.Tx, actor, model, env string, keep int64, why string) ([]int64, error) {
	var ids []int64
	page := store.Page{Limit: store.MaxLimit}
	for {
		ps, next, err := tx.ListPromotions(ctx, store.PromotionFilter{Model: model, Environment: env, State: domain.PromotionPending}, page)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if p.ID == keep {
				continue
			}
			p.State, p.Reason, p.UpdatedAt = domain.PromotionCancelled, why, s.cfg.Clock.Now()
			if _, err := s.record(ctx, tx, actor, "promotion.cancel", EventCancelled, p, false); err != nil {
				return nil, err
			}
			ids = append(ids, p.ID)
		}
		if next == "" {
			return ids, nil
		}
		page.Cursor = next
	}
}

// record writes a promotion (creating it when create is set, which
// assigns its ID), its audit entry and its event, in tx.
func (s *Service) record(ctx context.Context, tx store.Tx, actor, action, event string, p domain.Promotion, create bool) (domain.Promotion, error) {
	if create {
		created, err := tx.CreatePromotion(ctx, p)
		if err != nil {
			return p, err
		}
		p.ID = created.ID
	} else if err := tx.UpdatePromotion(ctx, p); err != nil {
		return p, err
	}
	if _, err := tx.AppendAudit(ctx, audit.Entry{
		Time: p.UpdatedAt, Actor: actor, Action: action, Subject: promotionSubject(p),
		After: audit.Document(map[string]any{
			"state": p.State, "version": p.Version, "environment": p.Environment, "reason": p.Reason,
			"policy_revision": p.PolicyRevision, "results": p.Results, "decisions": p.Decisions, "break_glass": p.BreakGlass,
			"previous": p.Previous,
		}),
	}); err != nil {
		return p, err
	}
	if s.cfg.Events != nil && event != "" {
		return p, s.cfg.Events(ctx, tx, event, promotionSubject(p), p)
	}
	return p, nil
}

func promotionSubject(p domain.Promotion) string {
	return fmt.Sprintf("model/%s/promotion/%d", p.Model, p.ID)
}
