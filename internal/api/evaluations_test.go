package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/evalrun"
	"github.com/slipway-ml/slipway/internal/runtime/fleet"
)

// withEvaluations gives the harness a real fleet (XGBoost in process) and
// evaluation service.
func withEvaluations(t *testing.T) func(*api.Config) {
	return func(c *api.Config) {
		log := slog.New(slog.NewJSONHandler(io.Discard, nil))
		fl, err := fleet.Open(fleet.Config{Manifests: c.Registry, Blobs: c.Blobs, Dir: filepath.Join(t.TempDir(), "runtimes"), Log: log,
			Factory: fleet.NewFactory(fleet.FactoryConfig{Log: log})})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fl.Close(context.Background()) })
		c.Evaluations = evalrun.New(evalrun.Config{Store: c.Store, Versions: c.Registry, Datasets: c.Registry, Runtimes: fl, Log: log})
	}
}

// pushExampleVersion uploads an example model file and registers it.
func (h *harness) pushExampleVersion(file string) {
	h.t.Helper()
	b, err := os.ReadFile("../../examples/breast-cancer/" + file)
	if err != nil {
		h.t.Fatal(err)
	}
	digest := artifact.DigestOf(b)
	h.mustCall(http.MethodPut, "/api/v1/blobs/"+digest, h.admin, b, http.StatusCreated)
	h.mustCall(http.MethodPost, "/api/v1/models/bc/versions", h.admin, api.VersionRequest{Format: domain.FormatXGBoostJSON,
		Manifest: &artifact.Manifest{Files: []artifact.File{{Path: file, Size: int64(len(b)), SHA256: strings.TrimPrefix(digest, "sha256:")}}}},
		http.StatusCreated)
}

func TestEvaluationsAPI(t *testing.T) {
	h := newHarness(t, withEvaluations(t))
	viewer := h.token("viewer", domain.RoleViewer)
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "bc"}, http.StatusCreated)
	h.pushExampleVersion("v1.json")
	h.pushExampleVersion("v2.json")
	h.mustCall(http.MethodPut, "/api/v1/models/bc/aliases/champion", h.admin, map[string]any{"version": 1}, http.StatusOK)
	csv, err := os.ReadFile("../../examples/breast-cancer/holdout-eval.csv")
	if err != nil {
		t.Fatal(err)
	}
	h.mustCall(http.MethodPost, datasetPath("bc-holdout", "format=csv&label=label&segment=size_band&sensitive=age_band"), h.admin, csv, http.StatusCreated)

	// Refusals record nothing.
	for _, c := range []struct {
		name, token string
		body        any
		status      int
		detail      string
	}{
		{"viewer", viewer, api.EvaluationRequest{Version: "1", Dataset: "bc-holdout"}, 403, ""},
		{"no dataset", h.admin, api.EvaluationRequest{Version: "1"}, 400, "name the version"},
		{"unknown field", h.admin, `{"version":1,"dataset":"bc-holdout","datset":"x"}`, 400, "datset"},
		{"unknown dataset", h.admin, api.EvaluationRequest{Version: "1", Dataset: "nope"}, 404, `dataset "nope"`},
		{"unknown version", h.admin, api.EvaluationRequest{Version: "7", Dataset: "bc-holdout"}, 404, "version 7"},
		{"unknown alias", h.admin, api.EvaluationRequest{Version: "1", Dataset: "bc-holdout", Against: "@nope"}, 404, "nope"},
	} {
		r := h.call(http.MethodPost, "/api/v1/models/bc/evaluations", c.token, c.body)
		if r.status != c.status || !strings.Contains(r.problem.Detail, c.detail) {
			t.Errorf("%s: %d %+v, want %d mentioning %q", c.name, r.status, r.problem, c.status, c.detail)
		}
	}
	r := h.mustCall(http.MethodGet, "/api/v1/evaluations", viewer, nil, http.StatusOK)
	if string(r.body) != "{\"items\":[]}\n" {
		t.Fatalf("evaluations after refusals: %s", r.body)
	}

	r = h.mustCall(http.MethodPost, "/api/v1/models/bc/evaluations", h.admin,
		api.EvaluationRequest{Version: "2", Dataset: "bc-holdout@1", Against: "@champion"}, http.StatusCreated)
	var resp api.EvaluationResponse
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Baseline == nil || resp.Baseline.Version != 1 || resp.Evaluation.Version != 2 || resp.Evaluation.Baseline != resp.Baseline.ID ||
		resp.Evaluation.Status != domain.EvaluationSucceeded || resp.Evaluation.Rows != 143 || len(resp.Evaluation.Segments) != 3 ||
		resp.Evaluation.Metrics[domain.MetricROCAUC] < 0.8 || resp.Baseline.Metrics[domain.MetricROCAUC] < 0.99 {
		t.Fatalf("evaluation against the champion: %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/evaluations/2" {
		t.Errorf("Location %q", loc)
	}
	var got domain.Evaluation
	r = h.mustCall(http.MethodGet, "/api/v1/evaluations/2", viewer, nil, http.StatusOK)
	_ = json.Unmarshal(r.body, &got)
	if got.ID != 2 || got.Metrics[domain.MetricF1] != resp.Evaluation.Metrics[domain.MetricF1] {
		t.Errorf("get evaluation 2: %s", r.body)
	}
	h.mustCall(http.MethodGet, "/api/v1/evaluations/9", viewer, nil, http.StatusNotFound)
	h.mustCall(http.MethodGet, "/api/v1/evaluations/x", viewer, nil, http.StatusBadRequest)

	var page api.List[domain.Evaluation]
	r = h.mustCall(http.MethodGet, "/api/v1/models/bc/evaluations?version=1&limit=1", viewer, nil, http.StatusOK)
	_ = json.Unmarshal(r.body, &page)
	if len(page.Items) != 1 || page.Items[0].ID != 1 || page.NextCursor != "" {
		t.Errorf("evaluations of version 1: %s", r.body)
	}
	r = h.mustCall(http.MethodGet, "/api/v1/evaluations?limit=1", viewer, nil, http.StatusOK)
	_ = json.Unmarshal(r.body, &page)
	if len(page.Items) != 1 || page.NextCursor == "" {
		t.Errorf("first page of evaluations: %s", r.body)
	}
	h.mustCall(http.MethodGet, "/api/v1/evaluations?status=done", viewer, nil, http.StatusBadRequest)
	h.mustCall(http.MethodGet, "/api/v1/evaluations?version=1", viewer, nil, http.StatusBadRequest)
}
