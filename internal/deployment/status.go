package deployment

import (
	"context"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// Status is a deployment with the live health of each served version.
type Status struct {
	domain.Deployment
	Health []VersionHealth `json:"health"`
}

// VersionHealth is whether one served version can answer now.
type VersionHealth struct {
	Version int    `json:"version"`
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
}

// Get returns what an environment serves of a model, with health.
func (s *Service) Get(ctx context.Context, model, env string) (Status, error) {
	if err := domain.ValidateName("model", model); err != nil {
		return Status{}, err
	}
	if err := s.checkEnv(env); err != nil {
		return Status{}, err
	}
	d, err := s.cfg.Store.GetDeployment(ctx, model, env)
	if err != nil {
		return Status{}, err
	}
	return s.status(ctx, d), nil
}

// List returns one page of deployments with health.
func (s *Service) List(ctx context.Context, f store.DeploymentFilter, p store.Page) ([]Status, string, error) {
	ds, next, err := s.cfg.Store.ListDeployments(ctx, f, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]Status, len(ds))
	for i, d := range ds {
		out[i] = s.status(ctx, d)
	}
	return out, next, nil
}

func (s *Service) status(ctx context.Context, d domain.Deployment) Status {
	st := Status{Deployment: d}
	for _, v := range d.Versions {
		h := VersionHealth{Version: v.Version, Healthy: true}
		if err := s.cfg.Runtimes.Health(ctx, d.Model, v.Version); err != nil {
			h.Healthy, h.Error = false, err.Error()
		}
		st.Health = append(st.Health, h)
	}
	return st
}
