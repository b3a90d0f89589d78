package evalrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// maxAnswerBytes caps one answer of a model server.
const maxAnswerBytes = 4 << 20

// caller speaks the Open Inference Protocol v2 to one version's endpoint,
// in process or over its egress-checked transport, exactly as the gateway
// reaches it.
type caller struct {
	ep     runtime.Endpoint
	client *http.Client
	// model is the name the version's server knows the model by.
	model string
}

func newCaller(ep runtime.Endpoint, v domain.Version) (*caller, error) {
	if ep.Protocol != runtime.ProtocolOIP {
		return nil, fmt.Errorf("version %d of model %q speaks %s; evaluations run models that answer the Open Inference Protocol v2: %w",
			v.Number, v.Model, ep.Protocol, domain.ErrPrecondition)
	}
	c := &caller{ep: ep, model: v.Model}
	if n := v.RuntimeConfig[runtime.OptModelName]; n != "" {
		c.model = n
	}
	if ep.Handler == nil {
		if ep.URL == nil || ep.Transport == nil {
			return nil, fmt.Errorf("version %d of model %q has neither a handler nor a URL to call: %w", v.Number, v.Model, domain.ErrUnavailable)
		}
		c.client = &http.Client{Transport: ep.Transport}
	}
	return c, nil
}

// answer is one exchange with the model server.
type answer struct {
	status int
	body   []byte
}

func (c *caller) do(ctx context.Context, method, path string, body []byte) (answer, error) {
	if c.ep.Handler != nil {
		req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
		if err != nil {
			return answer{}, err
		}
		req.Header.Set("Content-Type", "application/json")
		rec := &recorder{header: http.Header{}}
		c.ep.Handler.ServeHTTP(rec, req)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		return answer{status: rec.status, body: rec.body.Bytes()}, ctx.Err()
	}
	u := *c.ep.URL
	u.Path = strings.TrimRight(u.Path, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("calling the model server: %w: %w", err, domain.ErrUnavailable)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return answer{}, fmt.Errorf("reading the model server's answer: %w: %w", err, domain.ErrUnavailable)
	}
	if len(b) > maxAnswerBytes {
		return answer{}, fmt.Errorf("the model server answered more than %d bytes for one row: %w", maxAnswerBytes, domain.ErrInvalid)
	}
	return answer{status: resp.StatusCode, body: b}, nil
}

// refusal describes a non-200 answer with the server's own words.
func refusal(a answer) string {
	var e oip.ErrorBody
	if json.Unmarshal(a.body, &e) == nil && e.Error != "" {
		return fmt.Sprintf("%d: %s", a.status, e.Error)
	}
	s := strings.TrimSpace(string(a.body))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return fmt.Sprintf("%d %s", a.status, s)
}

// inputShape is what a model declares about its one input tensor.
type inputShape struct {
	name string
	// width is the number of features, 0 when the model does not say.
	width int
	// names are the features' names in order, nil when unknown.
	names []string
}

// metadata asks the model server what it takes: GET /v2/models/{name}.
func (c *caller) metadata(ctx context.Context) (inputShape, error) {
	a, err := c.do(ctx, http.MethodGet, "/v2/models/"+url.PathEscape(c.model), nil)
	if err != nil {
		return inputShape{}, err
	}
	if a.status != http.StatusOK {
		return inputShape{}, fmt.Errorf("the model server's metadata (GET /v2/models/%s) answered %s: %w", c.model, refusal(a), domain.ErrPrecondition)
	}
	var md oip.ModelMetadata
	if err := json.Unmarshal(a.body, &md); err != nil {
		return inputShape{}, fmt.Errorf("the model server's metadata is not Open Inference Protocol v2 JSON: %v: %w", err, domain.ErrPrecondition)
	}
	if len(md.Inputs) != 1 {
		return inputShape{}, fmt.Errorf("the model declares %d input tensors; evaluations send one [rows, features] tensor: %w", len(md.Inputs), domain.ErrPrecondition)
	}
	in := md.Inputs[0]
	s := inputShape{name: in.Name, names: in.FeatureNames()}
	if len(in.Shape) > 0 {
		if last := in.Shape[len(in.Shape)-1]; last > 0 && (len(in.Shape) == 2 || len(in.Shape) == 1) {
			s.width = int(last)
		}
	}
	if s.names != nil && s.width != 0 && len(s.names) != s.width {
		return inputShape{}, fmt.Errorf("the model declares %d feature names for %d features: %w", len(s.names), s.width, domain.ErrPrecondition)
	}
	if s.names != nil {
		s.width = len(s.names)
	}
	return s, nil
}

// inferBody is one row as an infer request; NaN (a missing value) is sent
// as null, which OIP servers read as missing.
func inferBody(buf *bytes.Buffer, id, input string, row []float64) []byte {
	buf.Reset()
	buf.WriteString(`{"id":`)
	writeString(buf, id)
	buf.WriteString(`,"inputs":[{"name":`)
	writeString(buf, input)
	buf.WriteString(`,"datatype":"FP64","shape":[1,`)
	buf.WriteString(strconv.Itoa(len(row)))
	buf.WriteString(`],"data":[`)
	for i, v := range row {
		if i > 0 {
			buf.WriteByte(',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			buf.WriteString("null")
			continue
		}
		buf.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	buf.WriteString(`]}]}`)
	return buf.Bytes()
}

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always encodes
	buf.Write(b)
}

// predict sends one row and returns the model's prediction for it and how
// long the exchange took. A classifier's answer is the probability of the
// positive class: one value per row, or two (negative, positive).
func (c *caller) predict(ctx context.Context, body []byte, task domain.Task) (float64, time.Duration, error) {
	start := time.Now()
	a, err := c.do(ctx, http.MethodPost, "/v2/models/"+url.PathEscape(c.model)+"/infer", body)
	took := time.Since(start)
	if err != nil {
		return 0, took, err
	}
	if a.status != http.StatusOK {
		return 0, took, fmt.Errorf("the model refused the row: %s", refusal(a))
	}
	var resp oip.InferResponse
	if err := json.Unmarshal(a.body, &resp); err != nil {
		return 0, took, fmt.Errorf("the model's answer is not an Open Inference Protocol v2 response: %v", err)
	}
	if len(resp.Outputs) == 0 {
		return 0, took, fmt.Errorf("the model's answer has no outputs")
	}
	data := resp.Outputs[0].Data
	var p float64
	switch {
	case len(data) == 1:
		p = data[0]
	case len(data) == 2 && task == domain.TaskClassification:
		p = data[1]
	default:
		return 0, took, fmt.Errorf("the model answered %d values for one row; an evaluation needs one (a score or a value) or, for a classifier, two (negative, positive)", len(data))
	}
	if task == domain.TaskClassification && !(p >= 0 && p <= 1) {
		return 0, took, fmt.Errorf("the model answered %v, not a probability in [0, 1]: a classification dataset (0/1 labels) needs the probability of class 1 — is this a regression model, or a classifier answering raw margins?", p)
	}
	return p, took, nil
}

// recorder is the in-process answer of a handler.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(b) > maxAnswerBytes {
		return 0, fmt.Errorf("answer larger than %d bytes", maxAnswerBytes)
	}
	return r.body.Write(b)
}
