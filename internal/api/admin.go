package api

import (
	"net/http"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name string      `json:"name"`
	Role domain.Role `json:"role"`
}

// TokenResponse carries a new token's secret, shown this once.
type TokenResponse struct {
	domain.Token
	Secret string `json:"token"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req TokenRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	sec, err := s.tokSvc.Create(r.Context(), actor(r), req.Name, req.Role)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, TokenResponse{Token: sec.Token, Secret: sec.Plain})
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ts, next, err := s.tokSvc.List(r.Context(), p)
	if err != nil {
		return err
	}
	writeList(w, ts, next)
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	t, err := s.tokSvc.Revoke(r.Context(), actor(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	es, next, err := s.store.ListAudit(r.Context(), store.AuditFilter{Subject: q.Get("subject"), Actor: q.Get("actor")}, p)
	if err != nil {
		return err
	}
	writeList(w, es, next)
	return nil
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	rep, err := audit.VerifyLog(r.Context(), s.store)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
