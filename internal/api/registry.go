package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/store"
)

func page(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Cursor: q.Get("cursor")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return p, fmt.Errorf("limit %q must be a number from 1 to %d: %w", l, store.MaxLimit, domain.ErrInvalid)
		}
		p.Limit = n
	}
	return p.Normalize()
}

// ModelRequest is the body of POST /api/v1/models.
type ModelRequest struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Owner       string            `json:"owner,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

func (s *Server) createModel(w http.ResponseWriter, r *http.Request) error {
	var req ModelRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	m, err := s.reg.CreateModel(r.Context(), actor(r), domain.Model{
		Name: req.Name, Description: req.Description, Owner: req.Owner, Tags: req.Tags,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/models/"+m.Name)
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ms, next, err := s.reg.ListModels(r.Context(), p)
	if err != nil {
		return err
	}
	writeList(w, ms, next)
	return nil
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) error {
	m, err := s.reg.GetModel(r.Context(), r.PathValue("model"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// VersionRequest is the body of POST /api/v1/models/{model}/versions. The
// blobs of every manifest file must have been uploaded first.
type VersionRequest struct {
	Format        domain.Format      `json:"format"`
	Manifest      *artifact.Manifest `json:"manifest,omitempty"`
	RuntimeConfig map[string]string  `json:"runtime_config,omitempty"`
	Lineage       domain.Lineage     `json:"lineage"`
	Metrics       map[string]float64 `json:"metrics,omitempty"`
	Labels        map[string]string  `json:"labels,omitempty"`
}

func (s *Server) pushVersion(w http.ResponseWriter, r *http.Request) error {
	var req VersionRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	model := r.PathValue("model")
	if err := domain.ValidateName("model", model); err != nil {
		return err
	}
	v, err := s.reg.PushVersion(r.Context(), actor(r), registry.Push{
		Model: model, Format: req.Format, Manifest: req.Manifest, RuntimeConfig: req.RuntimeConfig,
		Lineage: req.Lineage, Metrics: req.Metrics, Labels: req.Labels,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/models/%s/versions/%d", v.Model, v.Number))
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.VersionFilter{State: domain.State(q.Get("state")), Alias: strings.TrimPrefix(q.Get("alias"), "@")}
	for _, l := range q["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("label filter %q must be key=value: %w", l, domain.ErrInvalid)
		}
		if f.Labels == nil {
			f.Labels = map[string]string{}
		}
		f.Labels[k] = v
	}
	vs, next, err := s.reg.ListVersions(r.Context(), r.PathValue("model"), f, p)
	if err != nil {
		return err
	}
	writeList(w, vs, next)
	return nil
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	v, err := s.reg.GetVersion(r.Context(), r.PathValue("model"), registry.Ref(r.PathValue("ref")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// ManifestResponse is the answer of GET …/versions/{ref}/manifest.
type ManifestResponse struct {
	Model    string            `json:"model"`
	Version  int               `json:"version"`
	Digest   string            `json:"artifact_digest"`
	Manifest artifact.Manifest `json:"manifest"`
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request) error {
	v, m, err := s.reg.Manifest(r.Context(), r.PathValue("model"), registry.Ref(r.PathValue("ref")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ManifestResponse{Model: v.Model, Version: v.Number, Digest: v.ArtifactDigest, Manifest: m})
	return nil
}

func (s *Server) verifyVersion(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.reg.Verify(r.Context(), r.PathValue("model"), registry.Ref(r.PathValue("ref")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// StateRequest is the body of PUT …/versions/{ref}/state.
type StateRequest struct {
	State domain.State `json:"state"`
}

func (s *Server) setState(w http.ResponseWriter, r *http.Request) error {
	var req StateRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	v, err := s.reg.SetState(r.Context(), actor(r), r.PathValue("model"), registry.Ref(r.PathValue("ref")), req.State)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// LabelsRequest is the body of PATCH …/versions/{ref}/labels.
type LabelsRequest struct {
	Set    map[string]string `json:"set,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

func (s *Server) setLabels(w http.ResponseWriter, r *http.Request) error {
	var req LabelsRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	v, err := s.reg.SetLabels(r.Context(), actor(r), r.PathValue("model"), registry.Ref(r.PathValue("ref")), req.Set, req.Remove)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// AliasRequest is the body of PUT …/aliases/{alias}. Version is a number
// or another alias ("@challenger"); ExpectedVersion, when present, is the
// version the alias must point at now (0: it must not exist).
type AliasRequest struct {
	Version         VersionRef `json:"version"`
	ExpectedVersion *int       `json:"expected_version,omitempty"`
}

// VersionRef is a version number or "@alias"; in JSON either a number (3)
// or a string ("3", "@champion").
type VersionRef string

// UnmarshalJSON accepts a JSON number or string.
func (v *VersionRef) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*v = VersionRef(strconv.Itoa(n))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("version must be a number or a string like \"@champion\"")
	}
	*v = VersionRef(s)
	return nil
}

func (s *Server) setAlias(w http.ResponseWriter, r *http.Request) error {
	var req AliasRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Version == "" {
		return fmt.Errorf("request body needs \"version\": a version number or @alias: %w", domain.ErrInvalid)
	}
	if err := s.checkProtectedAlias(r, r.PathValue("alias")); err != nil {
		return err
	}
	a, err := s.reg.SetAlias(r.Context(), actor(r), r.PathValue("model"), r.PathValue("alias"), registry.Ref(string(req.Version)), req.ExpectedVersion)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) deleteAlias(w http.ResponseWriter, r *http.Request) error {
	var expected *int
	if e := r.URL.Query().Get("expected_version"); e != "" {
		n, err := strconv.Atoi(e)
		if err != nil {
			return fmt.Errorf("expected_version %q must be a number: %w", e, domain.ErrInvalid)
		}
		expected = &n
	}
	if err := s.checkProtectedAlias(r, r.PathValue("alias")); err != nil {
		return err
	}
	if err := s.reg.DeleteAlias(r.Context(), actor(r), r.PathValue("model"), r.PathValue("alias"), expected); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listAliases(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	as, next, err := s.reg.ListAliases(r.Context(), r.PathValue("model"), p)
	if err != nil {
		return err
	}
	writeList(w, as, next)
	return nil
}

func (s *Server) getAlias(w http.ResponseWriter, r *http.Request) error {
	a, err := s.reg.GetAlias(r.Context(), r.PathValue("model"), r.PathValue("alias"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}
