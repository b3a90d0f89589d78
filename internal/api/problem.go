package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

const problemBase = "https://slipway.dev/problems/"

// statusOf is the one place where errors become HTTP status codes.
func statusOf(err error) (int, string) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, "too-large"
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated"
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, domain.ErrNotFound):
		return http.StatusNotFound, "not-found"
	case errors.Is(err, domain.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, domain.ErrPrecondition):
		return http.StatusConflict, "precondition-failed"
	case errors.Is(err, domain.ErrInvalid):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, domain.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return 499, "canceled"
	default:
		return http.StatusInternalServerError, "internal"
	}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, kind := statusOf(err)
	detail := err.Error()
	if status == http.StatusInternalServerError {
		s.log.ErrorContext(r.Context(), "internal error", "err", err.Error(), "request_id", requestID(r.Context()))
		detail = "internal error; the server log has the details under this request_id"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
	}
	writeProblem(w, r, Problem{Type: problemBase + kind, Title: http.StatusText(status), Status: status, Detail: detail})
}

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Instance = r.URL.Path
	p.RequestID = requestID(r.Context())
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
