package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// openAIRequest is what the gateway reads of an OpenAI request body: the
// model that routes it and whether the answer streams. The rest of the
// body is forwarded byte for byte.
type openAIRequest struct {
	Model  string
	Stream bool
	model  span
}

// parseOpenAIRequest reads "model" and "stream" from a request body.
func parseOpenAIRequest(body []byte) (openAIRequest, error) {
	var q openAIRequest
	spans, err := topLevelFields(body, "model", "stream")
	if err != nil {
		return q, fmt.Errorf("request body: %w", err)
	}
	q.model = spans[0]
	if !q.model.found {
		return q, errors.New(`request body has no "model" field; name the registry model to call`)
	}
	var ok bool
	if q.Model, ok = jsonStringValue(body[q.model.start:q.model.end]); !ok {
		return q, errors.New(`"model" must be a string`)
	}
	if q.Model == "" {
		return q, errors.New(`"model" is empty; name the registry model to call`)
	}
	if s := spans[1]; s.found {
		switch string(body[s.start:s.end]) {
		case "true":
			q.Stream = true
		case "false", "null": // null leaves it false, as encoding/json does
		default:
			return q, errors.New(`"stream" must be true or false`)
		}
	}
	return q, nil
}

// jsonStringValue reads a JSON value that must be a string: one without
// escapes in valid UTF-8 directly, any other through encoding/json
// (which unescapes, and replaces invalid UTF-8).
func jsonStringValue(v []byte) (string, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 && utf8.Valid(v) {
		return string(v[1 : len(v)-1]), true
	}
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// withModel returns body with the model field set to name.
func (q openAIRequest) withModel(body []byte, name string) []byte {
	v, _ := json.Marshal(name)
	return splice(nil, body, []span{q.model}, [][]byte{v})
}

// speaksOpenAI reports whether a route has a version that speaks the
// OpenAI API.
func speaksOpenAI(r *deployment.Route) bool {
	return slices.ContainsFunc(r.Versions, func(v deployment.RouteVersion) bool {
		return v.Endpoint.Protocol == runtime.ProtocolOpenAI
	})
}

// serveOpenAI forwards /v1/chat/completions, /v1/completions and
// /v1/embeddings to the version that serves the body's model.
func (g *Gateway) serveOpenAI(x *exchange) {
	body, ok := x.readBody()
	if !ok {
		return
	}
	q, err := parseOpenAIRequest(body)
	if err != nil {
		x.fail(http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	x.body = body // a JSON sticky key is read from it
	if !x.resolve(q.Model, "") {
		return
	}
	ep := x.version.Endpoint
	if ep.Protocol != runtime.ProtocolOpenAI {
		x.fail(http.StatusBadRequest, "wrong_protocol", fmt.Sprintf("version %d of model %q speaks %s, not the OpenAI API; call it through /v2/models/%s/infer", x.version.Version, q.Model, orProtocol(ep.Protocol), q.Model))
		return
	}
	x.openai, x.body = q, body
	x.idempotent = g.retry.OpenAIIdempotent || x.r.Header.Get(HeaderIdempotencyKey) != ""
	x.tap = usageTap{}
	x.usage = &x.tap
	x.infer() // limits and idempotency, then the call
}

// openAITarget is where an OpenAI request goes on rv: the body names the
// model as rv's server knows it.
func (x *exchange) openAITarget(rv *deployment.RouteVersion) target {
	body := x.body
	if up := rv.UpstreamModel; up != "" && up != x.openai.Model {
		body = x.openai.withModel(body, up)
	}
	path := x.r.URL.Path
	if u := rv.Endpoint.URL; u != nil && strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/v1") {
		path = strings.TrimPrefix(path, "/v1") // base URL given OpenAI-SDK style
	}
	return target{handlerPath: x.r.URL.Path, upstreamPath: path, body: body, stream: true}
}

func orProtocol(p runtime.Protocol) runtime.Protocol {
	if p == "" {
		return runtime.ProtocolOIP
	}
	return p
}

// openAIModel is one entry of GET /v1/models.
type openAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func modelEntry(name string) openAIModel {
	return openAIModel{ID: name, Object: "model", OwnedBy: "slipway"}
}

// serveOpenAIModels lists the models the environment serves through the
// OpenAI API, in OpenAI's list shape.
func (g *Gateway) serveOpenAIModels(x *exchange) {
	if !x.environment() {
		return
	}
	data := []openAIModel{}
	for _, r := range g.table().Models(x.env) {
		if speaksOpenAI(r) {
			data = append(data, modelEntry(r.Model))
		}
	}
	slices.SortFunc(data, func(a, b openAIModel) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(x.w, http.StatusOK, struct {
		Object string        `json:"object"`
		Data   []openAIModel `json:"data"`
	}{"list", data})
}

// serveOpenAIModel answers GET /v1/models/{model}.
func (g *Gateway) serveOpenAIModel(x *exchange, name string) {
	if !x.environment() {
		return
	}
	r := g.table().Lookup(name, x.env)
	if r == nil || !speaksOpenAI(r) {
		x.fail(http.StatusNotFound, "model_not_found", fmt.Sprintf("model %q is not served through the OpenAI API in environment %q", truncate(name, 80), x.env))
		return
	}
	writeJSON(x.w, http.StatusOK, modelEntry(r.Model))
}

// usageTap reads token usage from an OpenAI answer as it passes to the
// client, without holding the answer back: for a stream, from the last
// "data:" event that carries usage; for a JSON answer, from its "usage"
// object (an answer that comes in one piece of its announced length is
// read where it is; others up to 1 MiB are kept and parsed; of larger
// ones the last 64 KiB are kept and searched).
type usageTap struct {
	active, sse bool
	length      int64 // the answer's announced length; -1 unknown

	line     []byte // the SSE line being read
	skipping bool   // the current SSE line is too long to hold

	buf       []byte // the JSON answer, or its tail
	truncated bool
	read      bool // a JSON answer was read whole

	usage openAIUsage
	found bool // usage holds what the answer said
}

type openAIUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

const (
	maxUsageLine = 1 << 20
	maxUsageBody = 1 << 20
	usageTail    = 64 << 10
)

// start is called with the answer's content type and length (the
// Content-Length header, "" when none) before its body.
func (u *usageTap) start(contentType, length string) {
	u.length = -1
	if n, err := strconv.ParseInt(length, 10, 64); err == nil && n >= 0 {
		u.length = n
	}
	if contentType == "application/json" {
		u.active = true
		return
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	u.sse = mt == "text/event-stream"
	u.active = u.sse || isJSON(contentType)
}

// Write sees a chunk of the answer on its way to the client.
func (u *usageTap) Write(p []byte) {
	if !u.active || u.read {
		return
	}
	if !u.sse {
		if len(u.buf) == 0 && int64(len(p)) == u.length {
			u.usage, u.found = jsonUsage(p, false) // the whole answer
			u.read = true
			return
		}
		u.buf = append(u.buf, p...)
		if len(u.buf) > maxUsageBody {
			u.truncated = true
			u.buf = append(u.buf[:0], u.buf[len(u.buf)-usageTail:]...)
		}
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			u.appendLine(p)
			return
		}
		u.appendLine(p[:i])
		u.endLine()
		p = p[i+1:]
	}
}

func (u *usageTap) appendLine(p []byte) {
	if u.skipping {
		return
	}
	if len(u.line)+len(p) > maxUsageLine {
		u.skipping, u.line = true, u.line[:0]
		return
	}
	u.line = append(u.line, p...)
}

func (u *usageTap) endLine() {
	l := bytes.TrimSuffix(u.line, []byte("\r"))
	if !u.skipping && bytes.HasPrefix(l, []byte("data:")) && bytes.Contains(l, []byte(`"usage"`)) {
		var v struct {
			Usage *openAIUsage `json:"usage"`
		}
		if json.Unmarshal(bytes.TrimSpace(l[len("data:"):]), &v) == nil && v.Usage != nil {
			u.usage, u.found = *v.Usage, true // usage is cumulative: the last one wins
		}
	}
	u.line, u.skipping = u.line[:0], false
}

// result returns the usage seen, if any.
func (u *usageTap) result() (prompt, completion int, ok bool) {
	if u.active && !u.sse && !u.read && len(u.buf) > 0 {
		u.usage, u.found = jsonUsage(u.buf, u.truncated)
		u.read = true
	}
	if !u.found {
		return 0, 0, false
	}
	return u.usage.PromptTokens, u.usage.CompletionTokens, true
}

// jsonUsage reads the usage of a JSON answer (tail: the end of one).
func jsonUsage(b []byte, tail bool) (openAIUsage, bool) {
	if !tail {
		spans, err := topLevelFields(b, "usage")
		if err != nil || !spans[0].found {
			return openAIUsage{}, false
		}
		return usageObject(b[spans[0].start:spans[0].end])
	}
	i := bytes.LastIndex(b, []byte(`"usage"`))
	if i < 0 {
		return openAIUsage{}, false
	}
	rest := bytes.TrimLeft(b[i+len(`"usage"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return openAIUsage{}, false
	}
	var v *openAIUsage
	if json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&v) != nil || v == nil {
		return openAIUsage{}, false
	}
	return *v, true
}

// usageObject reads a usage value as encoding/json would into
// *openAIUsage (null: none; token counts must be integers), without
// reflection: this runs for every JSON answer.
func usageObject(v []byte) (openAIUsage, bool) {
	if len(v) == 0 || v[0] != '{' {
		return openAIUsage{}, false
	}
	spans, err := topLevelFields(v, "prompt_tokens", "completion_tokens")
	if err != nil {
		return openAIUsage{}, false
	}
	var n [2]int
	for i, s := range spans[:2] {
		if !s.found || string(v[s.start:s.end]) == "null" {
			continue
		}
		if n[i], err = strconv.Atoi(string(v[s.start:s.end])); err != nil {
			return openAIUsage{}, false
		}
	}
	return openAIUsage{PromptTokens: n[0], CompletionTokens: n[1]}, true
}
