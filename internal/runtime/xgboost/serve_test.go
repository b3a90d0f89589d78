package xgboost

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

func startServer(t *testing.T, path string) *Server {
	t.Helper()
	s := NewServer(ServerConfig{Model: "bc", Version: 3, Path: path, MaxBodyBytes: 1 << 20})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func post(t *testing.T, h http.Handler, path, body string) (*httptest.ResponseRecorder, oip.InferResponse) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	var resp oip.InferResponse
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("infer answer %s: %v", rec.Body, err)
		}
	}
	return rec, resp
}

// TestParityThroughInfer sends every parity case through the Open
// Inference Protocol handler, nulls for missing values, and compares.
func TestParityThroughInfer(t *testing.T) {
	for _, file := range parityFiles {
		pf := readParity(t, file)
		for _, c := range pf.Cases {
			t.Run(filepath.Base(filepath.Dir(file))+"/"+c.Model, func(t *testing.T) {
				s := startServer(t, filepath.Join(filepath.Dir(file), c.Model))
				data, _ := json.Marshal(c.Rows) // nil pointers encode as null
				body := fmt.Sprintf(`{"id":"p1","inputs":[{"name":"x","shape":[%d,%d],"datatype":"FP64","data":%s}]}`,
					len(c.Rows), len(c.Rows[0]), data)
				rec, resp := post(t, s, "/v2/models/bc/versions/3/infer", body)
				if rec.Code != http.StatusOK {
					t.Fatalf("infer: %d %s", rec.Code, rec.Body)
				}
				if resp.ModelName != "bc" || resp.ModelVersion != "3" || resp.ID != "p1" || len(resp.Outputs) != 1 {
					t.Fatalf("response = %+v", resp)
				}
				out := resp.Outputs[0]
				var want []float64
				for _, p := range c.Predictions {
					want = append(want, p...)
				}
				if len(out.Data) != len(want) {
					t.Fatalf("%d outputs, want %d (shape %v)", len(out.Data), len(want), out.Shape)
				}
				worst := 0.0
				for i := range want {
					worst = math.Max(worst, math.Abs(out.Data[i]-want[i]))
				}
				if worst > 1e-6 {
					t.Fatalf("max abs diff %g over 1e-6", worst)
				}
			})
		}
	}
}

func TestInferRefusesBadInput(t *testing.T) {
	s := startServer(t, "../../../examples/breast-cancer/v1.json")
	row := strings.TrimSuffix(strings.Repeat("1,", 30), ",")
	cases := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"malformed", "/v2/models/bc/infer", `{"inputs":[`, 400, "not valid JSON"},
		{"no inputs", "/v2/models/bc/infer", `{"inputs":[]}`, 400, "no inputs"},
		{"two inputs", "/v2/models/bc/infer", `{"inputs":[{"name":"a","shape":[1,30],"datatype":"FP64","data":[` + row + `]},{"name":"b","shape":[1,30],"datatype":"FP64","data":[` + row + `]}]}`, 400, "one input tensor"},
		{"wrong feature count", "/v2/models/bc/infer", `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}`, 400, "[rows, 30]"},
		{"shape and data disagree", "/v2/models/bc/infer", `{"inputs":[{"name":"x","shape":[2,30],"datatype":"FP64","data":[` + row + `]}]}`, 400, "needs 60"},
		{"bytes datatype", "/v2/models/bc/infer", `{"inputs":[{"name":"x","shape":[1,30],"datatype":"BYTES","data":[` + row + `]}]}`, 400, "BYTES"},
		{"unknown output", "/v2/models/bc/infer", `{"inputs":[{"name":"x","shape":[1,30],"datatype":"FP64","data":[` + row + `]}],"outputs":[{"name":"proba"}]}`, 400, "proba"},
		{"too large", "/v2/models/bc/infer", `{"inputs":[{"name":"x","shape":[1,30],"datatype":"FP64","data":[` + strings.Repeat(" ", 2<<20) + `]}]}`, 413, "larger than"},
		{"unknown endpoint", "/v2/models/bc/explain", `{}`, 404, "no endpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, _ := post(t, s, c.path, c.body)
			var e oip.ErrorBody
			_ = json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != c.status || !strings.Contains(e.Error, c.msg) {
				t.Fatalf("%d %q, want %d mentioning %q", rec.Code, e.Error, c.status, c.msg)
			}
		})
	}
	// A 1-D tensor of one row and metadata answer too.
	rec, resp := post(t, s, "/v2/models/bc/infer", `{"inputs":[{"name":"x","shape":[30],"datatype":"FP32","data":[`+row+`]}]}`)
	if rec.Code != 200 || len(resp.Outputs[0].Data) != 1 {
		t.Fatalf("1-D input: %d %s", rec.Code, rec.Body)
	}
	meta := httptest.NewRecorder()
	s.ServeHTTP(meta, httptest.NewRequest(http.MethodGet, "/v2/models/bc", nil))
	var md oip.ModelMetadata
	if err := json.Unmarshal(meta.Body.Bytes(), &md); err != nil || md.Inputs[0].Shape[1] != 30 || md.Platform != "xgboost" {
		t.Fatalf("metadata %s: %v", meta.Body, err)
	}
	// The feature names the model file carries, in input order.
	if names := md.Inputs[0].FeatureNames(); len(names) != 30 || names[0] != "mean_radius" || names[29] != "worst_fractal_dimension" {
		t.Fatalf("metadata feature names %v", names)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec, _ = post(t, s, "/v2/models/bc/infer", `{}`)
	if rec.Code != http.StatusServiceUnavailable || s.Health(t.Context()) == nil {
		t.Fatalf("after Stop: %d", rec.Code)
	}
}

func TestStartRefusesAnUnsupportedModel(t *testing.T) {
	s := NewServer(ServerConfig{Model: "m", Version: 1, Path: "testdata/gblinear.json"})
	if err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "gblinear") {
		t.Fatalf("Start = %v", err)
	}
	s = NewServer(ServerConfig{Model: "m", Version: 1, Path: "testdata/missing.json"})
	if err := s.Start(t.Context()); err == nil {
		t.Fatal("Start of a missing file succeeded")
	}
}
