package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/controller"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/rollout"
	"github.com/slipway-ml/slipway/internal/store"
)

var errNoRollouts = fmt.Errorf("this server has no rollout controller: %w", domain.ErrUnavailable)

// rolloutCommands are the verbs of POST /api/v1/rollouts/{id}/{verb}
// with the role each needs. Approvals take any token here: the step
// being approved names its role, and the controller checks it (and
// separation of duties) against the caller's.
var rolloutCommands = []struct {
	kind rollout.CommandKind
	role domain.Role
}{
	{rollout.CommandPause, domain.RoleDeployer},
	{rollout.CommandResume, domain.RoleDeployer},
	{rollout.CommandPromote, domain.RoleDeployer},
	{rollout.CommandAbort, domain.RoleDeployer},
	{rollout.CommandUndo, domain.RoleDeployer},
	{rollout.CommandApprove, domain.RoleViewer},
	{rollout.CommandReject, domain.RoleViewer},
}

func (s *Server) rolloutRoutes() []route {
	rs := []route{
		{"POST /api/v1/rollouts", domain.RoleDeployer, s.startRollout},
		{"GET /api/v1/rollouts", domain.RoleViewer, s.listRollouts},
		{"GET /api/v1/rollouts/{id}", domain.RoleViewer, s.rolloutStatus},
	}
	for _, c := range rolloutCommands {
		rs = append(rs, route{"POST /api/v1/rollouts/{id}/" + string(c.kind), c.role, s.rolloutCommand(c.kind)})
	}
	return rs
}

// rolloutActor is the caller as the controller sees it.
func rolloutActor(r *http.Request) controller.Actor {
	t := tokenFrom(r.Context())
	return controller.Actor{Name: t.Name, Role: t.Role}
}

// readDocument reads a YAML document body of at most max bytes; ?file=
// names it in errors ("request body" when absent).
func readDocument(w http.ResponseWriter, r *http.Request, max int64) (file string, data []byte, err error) {
	file = r.URL.Query().Get("file")
	if file == "" {
		file = "request body"
	}
	if len(file) > 256 {
		return "", nil, fmt.Errorf("file name is %d bytes, at most 256 allowed: %w", len(file), domain.ErrInvalid)
	}
	data, err = io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return "", nil, fmt.Errorf("%s is larger than %d bytes: %w", file, max, err)
		}
		return "", nil, fmt.Errorf("reading %s: %v: %w", file, err, domain.ErrInvalid)
	}
	return file, data, nil
}

// startRollout takes a Rollout document as the body (YAML, as kept in
// git) and starts it: 201 with the rollout as stored after its first
// steps.
func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) error {
	if s.rollouts == nil {
		return errNoRollouts
	}
	if _, err := boolParam(r, "supersede"); err != nil {
		return err // before reading a body that would be thrown away
	}
	file, data, err := readDocument(w, r, rollout.MaxSpecBytes)
	if err != nil {
		return err
	}
	ro, err := s.begin(w, r, file, data)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ro)
	return nil
}

// applyRollout starts a rollout given to POST /api/v1/apply; a deployer
// may, as on POST /api/v1/rollouts.
func (s *Server) applyRollout(w http.ResponseWriter, r *http.Request, file string, data []byte) error {
	if s.rollouts == nil {
		return errNoRollouts
	}
	if err := auth.Require(tokenFrom(r.Context()), domain.RoleDeployer); err != nil {
		return err
	}
	ro, err := s.begin(w, r, file, data)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ApplyResponse{Kind: "Rollout", Rollout: &ro})
	return nil
}

// begin starts a rollout from a document, with ?supersede=true ending the
// active one first, and points Location at it.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, file string, data []byte) (domain.Rollout, error) {
	supersede, err := boolParam(r, "supersede")
	if err != nil {
		return domain.Rollout{}, err
	}
	ro, err := s.rollouts.Start(r.Context(), rolloutActor(r), file, data, controller.StartOptions{Supersede: supersede})
	if err != nil {
		return ro, err
	}
	w.Header().Set("Location", "/api/v1/rollouts/"+strconv.FormatInt(ro.ID, 10))
	return ro, nil
}

// boolParam reads an optional true/false query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q must be true or false: %w", name, truncateField(v), domain.ErrInvalid)
	}
	return b, nil
}

// listRollouts answers rollouts newest first, filtered by model=,
// environment= (or env=), phase= and active=true.
func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) error {
	if s.rollouts == nil {
		return errNoRollouts
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.RolloutFilter{Model: q.Get("model"), Environment: q.Get("environment")}
	if env := q.Get("env"); env != "" {
		if f.Environment != "" && f.Environment != env {
			return fmt.Errorf("env=%q and environment=%q disagree; give one: %w", truncateField(env), truncateField(f.Environment), domain.ErrInvalid)
		}
		f.Environment = env
	}
	if f.Model != "" {
		if err := domain.ValidateName("model", f.Model); err != nil {
			return err
		}
		if _, err := s.store.GetModel(r.Context(), f.Model); err != nil {
			return err
		}
	}
	if f.Environment != "" && !slices.Contains(s.environments(), f.Environment) {
		return fmt.Errorf("environment %q is not one of %s: %w", truncateField(f.Environment), strings.Join(s.environments(), ", "), domain.ErrInvalid)
	}
	if ph := q.Get("phase"); ph != "" {
		if f.Phase, err = domain.ParseRolloutPhase(ph); err != nil {
			return err
		}
	}
	if f.Active, err = boolParam(r, "active"); err != nil {
		return err
	}
	rs, next, err := s.rollouts.List(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeList(w, rs, next)
	return nil
}

func rolloutID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("rollout ID %q must be a number from 1: %w", truncateField(r.PathValue("id")), domain.ErrInvalid)
	}
	return id, nil
}

// RolloutStatus is the answer of GET /api/v1/rollouts/{id}: the rollout,
// its plan's steps (the rollout's step indexes them) and the judge's
// latest verdict on the current run.
type RolloutStatus = controller.Status

func (s *Server) rolloutStatus(w http.ResponseWriter, r *http.Request) error {
	if s.rollouts == nil {
		return errNoRollouts
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	st, err := s.rollouts.Status(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// RolloutCommandRequest is the optional body of POST
// /api/v1/rollouts/{id}/{verb}: why, for the rollout's history and the
// audit log. Comment is a synonym of Reason, as approvals of promotions
// call it.
type RolloutCommandRequest struct {
	Reason  string `json:"reason,omitempty"`
	Comment string `json:"comment,omitempty"`
}

func (s *Server) rolloutCommand(kind rollout.CommandKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.rollouts == nil {
			return errNoRollouts
		}
		id, err := rolloutID(r)
		if err != nil {
			return err
		}
		var req RolloutCommandRequest
		if err := s.decodeOptional(w, r, &req); err != nil {
			return err
		}
		reason := req.Reason
		if req.Comment != "" {
			if reason != "" && reason != req.Comment {
				return fmt.Errorf("\"reason\" and \"comment\" say different things; give one: %w", domain.ErrInvalid)
			}
			reason = req.Comment
		}
		who := rolloutActor(r)
		if (kind == rollout.CommandApprove || kind == rollout.CommandReject) && who.Role == domain.RoleViewer {
			// A viewer reads; no approval step may name it (the spec
			// refuses that), so say so as the other roles' refusals do.
			return fmt.Errorf("token %q has role viewer, which may not decide an approval step: %w", who.Name, auth.ErrForbidden)
		}
		ro, err := s.rollouts.Command(r.Context(), who, id, kind, reason)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, ro)
		return nil
	}
}

// decodeOptional is decode for a body that may be left out: no body, or
// only white space, leaves v as it is.
func (s *Server) decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return fmt.Errorf("request body is larger than %d bytes: %w", s.maxBody, err)
		}
		return fmt.Errorf("reading the request body: %v: %w", err, domain.ErrInvalid)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("request body must be application/json, not %q: %w", ct, domain.ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body is not valid JSON for this call: %v: %w", err, domain.ErrInvalid)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("request body has data after the JSON object: %w", domain.ErrInvalid)
	}
	return nil
}
