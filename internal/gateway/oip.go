package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// serverMetadata is the answer of GET /v2.
type serverMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// serveReady answers GET /v2/health/ready: ready once a routing table is
// loaded. As the protocol says, 200 means ready and a 4xx means not.
func (g *Gateway) serveReady(x *exchange) {
	if g.table() == nil {
		writeJSON(x.w, http.StatusBadRequest, map[string]bool{"ready": false})
		return
	}
	writeJSON(x.w, http.StatusOK, map[string]bool{"ready": true})
}

// oipCall is a parsed /v2/models/... path.
type oipCall struct {
	model, pin string
	// suffix is "", "/ready" or "/infer".
	suffix string
}

// parseOIPPath reads {name}[/versions/{v}][/ready|/infer].
func parseOIPPath(rest string) (oipCall, bool) {
	var buf [6]string // a valid path has at most 4 segments: no allocation
	seg := splitInto(buf[:0], rest)
	var c oipCall
	if len(seg) == 0 || seg[0] == "" {
		return c, false
	}
	c.model, seg = seg[0], seg[1:]
	if len(seg) >= 2 && seg[0] == "versions" {
		if seg[1] == "" {
			return c, false
		}
		c.pin, seg = seg[1], seg[2:]
	}
	switch {
	case len(seg) == 0:
	case len(seg) == 1 && seg[0] == "ready":
		c.suffix = "/ready"
	case len(seg) == 1 && seg[0] == "infer":
		c.suffix = "/infer"
	default:
		return c, false
	}
	return c, true
}

// splitInto is strings.Split(s, "/") appended to dst.
func splitInto(dst []string, s string) []string {
	for {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return append(dst, s)
		}
		dst, s = append(dst, s[:i]), s[i+1:]
	}
}

// serveOIPModel answers model metadata, model readiness and inference.
func (g *Gateway) serveOIPModel(x *exchange, rest string) {
	c, ok := parseOIPPath(rest)
	if !ok {
		x.fail(http.StatusNotFound, "not_found", fmt.Sprintf("no inference endpoint at %s; model paths are /v2/models/{name}[/versions/{v}][/ready|/infer]", truncate(x.r.URL.Path, 120)))
		return
	}
	method := http.MethodGet
	if c.suffix == "/infer" {
		method = http.MethodPost
	}
	if !x.allow(method) {
		return
	}
	var body []byte
	if c.suffix == "/infer" {
		if body, ok = x.readBody(); !ok {
			return
		}
	}
	x.body = body // a JSON sticky key is read from it
	if !x.resolve(c.model, c.pin) {
		return
	}
	ep := x.version.Endpoint
	if ep.Protocol != "" && ep.Protocol != runtime.ProtocolOIP {
		x.fail(http.StatusBadRequest, "wrong_protocol", fmt.Sprintf("version %d of model %q speaks %s, not the Open Inference Protocol; call it through /v1/", x.version.Version, c.model, ep.Protocol))
		return
	}
	x.oip, x.body, x.idempotent = c, body, true // inference on a model is pure
	if c.suffix == "/infer" {
		x.infer() // limits and idempotency, then the call
		return
	}
	// Metadata and readiness are small: hold them, then put slipway's
	// name and versions in place of the runtime's.
	buf := newBufferWriter(1 << 20)
	x.call(buf)
	if x.w.status != 0 || buf.status == 0 {
		return // failed and answered already, or nothing to send
	}
	if buf.over {
		x.fail(http.StatusBadGateway, "upstream_error", fmt.Sprintf("version %d of model %q answered with more than 1 MiB of metadata", x.version.Version, c.model))
		return
	}
	out := buf.body.Bytes()
	if buf.status == http.StatusOK && isJSON(buf.header.Get("Content-Type")) {
		out = x.rewriteMetadata(out, c.suffix == "")
	}
	buf.writeTo(x.w, out)
}

// oipTarget is where an Open Inference Protocol request goes on rv.
func (x *exchange) oipTarget(rv *deployment.RouteVersion) target {
	c := x.oip
	upstream := rv.UpstreamModel
	if upstream == "" {
		upstream = c.model
	}
	t := target{upstreamPath: modelPath(x.r.URL.Path, upstream, c.suffix), body: x.body}
	if rv.Endpoint.Handler != nil || x.shadow != nil {
		t.handlerPath = "/v2/models/" + c.model + "/versions/" + strconv.Itoa(rv.Version) + c.suffix
	}
	if esc := url.PathEscape(upstream); esc != upstream {
		t.upstreamRawPath = "/v2/models/" + esc + c.suffix
	}
	if c.suffix == "/infer" && rv.Endpoint.Handler == nil {
		t.rewriteInfer = true
	}
	return t
}

// modelPath is "/v2/models/" + model + suffix: the request's own path
// when it is that already (no version pinned, the same name upstream),
// which saves building it.
func modelPath(reqPath, model, suffix string) string {
	const prefix = "/v2/models/"
	if len(reqPath) == len(prefix)+len(model)+len(suffix) && strings.HasPrefix(reqPath, prefix) &&
		reqPath[len(prefix):len(prefix)+len(model)] == model && strings.HasSuffix(reqPath, suffix) {
		return reqPath
	}
	return prefix + model + suffix
}

// rewriteMetadata replaces the runtime's model name with slipway's and, in
// model metadata, the runtime's versions with the versions served here.
// An answer that is not a JSON object passes unchanged.
func (x *exchange) rewriteMetadata(body []byte, metadata bool) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return body
	}
	if _, ok := m["name"]; ok || metadata {
		m["name"], _ = json.Marshal(x.model)
	}
	if metadata {
		vs := make([]string, len(x.route.Versions))
		for i, v := range x.route.Versions {
			vs[i] = strconv.Itoa(v.Version)
		}
		m["versions"], _ = json.Marshal(vs)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return append(out, '\n')
}

// errAnswerTooLarge marks a remote answer too large to rewrite.
var errAnswerTooLarge = errors.New("answer too large to rewrite")

// maxRewrite caps a remote infer answer the gateway rewrites in memory.
const maxRewrite = 64 << 20

// rewriteInferResponse puts slipway's model name and version number in a
// remote server's infer answer (model_name, model_version), which carry
// the remote server's own names otherwise. Every other byte is kept.
func (x *exchange) rewriteInferResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK || !isJSON(resp.Header.Get("Content-Type")) {
		return nil
	}
	// An answer all in the connection's buffer (nearly every one) is
	// read in place; the rewritten copy goes to a buffer the exchange
	// lends until it finishes.
	ab, _ := resp.Body.(*answerBody)
	body, inPlace := []byte(nil), false
	if ab != nil {
		body, inPlace = ab.whole()
	}
	if !inPlace {
		var err error
		if body, err = readSized(resp.Body, resp.ContentLength, maxRewrite); err != nil {
			return err
		}
		if len(body) > maxRewrite {
			return errAnswerTooLarge
		}
		_ = resp.Body.Close()
	}
	spans, err := topLevelFields(body, "model_name", "model_version")
	if inPlace && (err != nil || !spans[0].found && !spans[1].found) {
		return nil // not a JSON object, or nothing to replace: it passes unchanged, unread
	}
	if err == nil {
		var vals [2][]byte
		var buf [96]byte
		vals[0], vals[1] = jsonString(buf[:0:64], x.model), jsonString(buf[64:64], versionString(x.version.Version))
		var dst []byte
		if inPlace {
			dst = x.lendAnswer()
		}
		body = splice(dst, body, spans[:2], vals[:])
		if inPlace {
			*x.answerBuf = body
			ab.take()
		}
	}
	// An answer that is not a JSON object passes unchanged.
	x.answer = bytesBody{b: body}
	resp.Body = &x.answer
	resp.ContentLength = int64(len(body))
	x.vals[3] = strconv.Itoa(len(body))
	resp.Header["Content-Length"] = x.vals[3:4:4]
	return nil
}

// lendAnswer lends the exchange a buffer for a rewritten answer, given
// back when the exchange finishes (the answer is written by then).
func (x *exchange) lendAnswer() []byte {
	if x.answerBuf == nil {
		x.answerBuf = x.g.answers.Get().(*[]byte)
	}
	return (*x.answerBuf)[:0]
}

// jsonString appends s as a JSON string: quoted as it is when nothing in
// it needs escaping (model names and numbers never do), else by
// encoding/json.
func jsonString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return b
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// bytesBody is a rewritten answer's body, kept in the exchange.
type bytesBody struct {
	b []byte
}

func (r *bytesBody) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *bytesBody) Close() error { return nil }

func isJSON(contentType string) bool {
	if contentType == "application/json" {
		return true // the common case, without parsing (which allocates)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
