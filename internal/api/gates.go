package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/gate"
	"github.com/slipway-ml/slipway/internal/store"
)

var errNoGates = fmt.Errorf("this server has no gate service: %w", domain.ErrUnavailable)

func (s *Server) gateRoutes() []route {
	return []route{
		// The service checks roles that depend on the document or the
		// promotion (admin for policies, the policy's approval role).
		{"POST /api/v1/apply", domain.RoleViewer, s.apply},
		{"GET /api/v1/models/{model}/policies", domain.RoleViewer, s.listPolicies},
		{"GET /api/v1/models/{model}/policies/{env}", domain.RoleViewer, s.getPolicy},
		{"POST /api/v1/models/{model}/promotions", domain.RoleViewer, s.promote},
		{"GET /api/v1/models/{model}/promotions", domain.RoleViewer, s.listPromotions},
		{"GET /api/v1/promotions", domain.RoleViewer, s.listPromotions},
		{"GET /api/v1/promotions/{id}", domain.RoleViewer, s.getPromotion},
		{"POST /api/v1/promotions/{id}/approve", domain.RoleViewer, s.decide(true)},
		{"POST /api/v1/promotions/{id}/reject", domain.RoleViewer, s.decide(false)},
	}
}

func gateActor(r *http.Request) gate.Actor {
	t := tokenFrom(r.Context())
	return gate.Actor{Name: t.Name, Role: t.Role}
}

// ApplyResponse is the answer of POST /api/v1/apply.
type ApplyResponse struct {
	Kind       string            `json:"kind"`
	GatePolicy *gate.ApplyResult `json:"gate_policy,omitempty"`
	// Rollout is the rollout a kind: Rollout document started.
	Rollout *domain.Rollout `json:"rollout,omitempty"`
}

// apply takes one YAML document (the body; ?file= names it in errors) and
// dispatches it on its kind.
func (s *Server) apply(w http.ResponseWriter, r *http.Request) error {
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "request body"
	}
	if len(file) > 256 {
		return fmt.Errorf("file name is %d bytes, at most 256 allowed: %w", len(file), domain.ErrInvalid)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, gate.MaxPolicyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return fmt.Errorf("%s is larger than %d bytes: %w", file, gate.MaxPolicyBytes, err)
		}
		return fmt.Errorf("reading %s: %v: %w", file, err, domain.ErrInvalid)
	}
	kind, err := gate.Kind(file, data)
	if err != nil {
		return err
	}
	switch kind {
	case "GatePolicy":
		if s.gates == nil {
			return errNoGates
		}
		res, err := s.gates.ApplyPolicy(r.Context(), gateActor(r), file, data)
		if err != nil {
			return err
		}
		status := http.StatusCreated
		if res.Unchanged {
			status = http.StatusOK
		}
		writeJSON(w, status, ApplyResponse{Kind: kind, GatePolicy: &res})
		return nil
	case "Rollout":
		return s.applyRollout(w, r, file, data)
	case "":
		return fmt.Errorf("%s has no kind; slipway apply takes kind: GatePolicy or kind: Rollout: %w", file, domain.ErrInvalid)
	}
	return fmt.Errorf("%s: kind %q is not one slipway applies (GatePolicy, Rollout): %w", file, truncateField(kind), domain.ErrInvalid)
}

func truncateField(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) error {
	if s.gates == nil {
		return errNoGates
	}
	ps, err := s.gates.ListPolicies(r.Context(), r.PathValue("model"))
	if err != nil {
		return err
	}
	writeList(w, ps, "")
	return nil
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) error {
	if s.gates == nil {
		return errNoGates
	}
	p, err := s.gates.GetPolicy(r.Context(), r.PathValue("model"), r.PathValue("env"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// PromoteRequest is the body of POST /api/v1/models/{model}/promotions.
type PromoteRequest struct {
	Version    VersionRef `json:"version"`
	To         string     `json:"to"`
	BreakGlass bool       `json:"break_glass,omitempty"`
	Reason     string     `json:"reason,omitempty"`
}

// promote answers 201 with the promotion recorded — also when its gates
// rejected it: the rejection is a result, not an error.
func (s *Server) promote(w http.ResponseWriter, r *http.Request) error {
	if s.gates == nil {
		return errNoGates
	}
	var req PromoteRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Version == "" || req.To == "" {
		return fmt.Errorf("request body needs \"version\" (a number or @alias) and \"to\" (an environment): %w", domain.ErrInvalid)
	}
	p, err := s.gates.Promote(r.Context(), gateActor(r), gate.Request{Model: r.PathValue("model"), Version: string(req.Version),
		To: req.To, BreakGlass: req.BreakGlass, Reason: req.Reason})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (s *Server) listPromotions(w http.ResponseWriter, r *http.Request) error {
	if s.gates == nil {
		return errNoGates
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.PromotionFilter{Model: q.Get("model"), Environment: q.Get("environment"), State: domain.PromotionState(q.Get("state"))}
	if m := r.PathValue("model"); m != "" {
		f.Model = m
	}
	if v := q.Get("version"); v != "" {
		if f.Version, err = strconv.Atoi(v); err != nil || f.Version < 1 {
			return fmt.Errorf("version %q must be a number from 1: %w", v, domain.ErrInvalid)
		}
	}
	ps, next, err := s.gates.ListPromotions(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeList(w, ps, next)
	return nil
}

func promotionID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("promotion ID %q must be a number from 1: %w", truncateField(r.PathValue("id")), domain.ErrInvalid)
	}
	return id, nil
}

func (s *Server) getPromotion(w http.ResponseWriter, r *http.Request) error {
	if s.gates == nil {
		return errNoGates
	}
	id, err := promotionID(r)
	if err != nil {
		return err
	}
	p, err := s.gates.GetPromotion(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// DecisionRequest is the body of POST /api/v1/promotions/{id}/approve and
// …/reject.
type DecisionRequest struct {
	Comment string `json:"comment,omitempty"`
}

func (s *Server) decide(approve bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.gates == nil {
			return errNoGates
		}
		id, err := promotionID(r)
		if err != nil {
			return err
		}
		var req DecisionRequest
		if err := s.decode(w, r, &req); err != nil {
			return err
		}
		p, err := s.gates.Decide(r.Context(), gateActor(r), id, approve, req.Comment)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, p)
		return nil
	}
}

// checkProtectedAlias keeps the aliases promotions own (an environment's
// name, champion) out of direct moves, except by an admin: otherwise
// gates would be a suggestion.
func (s *Server) checkProtectedAlias(r *http.Request, alias string) error {
	if s.gates == nil || !domain.ProtectedAlias(alias, s.environments()) {
		return nil
	}
	if tok := tokenFrom(r.Context()); tok.Role != domain.RoleAdmin {
		return fmt.Errorf("alias %q is moved by promotions (slipway promote MODEL VERSION --to ENV); only an admin may move it directly: %w", alias, auth.ErrForbidden)
	}
	return nil
}

func (s *Server) environments() []string {
	if s.deployments != nil {
		return s.deployments.Environments()
	}
	return domain.DefaultEnvironments
}
