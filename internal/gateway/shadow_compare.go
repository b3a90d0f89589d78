package gateway

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"

	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// This file compares a shadow's answer with the primary's; it is pure.
//
//   - Open Inference Protocol: output tensors are matched by name.
//     Integer, boolean and bytes tensors are labels, compared element by
//     element for equality; floating-point tensors are scores, whose
//     absolute differences are summed. A primary output the shadow lacks,
//     or one whose datatype kind, shape or element count differs, makes
//     the answers disagree without adding element figures; outputs only
//     the shadow has are ignored.
//   - OpenAI chat and text completions: the text of each choice (message
//     content and tool calls; text) must be equal, choice by choice,
//     whether streamed or not; each choice counts as one label.
//   - OpenAI embeddings: each vector's values are scores.
//
// Scores agree when |a−b| ≤ scoreTolerance·max(1, |a|, |b|), so the
// rounding of two serialisations of one model does not count as a
// disagreement; the absolute differences are recorded whatever they are.
// A primary answer that cannot be decoded is not compared (skipped);
// a shadow answer that cannot be decoded, next to one that can,
// disagrees with it.

// compareKind says how the answers of a request are compared.
type compareKind uint8

const (
	compareOIP compareKind = iota
	compareChat
	compareCompletion
	compareEmbeddings
)

// compareKindOf is the comparison for a request path.
func compareKindOf(path string) compareKind {
	switch path {
	case "/v1/chat/completions":
		return compareChat
	case "/v1/completions":
		return compareCompletion
	case "/v1/embeddings":
		return compareEmbeddings
	}
	return compareOIP
}

// scoreTolerance is the relative difference below which two scores agree.
const scoreTolerance = 1e-6

// comparedAnswer is one answer to compare; sse marks a text/event-stream body.
type comparedAnswer struct {
	body []byte
	sse  bool
}

// tally accumulates a comparison.
type tally struct {
	metrics.ShadowComparison
	differs bool // a label, a score beyond tolerance, or the structure differed
}

func (t *tally) label(equal bool) {
	t.Labels++
	if !equal {
		t.LabelMismatches++
		t.differs = true
	}
}

func (t *tally) score(a, b float64) {
	switch an, bn := math.IsNaN(a), math.IsNaN(b); {
	case an && bn:
		return // both missing: nothing to measure, nothing differs
	case an || bn:
		t.differs = true
		return
	}
	d := math.Abs(a - b)
	t.Scores++
	t.AbsDiff += d
	if d > scoreTolerance*max(1, math.Abs(a), math.Abs(b)) {
		t.differs = true
	}
}

func (t *tally) result() metrics.ShadowComparison {
	c := t.ShadowComparison
	c.Result = metrics.CompareAgree
	if t.differs {
		c.Result = metrics.CompareDisagree
	}
	return c
}

// skipped is a comparison not made, for reason.
func skippedFor(reason metrics.SkipReason) metrics.ShadowComparison {
	return metrics.ShadowComparison{Result: metrics.CompareSkipped, Skip: reason}
}

// compareAnswers compares two 2xx answers of one request.
func compareAnswers(kind compareKind, primary, shadow comparedAnswer) metrics.ShadowComparison {
	switch kind {
	case compareChat, compareCompletion:
		return compareChoices(kind, primary, shadow)
	case compareEmbeddings:
		return compareEmbeddingAnswers(primary.body, shadow.body)
	}
	return compareOIPAnswers(primary.body, shadow.body)
}

// disagreeing is the verdict on a shadow answer that could not be read
// next to a primary one that could.
func disagreeing() metrics.ShadowComparison {
	return metrics.ShadowComparison{Result: metrics.CompareDisagree}
}

type inferOutputs struct {
	Outputs []oip.Tensor `json:"outputs"`
}

// tensorKind sorts a datatype into labels or scores; ok is false for a
// datatype the protocol does not define.
func tensorKind(datatype string) (label, ok bool) {
	switch datatype {
	case "FP16", "FP32", "FP64":
		return false, true
	case "BOOL", "BYTES", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64":
		return true, true
	}
	return false, false
}

func compareOIPAnswers(primary, shadow []byte) metrics.ShadowComparison {
	var p, s inferOutputs
	if err := json.Unmarshal(primary, &p); err != nil || p.Outputs == nil {
		return skippedFor(metrics.SkipUndecodable)
	}
	if err := json.Unmarshal(shadow, &s); err != nil || s.Outputs == nil {
		return disagreeing()
	}
	byName := make(map[string]*oip.Tensor, len(s.Outputs))
	for i := range s.Outputs {
		byName[s.Outputs[i].Name] = &s.Outputs[i]
	}
	var t tally
	for i := range p.Outputs {
		pt := &p.Outputs[i]
		label, ok := tensorKind(pt.Datatype)
		if !ok {
			return skippedFor(metrics.SkipUndecodable)
		}
		pv, err := tensorValues(pt)
		if err != nil {
			return skippedFor(metrics.SkipUndecodable)
		}
		st := byName[pt.Name]
		if st == nil {
			t.differs = true
			continue
		}
		if sl, ok := tensorKind(st.Datatype); !ok || sl != label || !equalShape(pt.Shape, st.Shape) {
			t.differs = true
			continue
		}
		sv, err := tensorValues(st)
		if err != nil || sv.len() != pv.len() {
			t.differs = true
			continue
		}
		if label {
			for j := range pv.len() {
				t.label(pv.equal(sv, j))
			}
			continue
		}
		for j := range pv.nums {
			t.score(pv.nums[j], sv.nums[j])
		}
	}
	return t.result()
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// values are a tensor's elements: numbers, or for booleans and bytes each
// element's compact JSON.
type tensorElems struct {
	nums []float64
	raw  []string
}

func (v tensorElems) len() int {
	if v.raw != nil {
		return len(v.raw)
	}
	return len(v.nums)
}

func (v tensorElems) equal(o tensorElems, i int) bool {
	if v.raw != nil {
		return o.raw != nil && v.raw[i] == o.raw[i]
	}
	return o.nums != nil && v.nums[i] == o.nums[i]
}

// tensorValues decodes a tensor's data in row-major order.
func tensorValues(t *oip.Tensor) (tensorElems, error) {
	if t.Datatype != "BOOL" && t.Datatype != "BYTES" {
		n, err := t.Float64s(nil)
		if n == nil && err == nil {
			n = []float64{}
		}
		return tensorElems{nums: n}, err
	}
	want, err := oip.Elements(t.Shape)
	if err != nil {
		return tensorElems{}, err
	}
	var v any
	if err := json.Unmarshal(t.Data, &v); err != nil {
		return tensorElems{}, err
	}
	raw := []string{}
	if err := flattenJSON(v, &raw, 0); err != nil {
		return tensorElems{}, err
	}
	if int64(len(raw)) != want {
		return tensorElems{}, errors.New("element count does not match the shape")
	}
	return tensorElems{raw: raw}, nil
}

// flatten appends the compact JSON of every leaf of nested arrays.
func flattenJSON(v any, out *[]string, depth int) error {
	if depth > 32 {
		return errors.New("arrays nested too deeply")
	}
	if a, ok := v.([]any); ok {
		for _, e := range a {
			if err := flattenJSON(e, out, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	*out = append(*out, string(b))
	return nil
}

// compareChoices compares the text of every choice, by index.
func compareChoices(kind compareKind, primary, shadow comparedAnswer) metrics.ShadowComparison {
	p, ok := choiceTexts(kind, primary)
	if !ok {
		return skippedFor(metrics.SkipUndecodable)
	}
	s, ok := choiceTexts(kind, shadow)
	if !ok {
		return disagreeing()
	}
	var t tally
	for i, pt := range p {
		st, ok := s[i]
		t.label(ok && st == pt)
	}
	for i := range s {
		if _, ok := p[i]; !ok {
			t.label(false)
		}
	}
	return t.result()
}

// choiceDelta is what the comparison reads of a choice, whole or a
// stream's chunk (delta).
type choiceDelta struct {
	Index   int            `json:"index"`
	Text    *string        `json:"text"`
	Message *choiceMessage `json:"message"`
	Delta   *choiceMessage `json:"delta"`
}

type choiceMessage struct {
	Content   json.RawMessage  `json:"content"`
	ToolCalls []choiceToolCall `json:"tool_calls"`
}

type choiceToolCall struct {
	Index    int `json:"index"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// choiceTexts reads the text of each choice by index; a stream's chunks
// are concatenated. ok is false for a body that is not such an answer.
func choiceTexts(kind compareKind, a comparedAnswer) (map[int]string, bool) {
	var content, tools map[int]*strings.Builder
	add := func(m *map[int]*strings.Builder, i int, s string) {
		if *m == nil {
			*m = map[int]*strings.Builder{}
		}
		b := (*m)[i]
		if b == nil {
			b = &strings.Builder{}
			(*m)[i] = b
		}
		b.WriteString(s)
	}
	read := func(body []byte) bool {
		var v struct {
			Choices []choiceDelta `json:"choices"`
		}
		if json.Unmarshal(body, &v) != nil || v.Choices == nil {
			return false
		}
		for _, c := range v.Choices {
			msg := c.Message
			if msg == nil {
				msg = c.Delta
			}
			switch {
			case kind == compareCompletion && c.Text != nil:
				add(&content, c.Index, *c.Text)
			case kind == compareChat && msg != nil:
				add(&content, c.Index, contentText(msg.Content))
				for _, tc := range msg.ToolCalls {
					add(&tools, c.Index, tc.Function.Name+"\x00"+tc.Function.Arguments+"\x01")
				}
			default:
				add(&content, c.Index, "")
			}
		}
		return true
	}
	if !a.sse {
		if !read(a.body) {
			return nil, false
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(a.body))
		sc.Buffer(nil, maxUsageLine)
		events := 0
		for sc.Scan() {
			l := bytes.TrimSpace(sc.Bytes())
			d, ok := bytes.CutPrefix(l, []byte("data:"))
			if !ok {
				continue
			}
			d = bytes.TrimSpace(d)
			if string(d) == "[DONE]" {
				break
			}
			if !read(d) {
				return nil, false
			}
			events++
		}
		if sc.Err() != nil || events == 0 {
			return nil, false
		}
	}
	out := make(map[int]string, len(content))
	for i, b := range content {
		out[i] = b.String()
	}
	for i, b := range tools {
		out[i] += "\x02" + b.String()
	}
	return out, true
}

// contentText is a message's content: a string as is, anything else
// (content parts, null) as its JSON.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// compareEmbeddingAnswers compares the vectors of two embeddings answers
// by index.
func compareEmbeddingAnswers(primary, shadow []byte) metrics.ShadowComparison {
	p, ok := embeddingVectors(primary)
	if !ok {
		return skippedFor(metrics.SkipUndecodable)
	}
	s, ok := embeddingVectors(shadow)
	if !ok {
		return disagreeing()
	}
	var t tally
	for i, pv := range p {
		sv, ok := s[i]
		if !ok || len(sv) != len(pv) {
			t.differs = true
			continue
		}
		for j := range pv {
			t.score(pv[j], sv[j])
		}
	}
	return t.result()
}

// embeddingVectors reads the vectors of an embeddings answer by index: float
// arrays, or base64 little-endian float32 (encoding_format "base64").
func embeddingVectors(body []byte) (map[int][]float64, bool) {
	var v struct {
		Data []struct {
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &v) != nil || v.Data == nil {
		return nil, false
	}
	out := make(map[int][]float64, len(v.Data))
	for _, d := range v.Data {
		var xs []float64
		if json.Unmarshal(d.Embedding, &xs) != nil {
			var s string
			if json.Unmarshal(d.Embedding, &s) != nil {
				return nil, false
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(b)%4 != 0 {
				return nil, false
			}
			xs = make([]float64, len(b)/4)
			for i := range xs {
				xs[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
			}
		}
		out[d.Index] = xs
	}
	return out, true
}
