package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/store"
)

// DeployRequest is the body of PUT /api/v1/models/{model}/deployments/{env}:
// serve one version at 100 %.
type DeployRequest struct {
	Version          VersionRef `json:"version"`
	ExpectedRevision *int64     `json:"expected_revision,omitempty"`
}

// TrafficRequest is the body of PUT …/deployments/{env}/traffic: version
// number → weight in percent, summing to 100, and optionally the stable
// version traffic falls back to (one of the served versions; when left
// out, the current stable version stays if still served, else the
// highest-weight version becomes stable).
type TrafficRequest struct {
	Weights          map[string]int `json:"weights"`
	Stable           int            `json:"stable,omitempty"`
	ExpectedRevision *int64         `json:"expected_revision,omitempty"`
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) error {
	var req DeployRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Version == "" {
		return fmt.Errorf("request body needs \"version\": a version number or @alias: %w", domain.ErrInvalid)
	}
	d, err := s.deployments.Deploy(r.Context(), actor(r), r.PathValue("model"), string(req.Version), r.PathValue("env"), req.ExpectedRevision)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) setTraffic(w http.ResponseWriter, r *http.Request) error {
	var req TrafficRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	weights := make(map[int]int, len(req.Weights))
	for k, v := range req.Weights {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 {
			return fmt.Errorf("weights key %q must be a version number: %w", k, domain.ErrInvalid)
		}
		weights[n] = v
	}
	d, err := s.deployments.SetTraffic(r.Context(), actor(r), r.PathValue("model"), r.PathValue("env"), weights, req.Stable, req.ExpectedRevision)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// PriceRequest is the body of PUT …/deployments/{env}/versions/{version}/price.
type PriceRequest struct {
	domain.Price
	ExpectedRevision *int64 `json:"expected_revision,omitempty"`
}

func (s *Server) setPrice(w http.ResponseWriter, r *http.Request) error {
	var req PriceRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	n, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || n < 1 {
		return fmt.Errorf("version %q must be a version number: %w", r.PathValue("version"), domain.ErrInvalid)
	}
	d, err := s.deployments.SetPrice(r.Context(), actor(r), r.PathValue("model"), r.PathValue("env"), n, req.Price, req.ExpectedRevision)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) error {
	st, err := s.deployments.Get(r.Context(), r.PathValue("model"), r.PathValue("env"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	f := store.DeploymentFilter{Model: r.PathValue("model"), Environment: r.URL.Query().Get("environment")}
	if f.Model == "" {
		f.Model = r.URL.Query().Get("model")
	}
	if f.Model != "" {
		if _, err := s.reg.GetModel(r.Context(), f.Model); err != nil {
			return err
		}
	}
	sts, next, err := s.deployments.List(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeList(w, sts, next)
	return nil
}

// LiveMetrics reads the gateway's sliding windows per served version.
type LiveMetrics interface {
	Snapshot(model, env string) []metrics.VersionWindows
}

// DeploymentMetrics is the answer of GET …/deployments/{env}/metrics.
type DeploymentMetrics struct {
	Model       string                   `json:"model"`
	Environment string                   `json:"environment"`
	Versions    []metrics.VersionWindows `json:"versions"`
}

func (s *Server) deploymentMetrics(w http.ResponseWriter, r *http.Request) error {
	model, env := r.PathValue("model"), r.PathValue("env")
	if _, err := s.deployments.Get(r.Context(), model, env); err != nil {
		return err
	}
	var vs []metrics.VersionWindows
	if s.live != nil {
		vs = s.live.Snapshot(model, env)
	}
	if vs == nil {
		vs = []metrics.VersionWindows{}
	}
	writeJSON(w, http.StatusOK, DeploymentMetrics{Model: model, Environment: env, Versions: vs})
	return nil
}
