package api

import (
	"fmt"
	"net/http"

	"github.com/slipway-ml/slipway/internal/domain"
)

// RoutingRequest is the body of PUT …/deployments/{env}/routing: the whole
// routing policy of a deployment, replacing the current one (an empty
// object clears it). Rules are in their text form, such as
// "header:X-Tester=yes -> 3"; the answer is the deployment.
type RoutingRequest struct {
	Sticky           *domain.StickyKey   `json:"sticky,omitempty"`
	Rules            []string            `json:"rules,omitempty"`
	Shadow           *domain.Shadow      `json:"shadow,omitempty"`
	Limits           *domain.RouteLimits `json:"limits,omitempty"`
	ExpectedRevision *int64              `json:"expected_revision,omitempty"`
}

// Routing parses the request's rules, naming the one at fault.
func (q RoutingRequest) Routing() (domain.Routing, error) {
	p := domain.Routing{Sticky: q.Sticky, Shadow: q.Shadow, Limits: q.Limits}
	if len(q.Rules) > domain.MaxMatchRules {
		return p, fmt.Errorf("rules: %d match rules, at most %d allowed: %w", len(q.Rules), domain.MaxMatchRules, domain.ErrInvalid)
	}
	for i, s := range q.Rules {
		m, err := domain.ParseMatchRule(s)
		if err != nil {
			return p, fmt.Errorf("rules[%d]: %w", i, err)
		}
		p.Rules = append(p.Rules, m)
	}
	return p, nil
}

// NewRoutingRequest is the request that sets policy p.
func NewRoutingRequest(p domain.Routing, expectedRevision *int64) RoutingRequest {
	q := RoutingRequest{Sticky: p.Sticky, Shadow: p.Shadow, Limits: p.Limits, ExpectedRevision: expectedRevision}
	for _, m := range p.Rules {
		q.Rules = append(q.Rules, m.String())
	}
	return q
}

func (s *Server) setRouting(w http.ResponseWriter, r *http.Request) error {
	var req RoutingRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	p, err := req.Routing()
	if err != nil {
		return err
	}
	d, err := s.deployments.SetRouting(r.Context(), actor(r), r.PathValue("model"), r.PathValue("env"), p, req.ExpectedRevision)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
