// Package api serves slipway's HTTP API under /api/v1: it decodes requests,
// checks the caller's role, calls a service and encodes the answer. Domain
// errors become RFC 9457 problem bodies in one function (statusOf). It holds
// no business rules of its own.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/controller"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/evalrun"
	"github.com/slipway-ml/slipway/internal/gate"
	"github.com/slipway-ml/slipway/internal/notify"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/store"
)

// Config wires the API.
type Config struct {
	Registry    *registry.Registry
	Deployments *deployment.Service
	// LiveMetrics are the gateway's in-process windows per version.
	LiveMetrics LiveMetrics
	Tokens      *auth.Tokens
	Store       store.Store
	Blobs       artifact.Store
	// Metrics is where API metrics are registered; Gatherer serves /metrics.
	Metrics  prometheus.Registerer
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
	// MaxBodyBytes caps JSON request bodies (default 1 MiB).
	MaxBodyBytes int64
	// MaxBlobBytes caps one uploaded artifact file (default 64 GiB).
	MaxBlobBytes int64
	// Evaluations runs and records evaluations over datasets.
	Evaluations *evalrun.Service
	// MaxDatasetBytes caps one pushed dataset (default 64 MiB: an evaluation holds the whole dataset in memory).
	MaxDatasetBytes int64
	// Webhooks manages webhooks and reads their deliveries.
	Webhooks *notify.Service
	// Gates applies gate policies and runs promotions; nil turns those
	// endpoints into 503.
	Gates *gate.Service
	// Rollouts starts, lists and commands rollouts; nil turns those
	// endpoints into 503.
	Rollouts *controller.Controller
	// Ready reports whether the server accepts traffic (false while
	// shutting down).
	Ready func() bool
	// TracerProvider, when set, records a server span per request
	// (trace.go); nil turns tracing off.
	TracerProvider trace.TracerProvider
}

// Server is the HTTP API.
type Server struct {
	reg         *registry.Registry
	deployments *deployment.Service
	live        LiveMetrics
	tokSvc      *auth.Tokens
	tokens      auth.TokenReader
	store       store.Store
	blobs       artifact.Store
	log         *slog.Logger
	metrics     *apiMetrics
	tracer      trace.Tracer // nil: tracing off
	maxBody     int64
	maxBlob     int64
	evals       *evalrun.Service
	maxDataset  int64
	webhooks    *notify.Service
	gates       *gate.Service
	rollouts    *controller.Controller
	ready       func() bool
	handler     http.Handler
	gatherer    prometheus.Gatherer
}

// New builds the API handler.
func New(c Config) *Server {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxBlobBytes == 0 {
		c.MaxBlobBytes = 64 << 30
	}
	if c.MaxDatasetBytes == 0 {
		c.MaxDatasetBytes = 64 << 20
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Ready == nil {
		c.Ready = func() bool { return true }
	}
	s := &Server{
		reg: c.Registry, deployments: c.Deployments, live: c.LiveMetrics, tokSvc: c.Tokens, tokens: c.Store, store: c.Store, blobs: c.Blobs,
		log: c.Log, metrics: newMetrics(c.Metrics), maxBody: c.MaxBodyBytes, maxBlob: c.MaxBlobBytes,
		ready: c.Ready, gatherer: c.Gatherer, evals: c.Evaluations, maxDataset: c.MaxDatasetBytes,
	}
	s.webhooks = c.Webhooks
	s.tracer = newTracer(c.TracerProvider)
	s.gates = c.Gates
	s.rollouts = c.Rollouts
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if c.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(c.Gatherer, promhttp.HandlerOpts{}))
	}
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.guard(rt.role, rt.handle))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allowed := allowedMethods(mux, r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeProblem(w, r, Problem{Type: problemBase + "method-not-allowed", Status: http.StatusMethodNotAllowed,
				Detail: fmt.Sprintf("%s does not take %s; it takes %s", r.URL.Path, r.Method, strings.Join(allowed, ", "))})
			return
		}
		writeProblem(w, r, Problem{Type: problemBase + "not-found", Status: http.StatusNotFound,
			Detail: fmt.Sprintf("no endpoint %s %s; the API lives under /api/v1/", r.Method, r.URL.Path)})
	})
	s.handler = s.observe(mux)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	pattern string
	role    domain.Role
	handle  handlerFunc
}

// routes is the whole API: every endpoint with the role it needs.
func (s *Server) routes() []route {
	return append([]route{
		{"GET /api/v1/whoami", domain.RoleViewer, s.whoami},

		{"POST /api/v1/models", domain.RoleAuthor, s.createModel},
		{"GET /api/v1/models", domain.RoleViewer, s.listModels},
		{"GET /api/v1/models/{model}", domain.RoleViewer, s.getModel},

		{"HEAD /api/v1/blobs/{digest}", domain.RoleAuthor, s.headBlob},
		{"PUT /api/v1/blobs/{digest}", domain.RoleAuthor, s.putBlob},
		{"GET /api/v1/blobs/{digest}", domain.RoleViewer, s.getBlob},

		{"POST /api/v1/models/{model}/versions", domain.RoleAuthor, s.pushVersion},
		{"GET /api/v1/models/{model}/versions", domain.RoleViewer, s.listVersions},
		{"GET /api/v1/models/{model}/versions/{ref}", domain.RoleViewer, s.getVersion},
		{"GET /api/v1/models/{model}/versions/{ref}/manifest", domain.RoleViewer, s.getManifest},
		{"POST /api/v1/models/{model}/versions/{ref}/verify", domain.RoleViewer, s.verifyVersion},
		{"PUT /api/v1/models/{model}/versions/{ref}/state", domain.RoleDeployer, s.setState},
		{"PATCH /api/v1/models/{model}/versions/{ref}/labels", domain.RoleAuthor, s.setLabels},

		{"GET /api/v1/models/{model}/aliases", domain.RoleViewer, s.listAliases},
		{"GET /api/v1/models/{model}/aliases/{alias}", domain.RoleViewer, s.getAlias},
		{"PUT /api/v1/models/{model}/aliases/{alias}", domain.RoleDeployer, s.setAlias},
		{"DELETE /api/v1/models/{model}/aliases/{alias}", domain.RoleDeployer, s.deleteAlias},

		{"GET /api/v1/deployments", domain.RoleViewer, s.listDeployments},
		{"GET /api/v1/models/{model}/deployments", domain.RoleViewer, s.listDeployments},
		{"GET /api/v1/models/{model}/deployments/{env}", domain.RoleViewer, s.getDeployment},
		{"PUT /api/v1/models/{model}/deployments/{env}", domain.RoleDeployer, s.deploy},
		{"PUT /api/v1/models/{model}/deployments/{env}/traffic", domain.RoleDeployer, s.setTraffic},
		{"PUT /api/v1/models/{model}/deployments/{env}/routing", domain.RoleDeployer, s.setRouting},
		{"GET /api/v1/models/{model}/deployments/{env}/metrics", domain.RoleViewer, s.deploymentMetrics},
		{"PUT /api/v1/models/{model}/deployments/{env}/versions/{version}/price", domain.RoleDeployer, s.setPrice},
		{"PUT /api/v1/models/{model}/deployments/{env}/versions/{version}/fault", domain.RoleDeployer, s.setFault},
		{"DELETE /api/v1/models/{model}/deployments/{env}/versions/{version}/fault", domain.RoleDeployer, s.clearFault},

		{"POST /api/v1/datasets/{name}", domain.RoleAuthor, s.pushDataset},
		{"GET /api/v1/datasets", domain.RoleViewer, s.listDatasets},
		{"GET /api/v1/datasets/{ref}", domain.RoleViewer, s.getDataset},

		{"POST /api/v1/models/{model}/evaluations", domain.RoleAuthor, s.runEvaluation},
		{"GET /api/v1/models/{model}/evaluations", domain.RoleViewer, s.listEvaluations},
		{"GET /api/v1/evaluations", domain.RoleViewer, s.listEvaluations},
		{"GET /api/v1/evaluations/{id}", domain.RoleViewer, s.getEvaluation},

		{"GET /api/v1/audit", domain.RoleViewer, s.listAudit},
		{"GET /api/v1/audit/verify", domain.RoleViewer, s.verifyAudit},

		{"POST /api/v1/tokens", domain.RoleAdmin, s.createToken},
		{"GET /api/v1/tokens", domain.RoleAdmin, s.listTokens},
		{"DELETE /api/v1/tokens/{name}", domain.RoleAdmin, s.revokeToken},
	}, slices.Concat(s.webhookRoutes(), s.gateRoutes(), s.rolloutRoutes())...)
}

// guard authenticates the caller, checks the role and maps errors.
func (s *Server) guard(need domain.Role, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := s.authenticate(r)
		if err == nil {
			err = auth.Require(tok, need)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		*r = *r.WithContext(context.WithValue(r.Context(), keyToken, tok))
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready() {
		writeProblem(w, r, Problem{Type: problemBase + "unavailable", Status: http.StatusServiceUnavailable, Detail: "server is shutting down"})
		return
	}
	if err := s.store.Ping(r.Context()); err != nil {
		writeProblem(w, r, Problem{Type: problemBase + "unavailable", Status: http.StatusServiceUnavailable, Detail: "state store: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, tokenFrom(r.Context()))
	return nil
}

func actor(r *http.Request) string { return tokenFrom(r.Context()).Name }

// decode reads a JSON body into v: capped, strict about unknown fields and
// trailing data, with errors a person can act on.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("request body must be application/json, not %q: %w", ct, domain.ErrInvalid)
	}
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("request body is larger than %d bytes: %w", s.maxBody, err)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("request body is empty; send a JSON object: %w", domain.ErrInvalid)
		}
		return fmt.Errorf("request body is not valid JSON for this call: %v: %w", err, domain.ErrInvalid)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("request body is larger than %d bytes: %w", s.maxBody, err)
		}
		return fmt.Errorf("request body has data after the JSON object: %w", domain.ErrInvalid)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// List is the shape of every paginated answer.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func writeList[T any](w http.ResponseWriter, items []T, next string) {
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, List[T]{Items: items, NextCursor: next})
}

// allowedMethods lists the methods the mux serves for r's path, so a wrong
// method gets 405 with Allow rather than the catch-all's 404.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, m)
		}
	}
	return allowed
}
