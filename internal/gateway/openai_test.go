package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// openAIServer is an OpenAI-compatible upstream recording what it got.
type openAIServer struct {
	*httptest.Server
	mu   sync.Mutex
	last seen
}

func newOpenAIServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, body []byte)) *openAIServer {
	s := &openAIServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.last = seen{r.Method, r.URL.Path, string(b), r.Header.Clone()}
		s.mu.Unlock()
		h(w, r, b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *openAIServer) seen() seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// openAIErr decodes an OpenAI error body, failing unless it has the shape.
func openAIErr(t *testing.T, b []byte) openAIErrorDetail {
	t.Helper()
	var e struct {
		Error *openAIErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("body %s is not an OpenAI error", b)
	}
	return *e.Error
}

func llmVersion(t *testing.T, v, weight int, base string) deployment.RouteVersion {
	rv := remote(t, v, weight, base, runtime.ProtocolOpenAI)
	rv.PricePerMTokPrompt = 1e6 // one unit per token keeps the arithmetic readable
	rv.PricePerMTokCompletion = 2e6
	return rv
}

const chatBody = `{"model": "chat",  "messages":[{"role":"user","content":"hi \u00e9"}],"temperature":0.5}`

func TestOpenAIChatCompletion(t *testing.T) {
	up := newOpenAIServer(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","model":"llama","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`)
	})
	rv := llmVersion(t, 4, 100, up.URL+"/v1") // OpenAI-SDK-style base URL
	rv.UpstreamModel = "meta-llama/Llama-3-8B"
	h := newHarness(t, nil, route("chat", "production", rv))

	resp, b := h.do("POST", "/v1/chat/completions", chatBody, "Authorization", "Bearer sk-caller")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"content":"hello"`) || resp.Header.Get(HeaderVersion) != "4" {
		t.Fatalf("answer %d %s", resp.StatusCode, b)
	}
	s := up.seen()
	if s.Path != "/v1/chat/completions" {
		t.Errorf("upstream path %q", s.Path)
	}
	want := strings.Replace(chatBody, `"chat"`, `"meta-llama/Llama-3-8B"`, 1)
	if s.Body != want {
		t.Errorf("upstream body\n%s\nwant (only the model changed)\n%s", s.Body, want)
	}
	if s.Header.Get("Authorization") != "" {
		t.Error("the caller's API key reached the upstream")
	}
	h.settle()
	w, _ := h.rec.Snapshot("chat", "production")[0].Window("1m")
	if w.Count != 1 || w.PromptTokens != 12 || w.CompletionTokens != 3 || w.Cost != 12+3*2 {
		t.Errorf("window %+v, want 12 prompt and 3 completion tokens costing 18", w)
	}
	got := gather(t, h.reg)
	if got[`slipway_gateway_tokens_total{environment="production",kind="prompt",model="chat",version="4"}`] != 12 ||
		got[`slipway_gateway_cost_total{environment="production",model="chat",version="4"}`] != 18 {
		t.Errorf("prometheus tokens/cost not recorded: %v", got)
	}
}

func TestOpenAIStreamingPassesChunksThrough(t *testing.T) {
	next := make(chan struct{})
	up := newOpenAIServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n")
		w.(http.Flusher).Flush()
		// Chunk 2 is sent only once the client has read chunk 1: a
		// gateway that buffers the stream deadlocks here.
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"two\"}}]}\n\n")
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\r\n\r\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	h := newHarness(t, nil, route("chat", "production", llmVersion(t, 1, 100, up.URL)))

	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"chat","stream":true,"messages":[]}`))
	h.sent++
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := sseEvents(resp.Body)
	if first := <-events; !strings.Contains(first, `"one"`) {
		t.Fatalf("first event %q", first)
	}
	close(next)
	var rest []string
	for e := range events {
		rest = append(rest, e)
	}
	if len(rest) != 3 || !strings.Contains(rest[0], `"two"`) || !strings.Contains(rest[1], `"usage"`) || rest[2] != "[DONE]" {
		t.Errorf("later events %q", rest)
	}
	h.settle()
	w, _ := h.rec.Snapshot("chat", "production")[0].Window("10s")
	if w.PromptTokens != 5 || w.CompletionTokens != 2 || w.Cost != 5+2*2 {
		t.Errorf("stream usage not recorded: %+v", w)
	}
}

// sseEvents yields the data of each event as it arrives.
func sseEvents(r io.Reader) <-chan string {
	out := make(chan string)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "data: "); ok {
				out <- d
			}
		}
	}()
	return out
}

func TestOpenAIStreamUpstreamFallsSilent(t *testing.T) {
	up := newOpenAIServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	h := newHarness(t, func(c *Config) { c.UpstreamTimeout = 50 * time.Millisecond },
		route("chat", "production", llmVersion(t, 1, 100, up.URL)))
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"chat","stream":true}`))
	h.sent++
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"choices"`) || err == nil {
		t.Errorf("stream: %d %q err %v, want the first event and then a cut-off stream", resp.StatusCode, b, err)
	}
	h.settle()
	if got := gather(t, h.reg)[`slipway_gateway_requests_total{code="504",environment="production",model="chat",version="1"}`]; got != 1 {
		t.Errorf("a stream cut off by a silent upstream is not recorded as 504: %v", got)
	}
}

func TestOpenAIEmbeddingsAndCompletions(t *testing.T) {
	up := newOpenAIServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","path":%q,"usage":{"prompt_tokens":9,"total_tokens":9}}`, r.URL.Path)
	})
	h := newHarness(t, nil, route("embed", "production", llmVersion(t, 1, 100, up.URL)))
	for _, p := range []string{"/v1/embeddings", "/v1/completions"} {
		resp, b := h.do("POST", p, `{"model":"embed","input":"x"}`)
		if resp.StatusCode != 200 || !strings.Contains(string(b), p) {
			t.Errorf("%s: %d %s", p, resp.StatusCode, b)
		}
	}
	h.settle()
	w, _ := h.rec.Snapshot("embed", "production")[0].Window("10s")
	if w.PromptTokens != 18 || w.CompletionTokens != 0 {
		t.Errorf("window %+v", w)
	}
}

func TestOpenAIErrors(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	dead := ln.URL
	ln.Close()
	h := newHarness(t, func(c *Config) { c.MaxBodyBytes = 256 },
		route("chat", "production", llmVersion(t, 1, 100, dead)),
		route("fraud", "production", inProcess(1, 100, &fakeModel{})))
	tests := []struct {
		name, body  string
		status      int
		typ, code   string
		msgContains string
	}{
		{"unknown model", `{"model":"nope"}`, 404, "invalid_request_error", "model_not_found", `"nope"`},
		{"no model", `{"messages":[]}`, 400, "invalid_request_error", "invalid_request", `no "model"`},
		{"model not a string", `{"model":7}`, 400, "invalid_request_error", "invalid_request", "must be a string"},
		{"not JSON", `model=chat`, 400, "invalid_request_error", "invalid_request", "not valid JSON"},
		{"duplicate model", `{"model":"chat","model":"fraud"}`, 400, "invalid_request_error", "invalid_request", "more than once"},
		{"OIP model", `{"model":"fraud"}`, 400, "invalid_request_error", "wrong_protocol", "/v2/models/fraud/infer"},
		{"too large", `{"model":"chat","x":"` + strings.Repeat("y", 300) + `"}`, 413, "invalid_request_error", "request_too_large", "256 bytes"},
		{"upstream down", `{"model":"chat"}`, 502, "server_error", "upstream_error", "request id"},
	}
	for _, tt := range tests {
		resp, b := h.do("POST", "/v1/chat/completions", tt.body)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, resp.StatusCode, tt.status, b)
			continue
		}
		e := openAIErr(t, b)
		if e.Type != tt.typ || e.Code != tt.code || !strings.Contains(e.Message, tt.msgContains) {
			t.Errorf("%s: error %+v, want type %s code %s mentioning %q", tt.name, e, tt.typ, tt.code, tt.msgContains)
		}
	}
	resp, b := h.do("GET", "/v1/chat/completions", "")
	if resp.StatusCode != 405 || openAIErr(t, b).Code != "method_not_allowed" {
		t.Errorf("GET chat: %d %s", resp.StatusCode, b)
	}
}

func TestOpenAIModels(t *testing.T) {
	up := newOpenAIServer(t, func(http.ResponseWriter, *http.Request, []byte) {})
	h := newHarness(t, nil,
		route("zeta-chat", "production", llmVersion(t, 1, 100, up.URL)),
		route("alpha-chat", "production", llmVersion(t, 2, 100, up.URL)),
		route("fraud", "production", inProcess(1, 100, &fakeModel{})),
		route("staging-chat", "staging", llmVersion(t, 1, 100, up.URL)))

	resp, b := h.do("GET", "/v1/models", "")
	var list struct {
		Object string        `json:"object"`
		Data   []openAIModel `json:"data"`
	}
	if err := json.Unmarshal(b, &list); err != nil || resp.StatusCode != 200 || list.Object != "list" {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.OwnedBy != "slipway" {
			t.Errorf("entry %+v", m)
		}
	}
	if strings.Join(ids, ",") != "alpha-chat,zeta-chat" {
		t.Errorf("production models %v, want the OpenAI ones sorted", ids)
	}
	_, b = h.do("GET", "/v1/models", "", HeaderEnvironment, "staging")
	if !strings.Contains(string(b), `"staging-chat"`) || strings.Contains(string(b), "alpha") {
		t.Errorf("staging list %s", b)
	}
	resp, b = h.do("GET", "/v1/models/alpha-chat", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"id":"alpha-chat"`) {
		t.Errorf("retrieve: %d %s", resp.StatusCode, b)
	}
	resp, b = h.do("GET", "/v1/models/fraud", "")
	if resp.StatusCode != 404 || openAIErr(t, b).Code != "model_not_found" {
		t.Errorf("retrieve OIP model: %d %s", resp.StatusCode, b)
	}
}

func TestUsageTap(t *testing.T) {
	stream := "data: {\"choices\":[{\"delta\":{}}]}\n\n" +
		"data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\r\n\r\n" +
		": comment\n" +
		"data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n" +
		"data: [DONE]\n\n"
	big := `{"data":"` + strings.Repeat("x", 3<<20) + `","usage":{"prompt_tokens":8,"completion_tokens":0}}`
	tests := []struct {
		name, contentType, body string
		chunk                   int
		prompt, completion      int
		ok                      bool
	}{
		{"stream in one write", "text/event-stream", stream, 1 << 20, 3, 4, true},
		{"stream byte by byte", "text/event-stream; charset=utf-8", stream, 1, 3, 4, true},
		{"json", "application/json", `{"usage":{"prompt_tokens":2,"completion_tokens":5}}`, 7, 2, 5, true},
		{"json in one piece", "application/json", `{"usage":{"prompt_tokens":6,"completion_tokens":1}}`, 1 << 20, 6, 1, true},
		{"json in one piece, no usage", "application/json", `{"usage":null}`, 1 << 20, 0, 0, false},
		{"large json keeps the tail", "application/json", big, 4096, 8, 0, true},
		{"no usage", "application/json", `{"choices":[]}`, 100, 0, 0, false},
		{"not json", "text/plain", `usage 3`, 100, 0, 0, false},
	}
	for _, tt := range tests {
		u := &usageTap{}
		u.start(tt.contentType, strconv.Itoa(len(tt.body)))
		for b := []byte(tt.body); len(b) > 0; {
			n := min(tt.chunk, len(b))
			u.Write(b[:n])
			b = b[n:]
		}
		p, c, ok := u.result()
		if p != tt.prompt || c != tt.completion || ok != tt.ok {
			t.Errorf("%s: usage %d/%d %v, want %d/%d %v", tt.name, p, c, ok, tt.prompt, tt.completion, tt.ok)
		}
		if u.buf != nil && tt.chunk >= len(tt.body) && !u.sse && u.active {
			t.Errorf("%s: an answer in one piece of its announced length was copied", tt.name)
		}
	}
	// Without an announced length a one-piece answer is kept and read at
	// the end, as before.
	u := &usageTap{}
	u.start("application/json", "")
	u.Write([]byte(`{"usage":{"prompt_tokens":4,"completion_tokens":2}}`))
	if p, c, ok := u.result(); p != 4 || c != 2 || !ok {
		t.Errorf("no length: usage %d/%d %v", p, c, ok)
	}
}
