package xgboost

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// ServerConfig configures an in-process XGBoost version.
type ServerConfig struct {
	Model   string
	Version int
	// Path is the model file, as saved by Booster.save_model("….json").
	Path string
	// MaxBodyBytes caps an infer request (default 8 MiB).
	MaxBodyBytes int64
}

// Server runs one XGBoost model in process and answers the Open Inference
// Protocol v2 for it: metadata, readiness and infer.
type Server struct {
	cfg   ServerConfig
	model atomic.Pointer[Model]
	bufs  sync.Pool
}

var _ runtime.Runtime = (*Server)(nil)

// NewServer returns a server; Start loads the model.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	return &Server{cfg: cfg}
}

// Start loads and checks the model file.
func (s *Server) Start(context.Context) error {
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		return fmt.Errorf("opening the model file: %w", err)
	}
	defer f.Close()
	m, err := Load(f)
	if err != nil {
		return fmt.Errorf("model file %s: %w", s.cfg.Path, err)
	}
	s.model.Store(m)
	return nil
}

// Endpoint serves requests in process.
func (s *Server) Endpoint() runtime.Endpoint {
	return runtime.Endpoint{Protocol: runtime.ProtocolOIP, Handler: s}
}

// Health reports whether the model is loaded.
func (s *Server) Health(context.Context) error {
	if s.model.Load() == nil {
		return fmt.Errorf("model %s version %d is not loaded: %w", s.cfg.Model, s.cfg.Version, domain.ErrUnavailable)
	}
	return nil
}

// Stop unloads the model.
func (s *Server) Stop(context.Context) error {
	s.model.Store(nil)
	return nil
}

// ServeHTTP answers /v2/models/{name}[/versions/{v}][/ready|/infer].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := s.model.Load()
	if m == nil {
		oip.WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("model %s version %d is not loaded", s.cfg.Model, s.cfg.Version))
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/models/")
	if !ok {
		oip.WriteError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
		return
	}
	parts := strings.Split(rest, "/")
	// parts: name [versions v] [ready|infer]
	if len(parts) >= 3 && parts[1] == "versions" {
		parts = append(parts[:1], parts[3:]...)
	}
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		oip.WriteJSON(w, s.metadata(m))
	case len(parts) == 2 && parts[1] == "ready" && r.Method == http.MethodGet:
		oip.WriteJSON(w, map[string]any{"name": s.cfg.Model, "ready": true})
	case len(parts) == 2 && parts[1] == "infer" && r.Method == http.MethodPost:
		s.infer(w, r, m)
	default:
		oip.WriteError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	}
}

func (s *Server) metadata(m *Model) oip.ModelMetadata {
	out := []int64{-1}
	if m.NumOutputs() > 1 {
		out = []int64{-1, int64(m.NumOutputs())}
	}
	in := oip.TensorMetadata{Name: "input-0", Datatype: "FP64", Shape: []int64{-1, int64(m.NumFeatures())}}
	if names := m.FeatureNames(); len(names) > 0 {
		in.Parameters = map[string]any{oip.ParamFeatureNames: names}
	}
	return oip.ModelMetadata{
		Name: s.cfg.Model, Versions: []string{strconv.Itoa(s.cfg.Version)}, Platform: "xgboost",
		Inputs:  []oip.TensorMetadata{in},
		Outputs: []oip.TensorMetadata{{Name: "predict", Datatype: "FP64", Shape: out}},
	}
}

type buffers struct{ in, out []float64 }

func (s *Server) infer(w http.ResponseWriter, r *http.Request, m *Model) {
	req, err := oip.DecodeRequest(r.Body, s.cfg.MaxBodyBytes)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, oip.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		oip.WriteError(w, status, err.Error())
		return
	}
	if len(req.Inputs) != 1 {
		oip.WriteError(w, http.StatusBadRequest, fmt.Sprintf("this model takes one input tensor of shape [rows, %d], got %d inputs", m.NumFeatures(), len(req.Inputs)))
		return
	}
	for _, o := range req.Outputs {
		if o.Name != "predict" {
			oip.WriteError(w, http.StatusBadRequest, fmt.Sprintf("output %q does not exist; this model has one output, \"predict\"", o.Name))
			return
		}
	}
	in := &req.Inputs[0]
	nf := int64(m.NumFeatures())
	var rows int64
	switch {
	case len(in.Shape) == 2 && in.Shape[1] == nf:
		rows = in.Shape[0]
	case len(in.Shape) == 1 && in.Shape[0] == nf:
		rows = 1
	default:
		oip.WriteError(w, http.StatusBadRequest, fmt.Sprintf("input %q has shape %v; this model takes [rows, %d]", in.Name, in.Shape, nf))
		return
	}
	b, _ := s.bufs.Get().(*buffers)
	if b == nil {
		b = &buffers{}
	}
	defer s.bufs.Put(b)
	if b.in, err = in.Float64s(b.in); err != nil {
		oip.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	nout := int(rows) * m.NumOutputs()
	if cap(b.out) < nout {
		b.out = make([]float64, nout)
	}
	b.out = b.out[:nout]
	if err := m.Predict(b.in, int(rows), b.out); err != nil {
		oip.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	shape := []int64{rows}
	if m.NumOutputs() > 1 {
		shape = []int64{rows, int64(m.NumOutputs())}
	}
	oip.WriteJSON(w, oip.InferResponse{
		ModelName: s.cfg.Model, ModelVersion: strconv.Itoa(s.cfg.Version), ID: req.ID,
		Outputs: []oip.Output{{Name: "predict", Shape: shape, Datatype: "FP64", Data: b.out}},
	})
}
