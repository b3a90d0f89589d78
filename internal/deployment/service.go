// Package deployment owns what each environment serves: which versions of a
// model, with what traffic weights. A change starts the runtimes it needs
// first, then records the new deployment and its audit entry in one
// transaction, then publishes a new routing Table for the gateway. A version
// that cannot start leaves the old traffic untouched. Rollouts move
// weights through this same service (ApplySplit), and people may not
// change a split while a rollout holds it.
package deployment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/textproto"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/store"
)

// Runtimes starts, checks and stops the runtimes of versions.
type Runtimes interface {
	Start(ctx context.Context, v domain.Version) (runtime.Endpoint, error)
	Health(ctx context.Context, model string, version int) error
	Retain(ctx context.Context, keep func(model string, version int) bool)
}

// Versions resolves a version reference (a number or @alias).
type Versions interface {
	GetVersion(ctx context.Context, model string, ref registry.Ref) (domain.Version, error)
}

// Config wires the service.
type Config struct {
	Store    store.Store
	Versions Versions
	Runtimes Runtimes
	Clock    clock.Clock
	Log      *slog.Logger
	// Environments lists the environments deployments may target
	// (default dev, staging, production).
	Environments []string
	// FaultEnvironments lists the environments where versions may carry
	// an injected fault (fault.go); empty refuses faults everywhere.
	FaultEnvironments []string
}

// Service manages deployments and publishes the routing table.
type Service struct {
	cfg Config
	// mu serialises changes so tables are published in commit order.
	mu     sync.Mutex
	routes atomic.Pointer[Table]
}

// New returns the service with an empty routing table; call Restore to
// start what the store says is deployed.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.Environments) == 0 {
		cfg.Environments = domain.DefaultEnvironments
	}
	s := &Service{cfg: cfg}
	s.routes.Store(NewTable())
	return s
}

// Routes returns the current routing table: one atomic load.
func (s *Service) Routes() *Table { return s.routes.Load() }

// Environments lists the environments deployments may target.
func (s *Service) Environments() []string { return slices.Clone(s.cfg.Environments) }

func (s *Service) checkEnv(env string) error {
	if !slices.Contains(s.cfg.Environments, env) {
		return fmt.Errorf("environment %q is not one of %v: %w", env, s.cfg.Environments, domain.ErrInvalid)
	}
	return nil
}

func subject(model, env string) string { return "model/" + model + "/deployment/" + env }

// Deploy serves one version (a number or @alias) at 100 % of an
// environment's traffic.
func (s *Service) Deploy(ctx context.Context, actor, model, ref, env string, expectedRevision *int64) (domain.Deployment, error) {
	if err := s.checkEnv(env); err != nil {
		return domain.Deployment{}, err
	}
	v, err := s.resolve(ctx, model, ref)
	if err != nil {
		return domain.Deployment{}, err
	}
	return s.change(ctx, actor, model, env, spec{
		served: []domain.ServedVersion{{Version: v.Number, Weight: 100}}, stable: v.Number, dropVersionRules: true, manual: true,
	}, expectedRevision)
}

// SetTraffic replaces an environment's split: version → weight, weights
// summing to 100. Versions at weight 0 stay running but get no traffic.
// stable names the version traffic falls back to (it must be served);
// 0 keeps the current stable version while it is still served, else picks
// the highest-weight version (the lowest number on a tie).
func (s *Service) SetTraffic(ctx context.Context, actor, model, env string, weights map[int]int, stable int, expectedRevision *int64) (domain.Deployment, error) {
	if err := s.checkEnv(env); err != nil {
		return domain.Deployment{}, err
	}
	if stable < 0 {
		return domain.Deployment{}, fmt.Errorf("stable version %d is not a version number: %w", stable, domain.ErrInvalid)
	}
	served := make([]domain.ServedVersion, 0, len(weights))
	for v, w := range weights {
		served = append(served, domain.ServedVersion{Version: v, Weight: w})
	}
	return s.change(ctx, actor, model, env, spec{served: served, stable: stable, manual: true}, expectedRevision)
}

func (s *Service) resolve(ctx context.Context, model, ref string) (domain.Version, error) {
	return s.cfg.Versions.GetVersion(ctx, model, registry.Ref(ref))
}

// spec is what a change asks for.
type spec struct {
	served []domain.ServedVersion
	// stable 0 keeps the current stable version while it is served, else
	// takes the default.
	stable int
	// routing replaces the policy; nil keeps the current one.
	routing *domain.Routing
	// dropVersionRules clears the current match rules and shadow, which
	// name versions (a deploy of one version replaces what was served).
	dropVersionRules bool
	// exactFaults takes the served versions' faults as given; otherwise
	// a version that stays keeps its fault (fault.go).
	exactFaults bool
	// action names the audit entry (default "deployment.set").
	action string
	// manual marks a person's change of the split or routing, refused
	// while a rollout holds the deployment (split.go).
	manual bool
}

// change is every deployment change: validate, start what must run, then
// commit with an audit entry, then publish.
func (s *Service) change(ctx context.Context, actor, model, env string, sp spec, expected *int64) (domain.Deployment, error) {
	d := domain.Deployment{Model: model, Environment: env, Versions: sp.served, Stable: sp.stable}
	if sp.routing != nil {
		d.Routing = *sp.routing
	}
	if err := d.Validate(); err != nil {
		return domain.Deployment{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.cfg.Store.GetDeployment(ctx, model, env)
	if err == nil && sp.routing == nil {
		d.Routing = cur.Routing
		if sp.dropVersionRules {
			d.Routing.Rules, d.Routing.Shadow = nil, nil
		}
		if err := d.Routing.Validate(d); err != nil {
			return domain.Deployment{}, fmt.Errorf("the deployment's routing policy no longer fits this split (change the routing first): %w", err)
		}
	}
	if err == nil {
		// A version that stays keeps its price and its fault.
		for i := range d.Versions {
			for _, old := range cur.Versions {
				if old.Version == d.Versions[i].Version && d.Versions[i].Price == nil {
					d.Versions[i].Price = old.Price
				}
				if old.Version == d.Versions[i].Version && d.Versions[i].Fault == nil && !sp.exactFaults {
					d.Versions[i].Fault = old.Fault
				}
			}
		}
	}
	if d.Stable == 0 {
		d.Stable = d.DefaultStable()
		if err == nil && cur.Stable != 0 && d.Serves(cur.Stable) {
			d.Stable = cur.Stable
		}
	}
	// Start every version before anything is recorded: a version that
	// cannot run is refused here and the old traffic stays as it was.
	protocols := make(map[int]runtime.Protocol, len(d.Versions))
	for _, sv := range d.Versions {
		v, err := s.cfg.Store.GetVersion(ctx, model, sv.Version)
		if err != nil {
			return domain.Deployment{}, err
		}
		if v.State == domain.StateArchived {
			return domain.Deployment{}, fmt.Errorf("version %d of model %q is archived and cannot be served: %w", v.Number, model, domain.ErrPrecondition)
		}
		ep, err := s.cfg.Runtimes.Start(ctx, v)
		if err != nil {
			return domain.Deployment{}, fmt.Errorf("%w: %w", err, domain.ErrPrecondition)
		}
		if protocols[sv.Version] = ep.Protocol; ep.Protocol == "" {
			protocols[sv.Version] = runtime.ProtocolOIP // in process
		}
	}
	if err := oneProtocol(d, protocols); err != nil {
		return domain.Deployment{}, err
	}
	err = s.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		cur, err := tx.GetDeployment(ctx, model, env)
		exists := err == nil
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return err
		}
		if sp.manual {
			if err := heldByRollout(ctx, tx, model, env); err != nil {
				return err
			}
			if err := gated(ctx, tx, cur, d); err != nil {
				return err
			}
		}
		if expected != nil && *expected != cur.Revision {
			return fmt.Errorf("deployment of %q in %s is at revision %d, expected %d (someone changed it; re-read and retry): %w", model, env, cur.Revision, *expected, domain.ErrConflict)
		}
		d.Revision = cur.Revision + 1
		d.UpdatedBy, d.UpdatedAt = actor, s.cfg.Clock.Now()
		if err := tx.PutDeployment(ctx, d); err != nil {
			return err
		}
		var before any
		if exists {
			before = map[string]any{"revision": cur.Revision, "versions": cur.Versions, "stable": cur.Stable, "routing": cur.Routing}
		}
		action := sp.action
		if action == "" {
			action = "deployment.set"
		}
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: d.UpdatedAt, Actor: actor, Action: action, Subject: subject(model, env),
			Before: audit.Document(before),
			After:  audit.Document(map[string]any{"revision": d.Revision, "versions": d.Versions, "stable": d.Stable, "routing": d.Routing}),
		})
		return err
	})
	if err != nil {
		return domain.Deployment{}, err
	}
	if err := s.publish(ctx); err != nil {
		s.cfg.Log.Error("publishing routes after a deployment change", "err", err.Error())
	}
	return d, nil
}

// Restore starts the runtimes of everything deployed and publishes the
// table; used at server start. A version that cannot start is left out of
// the table (its share of traffic gets 503) and logged.
func (s *Service) Restore(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publish(ctx)
}

// publish rebuilds the routing table from the store and stops runtimes no
// deployment serves. Called with mu held.
func (s *Service) publish(ctx context.Context) error {
	var routes []*Route
	served := map[string]bool{}
	p := store.Page{Limit: store.MaxLimit}
	for {
		ds, next, err := s.cfg.Store.ListDeployments(ctx, store.DeploymentFilter{}, p)
		if err != nil {
			return err
		}
		for _, d := range ds {
			routes = append(routes, s.route(ctx, d, served))
		}
		if next == "" {
			break
		}
		p.Cursor = next
	}
	s.routes.Store(NewTable(routes...))
	s.cfg.Runtimes.Retain(ctx, func(model string, version int) bool {
		return served[model+"/"+strconv.Itoa(version)]
	})
	return nil
}

func (s *Service) route(ctx context.Context, d domain.Deployment, served map[string]bool) *Route {
	r := &Route{Model: d.Model, Environment: d.Environment, Revision: d.Revision, Stable: d.StableVersion()}
	for _, sv := range d.Versions {
		served[d.Model+"/"+strconv.Itoa(sv.Version)] = true
		v, err := s.cfg.Store.GetVersion(ctx, d.Model, sv.Version)
		if err == nil {
			var ep runtime.Endpoint
			if ep, err = s.cfg.Runtimes.Start(ctx, v); err == nil {
				rv := RouteVersion{Version: sv.Version, Weight: sv.Weight, Endpoint: ep, UpstreamModel: upstreamName(v)}
				if sv.Price != nil {
					rv.PricePerMTokPrompt, rv.PricePerMTokCompletion = sv.Price.PerMTokPrompt, sv.Price.PerMTokCompletion
				}
				rv.Fault = s.routeFault(d, sv)
				r.Versions = append(r.Versions, rv)
				continue
			}
		}
		s.cfg.Log.Error("a deployed version cannot serve", "model", d.Model, "environment", d.Environment,
			"version", sv.Version, "err", err.Error())
		r.Down = append(r.Down, DownVersion{Version: sv.Version, Weight: sv.Weight})
	}
	compileRouting(r, d.Routing)
	return r
}

// compileRouting resolves a policy's versions against the route's: a rule
// or shadow whose version could not start is left out (and its requests
// take the split).
//
// Header names are put in canonical form (X-User-Id), the form the
// gateway's request headers are keyed by, so that looking one up on the
// hot path costs no allocation.
func compileRouting(r *Route, p domain.Routing) {
	if p.Sticky != nil {
		k := *p.Sticky
		if k.Header != "" {
			k.Header = textproto.CanonicalMIMEHeaderKey(k.Header)
		}
		r.Sticky = &k
	}
	for _, m := range p.Rules {
		if rv := r.Version(m.Version); rv != nil {
			m.Header = textproto.CanonicalMIMEHeaderKey(m.Header)
			r.Rules = append(r.Rules, RouteRule{MatchRule: m, Target: rv})
		}
	}
	if p.Shadow != nil {
		if rv := r.Version(p.Shadow.Version); rv != nil {
			r.Shadow = &RouteShadow{Target: rv, Percent: p.Shadow.Percent}
		}
	}
	if p.Limits != nil {
		r.Limits = *p.Limits
	}
}

// SetRouting replaces the routing policy of a deployment: sticky key,
// match rules, shadow and limits. The split stays as it is.
func (s *Service) SetRouting(ctx context.Context, actor, model, env string, routing domain.Routing, expected *int64) (domain.Deployment, error) {
	if err := s.checkEnv(env); err != nil {
		return domain.Deployment{}, err
	}
	cur, err := s.cfg.Store.GetDeployment(ctx, model, env)
	if err != nil {
		return domain.Deployment{}, err
	}
	if expected == nil {
		expected = &cur.Revision
	}
	return s.change(ctx, actor, model, env, spec{served: cur.Versions, stable: cur.Stable, routing: &routing, manual: true}, expected)
}

// oneProtocol refuses versions taking traffic that speak different
// protocols — the callers of one would get 400 from the others — and a
// shadow whose protocol differs from theirs: the gateway mirrors only
// requests the shadow can answer, so such a shadow would never get one.
func oneProtocol(d domain.Deployment, protocols map[int]runtime.Protocol) error {
	first := 0
	for _, sv := range d.Versions {
		switch {
		case sv.Weight == 0:
		case first == 0:
			first = sv.Version
		case protocols[sv.Version] != protocols[first]:
			return fmt.Errorf("version %d speaks %s but version %d speaks %s: versions that take traffic answer the same callers, so they must speak one protocol (serve the other at weight 0): %w",
				first, protocols[first], sv.Version, protocols[sv.Version], domain.ErrInvalid)
		}
	}
	sh := d.Routing.Shadow
	if sh == nil {
		return nil
	}
	for _, sv := range d.Versions {
		if sv.Weight > 0 && protocols[sv.Version] != protocols[sh.Version] {
			return fmt.Errorf("shadow version %d speaks %s but version %d, which takes traffic, speaks %s: a shadow gets copies of the requests the others answer, so it must speak their protocol: %w",
				sh.Version, protocols[sh.Version], sv.Version, protocols[sv.Version], domain.ErrInvalid)
		}
	}
	return nil
}

// upstreamName is the name a version's server knows the model by.
func upstreamName(v domain.Version) string {
	if n := v.RuntimeConfig["model_name"]; n != "" {
		return n
	}
	return v.Model
}

// SetPrice sets what one served version's tokens cost, for the gateway's
// cost metrics. The weights stay as they are.
func (s *Service) SetPrice(ctx context.Context, actor, model, env string, version int, price domain.Price, expected *int64) (domain.Deployment, error) {
	if err := s.checkEnv(env); err != nil {
		return domain.Deployment{}, err
	}
	if err := price.Validate(); err != nil {
		return domain.Deployment{}, err
	}
	cur, err := s.cfg.Store.GetDeployment(ctx, model, env)
	if err != nil {
		return domain.Deployment{}, err
	}
	if !cur.Serves(version) {
		return domain.Deployment{}, fmt.Errorf("the deployment of %q in %s does not serve version %d: %w", model, env, version, domain.ErrNotFound)
	}
	served := make([]domain.ServedVersion, len(cur.Versions))
	copy(served, cur.Versions)
	for i := range served {
		if served[i].Version == version {
			p := price
			served[i].Price = &p
		}
	}
	if expected == nil {
		expected = &cur.Revision
	}
	return s.change(ctx, actor, model, env, spec{served: served, stable: cur.Stable}, expected)
}
