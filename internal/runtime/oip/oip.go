// Package oip is the Open Inference Protocol v2 (the KServe / Triton REST
// protocol) as data: request and response types, strict decoding of tensors
// into row-major numbers, and the protocol's error body. The in-process
// runtimes answer with it and the gateway reads it; it knows nothing about
// routing or models. It imports domain and the standard library only.
package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"

	"github.com/slipway-ml/slipway/internal/domain"
)

// InferRequest is the body of POST /v2/models/{name}[/versions/{v}]/infer.
type InferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Inputs     []Tensor          `json:"inputs"`
	Outputs    []RequestedOutput `json:"outputs,omitempty"`
}

// Tensor is one input tensor; Data holds its elements in row-major order,
// flat or nested.
type Tensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

// RequestedOutput names an output the caller wants.
type RequestedOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// InferResponse is the answer to an infer request.
type InferResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version,omitempty"`
	ID           string         `json:"id,omitempty"`
	Parameters   map[string]any `json:"parameters,omitempty"`
	Outputs      []Output       `json:"outputs"`
}

// Output is one output tensor.
type Output struct {
	Name     string    `json:"name"`
	Shape    []int64   `json:"shape"`
	Datatype string    `json:"datatype"`
	Data     []float64 `json:"data"`
}

// TensorMetadata describes an input or output in model metadata; -1 in a
// shape is a dimension of any size.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
	// Parameters are optional extras (MLServer puts content types here).
	// slipway's runtimes publish "feature_names", the names of a [rows,
	// features] input's columns in order, when the model knows them.
	Parameters map[string]any `json:"parameters,omitempty"`
}

// ParamFeatureNames is the tensor metadata parameter that lists the
// columns of a [rows, features] input, in order.
const ParamFeatureNames = "feature_names"

// FeatureNames returns the feature_names parameter of an input, nil when
// absent or not a list of strings.
func (t TensorMetadata) FeatureNames() []string {
	raw, ok := t.Parameters[ParamFeatureNames].([]any)
	if !ok {
		if names, ok := t.Parameters[ParamFeatureNames].([]string); ok {
			return names
		}
		return nil
	}
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// ModelMetadata is the answer of GET /v2/models/{name}[/versions/{v}].
type ModelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
}

// ErrorBody is the protocol's error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteError answers with the protocol's error body.
func WriteError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorBody{Error: msg})
}

// WriteJSON answers 200 with v as JSON, with its Content-Length, so that
// whoever passes the answer on knows its size before its body (the
// gateway refuses an answer over its cap with a 502 instead of cutting
// it off).
func WriteJSON(w http.ResponseWriter, v any) {
	buf, _ := jsonBufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer putJSONBuf(buf)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		WriteError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// jsonBufs holds WriteJSON's buffers; one over 1 MiB is dropped, not
// kept, so a rare large batch does not pin its memory.
var jsonBufs sync.Pool

func putJSONBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		jsonBufs.Put(b)
	}
}

// DecodeRequest reads an infer request of at most max bytes, refusing
// unknown fields, trailing data and requests without inputs.
func DecodeRequest(r io.Reader, max int64) (*InferRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading infer request: %w", err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("infer request is larger than %d bytes: %w", max, ErrTooLarge)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req InferRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("infer request is not valid JSON for the Open Inference Protocol v2: %v: %w", err, domain.ErrInvalid)
	}
	if dec.More() {
		return nil, fmt.Errorf("infer request has data after the JSON object: %w", domain.ErrInvalid)
	}
	if len(req.Inputs) == 0 {
		return nil, fmt.Errorf("infer request has no inputs: %w", domain.ErrInvalid)
	}
	return &req, nil
}

// ErrTooLarge marks a request over the size cap.
var ErrTooLarge = errors.New("request too large")

// Elements returns the number of elements a shape holds, refusing negative
// dimensions and overflow.
func Elements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension: %w", shape, domain.ErrInvalid)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("shape %v is too large: %w", shape, domain.ErrInvalid)
		}
		n *= d
	}
	return n, nil
}

// numeric datatypes and whether they hold integers only.
var numeric = map[string]bool{
	"FP16": false, "FP32": false, "FP64": false,
	"INT8": true, "INT16": true, "INT32": true, "INT64": true,
	"UINT8": true, "UINT16": true, "UINT32": true, "UINT64": true,
}

// intRange holds each integer datatype's bounds as [lowest, one past the
// highest]: a value outside them is not of the datatype the caller named.
var intRange = map[string][2]float64{
	"INT8": {math.MinInt8, math.MaxInt8 + 1}, "INT16": {math.MinInt16, math.MaxInt16 + 1},
	"INT32": {math.MinInt32, math.MaxInt32 + 1}, "INT64": {math.MinInt64, -math.MinInt64},
	"UINT8": {0, math.MaxUint8 + 1}, "UINT16": {0, math.MaxUint16 + 1},
	"UINT32": {0, math.MaxUint32 + 1}, "UINT64": {0, 2 * -math.MinInt64},
}

// Float64s decodes a numeric tensor into dst (reused when large enough) in
// row-major order. JSON null is a missing value and becomes NaN; nested
// arrays are flattened. The element count must match the shape, and
// integer datatypes must hold integers in their range; FP32 and FP16 values are rounded
// to float32, as the model would see them.
func (t *Tensor) Float64s(dst []float64) ([]float64, error) {
	isInt, ok := numeric[t.Datatype]
	if !ok {
		return nil, fmt.Errorf("input %q has datatype %q; this model takes FP32, FP64 or INT/UINT tensors: %w", t.Name, t.Datatype, domain.ErrInvalid)
	}
	want, err := Elements(t.Shape)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", t.Name, err)
	}
	if len(t.Data) == 0 || string(t.Data) == "null" {
		return nil, fmt.Errorf("input %q has no data: %w", t.Name, domain.ErrInvalid)
	}
	out := dst[:0]
	if int64(cap(out)) < want {
		out = make([]float64, 0, want)
	}
	p := parser{b: t.Data, max: want}
	out, err = p.values(out, 0)
	if err != nil {
		return nil, fmt.Errorf("input %q data: %v: %w", t.Name, err, domain.ErrInvalid)
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, fmt.Errorf("input %q data has trailing characters: %w", t.Name, domain.ErrInvalid)
	}
	if int64(len(out)) != want {
		return nil, fmt.Errorf("input %q has %d elements but its shape %v needs %d: %w", t.Name, len(out), t.Shape, want, domain.ErrInvalid)
	}
	for i, v := range out {
		switch {
		case math.IsNaN(v):
			if isInt {
				return nil, fmt.Errorf("input %q element %d is null, which a %s tensor cannot hold: %w", t.Name, i, t.Datatype, domain.ErrInvalid)
			}
		case isInt && v != math.Trunc(v):
			return nil, fmt.Errorf("input %q element %d is %v, not an integer as %s needs: %w", t.Name, i, v, t.Datatype, domain.ErrInvalid)
		case isInt && (v < intRange[t.Datatype][0] || v >= intRange[t.Datatype][1]):
			return nil, fmt.Errorf("input %q element %d is %v, out of range for %s: %w", t.Name, i, v, t.Datatype, domain.ErrInvalid)
		case t.Datatype == "FP32" || t.Datatype == "FP16":
			out[i] = float64(float32(v))
		}
	}
	return out, nil
}

// parser reads JSON numbers, nulls and nested arrays without building an
// interface tree: a batch of thousands of rows stays one allocation.
type parser struct {
	b   []byte
	i   int
	max int64
}

func (p *parser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

const maxDepth = 32

func (p *parser) values(out []float64, depth int) ([]float64, error) {
	p.ws()
	if p.i >= len(p.b) {
		return out, errors.New("unexpected end")
	}
	if p.b[p.i] != '[' {
		return p.scalar(out)
	}
	if depth >= maxDepth {
		return out, errors.New("arrays nested too deeply")
	}
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return out, nil
	}
	for {
		var err error
		if out, err = p.values(out, depth+1); err != nil {
			return out, err
		}
		p.ws()
		if p.i >= len(p.b) {
			return out, errors.New("unterminated array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return out, nil
		default:
			return out, fmt.Errorf("unexpected %q at offset %d", p.b[p.i], p.i)
		}
	}
}

func (p *parser) scalar(out []float64) ([]float64, error) {
	if int64(len(out)) >= p.max {
		return out, fmt.Errorf("more elements than the shape holds (%d)", p.max)
	}
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return append(out, math.NaN()), nil
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	if start == p.i {
		return out, fmt.Errorf("unexpected %q at offset %d: elements must be numbers or null", p.b[p.i], p.i)
	}
	tok := string(p.b[start:p.i])
	if !json.Valid(p.b[start:p.i]) {
		return out, fmt.Errorf("%q is not a JSON number", tok)
	}
	v, err := strconv.ParseFloat(tok, 64)
	if err != nil || math.IsInf(v, 0) {
		return out, fmt.Errorf("%q is out of range", tok)
	}
	return append(out, v), nil
}
