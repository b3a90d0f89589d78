package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// EvaluationRequest is the body of POST /api/v1/models/{model}/evaluations.
type EvaluationRequest struct {
	// Version is a number or @alias.
	Version VersionRef `json:"version"`
	// Dataset is NAME (the latest version) or NAME@N.
	Dataset string `json:"dataset"`
	// Against, when set, is a version (e.g. @champion) evaluated first on
	// the same dataset version, as the baseline.
	Against VersionRef `json:"against,omitempty"`
}

// EvaluationResponse is the answer of POST …/evaluations: the evaluation
// of the version and, when asked, the baseline's. The call is synchronous:
// it answers when every row has run.
type EvaluationResponse struct {
	Evaluation domain.Evaluation  `json:"evaluation"`
	Baseline   *domain.Evaluation `json:"baseline,omitempty"`
}

// errNoEvaluations answers when the server was built without the
// evaluation service.
var errNoEvaluations = fmt.Errorf("this server runs no evaluations: %w", domain.ErrUnavailable)

func (s *Server) runEvaluation(w http.ResponseWriter, r *http.Request) error {
	if s.evals == nil {
		return errNoEvaluations
	}
	var req EvaluationRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	model := r.PathValue("model")
	if err := domain.ValidateName("model", model); err != nil {
		return err
	}
	if req.Version == "" || req.Dataset == "" {
		return fmt.Errorf("name the version (a number or @alias) and the dataset (NAME or NAME@N): %w", domain.ErrInvalid)
	}
	var resp EvaluationResponse
	var err error
	if req.Against != "" {
		var base domain.Evaluation
		resp.Evaluation, base, err = s.evals.EvaluateAgainst(r.Context(), actor(r), model, string(req.Version), req.Dataset, string(req.Against))
		if base.ID != 0 {
			resp.Baseline = &base
		}
	} else {
		resp.Evaluation, err = s.evals.Evaluate(r.Context(), actor(r), model, string(req.Version), req.Dataset)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/evaluations/"+strconv.FormatInt(resp.Evaluation.ID, 10))
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

func (s *Server) listEvaluations(w http.ResponseWriter, r *http.Request) error {
	if s.evals == nil {
		return errNoEvaluations
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.EvaluationFilter{Model: q.Get("model"), DatasetDigest: q.Get("dataset_digest"), Status: domain.EvaluationStatus(q.Get("status"))}
	if m := r.PathValue("model"); m != "" {
		f.Model = m
	}
	if v := q.Get("version"); v != "" {
		if f.Version, err = strconv.Atoi(v); err != nil || f.Version < 1 {
			return fmt.Errorf("version %q must be a number from 1: %w", v, domain.ErrInvalid)
		}
	}
	es, next, err := s.evals.List(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeList(w, es, next)
	return nil
}

func (s *Server) getEvaluation(w http.ResponseWriter, r *http.Request) error {
	if s.evals == nil {
		return errNoEvaluations
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return fmt.Errorf("evaluation ID %q must be a number from 1: %w", r.PathValue("id"), domain.ErrInvalid)
	}
	e, err := s.evals.Get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e)
	return nil
}
