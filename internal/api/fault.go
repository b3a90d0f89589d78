package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/slipway-ml/slipway/internal/domain"
)

// FaultRequest is the body of PUT …/deployments/{env}/versions/{version}/fault:
// the fault the gateway injects into the version's requests, replacing
// any it had. The delay is a Go duration string ("50ms"). The answer is
// the deployment. Environments that do not allow fault injection (the
// server's --fault-injection-envs) refuse it with 409 (precondition-failed).
type FaultRequest struct {
	domain.Fault
	ExpectedRevision *int64 `json:"expected_revision,omitempty"`
}

// faultVersion reads the {version} of a fault path.
func faultVersion(r *http.Request) (int, error) {
	n, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("version %q must be a version number: %w", truncateID(r.PathValue("version")), domain.ErrInvalid)
	}
	return n, nil
}

func (s *Server) setFault(w http.ResponseWriter, r *http.Request) error {
	var req FaultRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	n, err := faultVersion(r)
	if err != nil {
		return err
	}
	d, err := s.deployments.SetFault(r.Context(), actor(r), r.PathValue("model"), r.PathValue("env"), n, req.Fault, req.ExpectedRevision)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// clearFault answers DELETE …/versions/{version}/fault with the
// deployment; ?expected_revision=N makes it conditional. Clearing a
// version without a fault changes nothing.
func (s *Server) clearFault(w http.ResponseWriter, r *http.Request) error {
	n, err := faultVersion(r)
	if err != nil {
		return err
	}
	var expected *int64
	if e := r.URL.Query().Get("expected_revision"); e != "" {
		v, err := strconv.ParseInt(e, 10, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("expected_revision %q must be a revision number: %w", truncateID(e), domain.ErrInvalid)
		}
		expected = &v
	}
	d, err := s.deployments.ClearFault(r.Context(), actor(r), r.PathValue("model"), r.PathValue("env"), n, expected)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
