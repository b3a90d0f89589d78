package deployment

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
)

// This file is fault injection as a deployment option: a served version
// may carry a domain.Fault that the gateway injects into its requests.
// A fault is set only in the environments Config.FaultEnvironments
// allows; it is stored with the deployment, audited as
// "deployment.fault", and stays with its version across traffic changes
// until it is cleared. A stored fault in an environment that is no longer
// allowed (the server restarted with another list) is kept but not
// injected, and the table says so in the log.

// FaultEnvironments lists the environments where faults may be injected.
func (s *Service) FaultEnvironments() []string { return slices.Clone(s.cfg.FaultEnvironments) }

func (s *Service) faultAllowed(env string) bool { return slices.Contains(s.cfg.FaultEnvironments, env) }

// SetFault sets the fault injected into one served version's requests,
// replacing any it had. The weights stay as they are.
func (s *Service) SetFault(ctx context.Context, actor, model, env string, version int, f domain.Fault, expected *int64) (domain.Deployment, error) {
	if err := s.checkEnv(env); err != nil {
		return domain.Deployment{}, err
	}
	if err := f.Validate(); err != nil {
		return domain.Deployment{}, err
	}
	if !s.faultAllowed(env) {
		allowed := "none"
		if len(s.cfg.FaultEnvironments) > 0 {
			allowed = strings.Join(s.cfg.FaultEnvironments, ",") // as the flag is written
		}
		return domain.Deployment{}, fmt.Errorf("fault injection is not allowed in environment %q (allowed: %s; the server's --fault-injection-envs lists where it is): %w",
			env, allowed, domain.ErrPrecondition)
	}
	return s.changeFault(ctx, actor, model, env, version, &f, expected)
}

// ClearFault removes the fault of one served version. It is allowed in
// every environment, so a fault left from an earlier configuration can
// always be removed; clearing a version without a fault changes nothing.
func (s *Service) ClearFault(ctx context.Context, actor, model, env string, version int, expected *int64) (domain.Deployment, error) {
	if err := s.checkEnv(env); err != nil {
		return domain.Deployment{}, err
	}
	return s.changeFault(ctx, actor, model, env, version, nil, expected)
}

// changeFault sets (f) or clears (nil) the fault of a served version.
func (s *Service) changeFault(ctx context.Context, actor, model, env string, version int, f *domain.Fault, expected *int64) (domain.Deployment, error) {
	cur, err := s.cfg.Store.GetDeployment(ctx, model, env)
	if err != nil {
		return domain.Deployment{}, err
	}
	if !cur.Serves(version) {
		return domain.Deployment{}, fmt.Errorf("the deployment of %q in %s does not serve version %d: %w", model, env, version, domain.ErrNotFound)
	}
	if expected != nil && *expected != cur.Revision {
		return domain.Deployment{}, fmt.Errorf("deployment of %q in %s is at revision %d, expected %d (someone changed it; re-read and retry): %w",
			model, env, cur.Revision, *expected, domain.ErrConflict)
	}
	served := slices.Clone(cur.Versions)
	changed := false
	for i := range served {
		if served[i].Version == version {
			changed = f != nil || served[i].Fault != nil
			served[i].Fault = f
		}
	}
	if !changed {
		return cur, nil // nothing to clear: no new revision, no audit entry
	}
	if expected == nil {
		expected = &cur.Revision
	}
	return s.change(ctx, actor, model, env, spec{served: served, stable: cur.Stable, exactFaults: true, action: "deployment.fault"}, expected)
}

// routeFault is the fault the gateway injects into a served version:
// its stored one, unless its environment does not allow faults (any
// more).
func (s *Service) routeFault(d domain.Deployment, sv domain.ServedVersion) *domain.Fault {
	if sv.Fault == nil {
		return nil
	}
	if !s.faultAllowed(d.Environment) {
		s.cfg.Log.Warn("a stored fault is not injected: fault injection is not allowed in its environment (--fault-injection-envs)",
			"model", d.Model, "environment", d.Environment, "version", sv.Version, "fault", sv.Fault.String())
		return nil
	}
	f := *sv.Fault
	return &f
}
