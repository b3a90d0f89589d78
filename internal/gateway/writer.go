package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/runtime/oip"
)

// responseWriter stamps the gateway's headers on the answer, remembers the
// status and size for metrics and logs, and shows the body to the usage
// tap of OpenAI answers.
type responseWriter struct {
	http.ResponseWriter
	x      *exchange
	status int
	bytes  int64
	tap    *usageTap // set at WriteHeader for 2xx OpenAI answers
	// capture, when set before the answer starts, keeps a copy of the
	// answer's bytes for the shadow comparison and the idempotent-replay
	// store (capture.go).
	capture *capture
	// An answer over the response cap (limits.go) is refused before it
	// starts or cut off after; failing is set while the refusal is
	// written.
	refused, cut, failing bool
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational; the real status follows
		return
	}
	if w.status != 0 {
		return
	}
	if m := w.x.g.limits.maxResponse; m > 0 && !w.failing && declaredOver(w.Header(), m) {
		w.refuse(m)
		return
	}
	w.status = code
	h := w.Header()
	x := w.x
	x.vals[0] = x.id
	h[keyRequestID] = x.vals[0:1:1]
	if v := x.version; v != nil {
		x.vals[1] = versionString(v.Version)
		h[HeaderVersion] = x.vals[1:2:2]
	} else {
		delete(h, HeaderVersion)
	}
	if x.fallbackFrom != 0 {
		x.vals[2] = versionString(x.fallbackFrom)
		h[HeaderFallbackFrom] = x.vals[2:3:3]
	} else {
		delete(h, HeaderFallbackFrom)
	}
	if w.x.usage != nil && code >= 200 && code < 300 {
		w.x.usage.start(firstValue(h, "Content-Type"), firstValue(h, "Content-Length"))
		w.tap = w.x.usage
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.refused || w.cut {
		return 0, errResponseTooLarge
	}
	if m := w.x.g.limits.maxResponse; m > 0 && !w.failing && w.bytes+int64(len(b)) > m {
		w.cutOff(m)
		return 0, errResponseTooLarge
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	if w.tap != nil {
		w.tap.Write(b[:n])
	}
	if w.capture != nil {
		w.capture.write(b[:n])
	}
	return n, err
}

// FlushError lets streamed answers (ReverseProxy's flushes, in-process
// handlers' http.ResponseController) reach the client chunk by chunk.
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(interface{ FlushError() error }); ok {
		return f.FlushError() // the gateway's server: no controller to allocate
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush is FlushError for callers that only know http.Flusher.
func (w *responseWriter) Flush() { _ = w.FlushError() }

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufferWriter holds a small answer (model metadata, readiness) so the
// gateway can rewrite it before the client sees it.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	limit  int
	over   bool
}

func newBufferWriter(limit int) *bufferWriter {
	return &bufferWriter{header: http.Header{}, limit: limit}
}

func (b *bufferWriter) Header() http.Header { return b.header }

func (b *bufferWriter) WriteHeader(code int) {
	if b.status == 0 && code >= 200 {
		b.status = code
	}
}

func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.body.Len()+len(p) > b.limit {
		b.over = true
		return 0, fmt.Errorf("answer is larger than %d bytes", b.limit)
	}
	return b.body.Write(p)
}

// writeTo sends the buffered answer, with body in place of the one held.
func (b *bufferWriter) writeTo(w http.ResponseWriter, body []byte) {
	h := w.Header()
	for k, v := range b.header {
		if k != "Content-Length" {
			h[k] = v
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(b.status)
	_, _ = w.Write(body)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// openAIError is the OpenAI API's error body.
type openAIError struct {
	Error openAIErrorDetail `json:"error"`
}

type openAIErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// fail answers an error in the protocol of the request: {"error": "..."}
// for the Open Inference Protocol, {"error": {"message", "type", "code"}}
// for the OpenAI API. Server-side failures name the request ID, so that a
// caller's report finds the log line.
func (x *exchange) fail(status int, code, msg string) {
	if x.w.status != 0 {
		return // an answer has started; the caller sees it cut off
	}
	if status >= 500 {
		msg += " (request id " + x.id + ")"
	}
	if x.api == apiOIP {
		oip.WriteError(x.w, status, msg)
		return
	}
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	writeJSON(x.w, status, openAIError{Error: openAIErrorDetail{Message: msg, Type: typ, Code: code}})
}

// joinPath appends p to a base URL path without doubling slashes.
func joinPath(base, p string) string {
	return strings.TrimSuffix(base, "/") + p
}
