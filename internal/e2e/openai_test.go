package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/slipway-ml/slipway/internal/api"
)

// Token usage the fake upstream reports, per endpoint.
const (
	chatPrompt, chatCompletion     = 11, 7
	streamPrompt, streamCompletion = 13, 5
	textPrompt, textCompletion     = 5, 9
	embedPrompt                    = 4
)

// streamPieces are the content deltas of the streamed chat answer.
var streamPieces = []string{"Once", " upon", " a", " time", ", a", " model", " shipped."}

// TestOpenAICompatibility calls the gateway with the official OpenAI Go SDK
// over a local OpenAI-compatible upstream: chat completions plain and
// streamed, completions, embeddings and the model list; then the tokens
// and requests land in the deployment's live metrics and on /metrics.
func TestOpenAICompatibility(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	up := newFakeOpenAI(t)
	c := srv.admin()
	c.ok("model", "create", "assistant")
	// The upstream knows the model by another name; loopback is allowed
	// by the default egress policy.
	c.ok("version", "push", "assistant", "--format", "openai", "--set", "url="+up.URL, "--set", "model_name=upstream-llm")
	c.ok("deploy", "assistant", "1", "--env", "production")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	client := openai.NewClient(
		option.WithBaseURL("http://"+srv.gateway+"/v1"),
		option.WithAPIKey("unused"),
		option.WithMaxRetries(0), // a failure must show, not be retried away
	)

	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "assistant",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the capital of France?")},
	})
	if err != nil {
		t.Fatalf("chat completion: %v", err)
	}
	if len(chat.Choices) != 1 || chat.Choices[0].Message.Content != "Paris is the capital of France." ||
		chat.Usage.PromptTokens != chatPrompt || chat.Usage.CompletionTokens != chatCompletion {
		t.Fatalf("chat completion: %s", chat.RawJSON())
	}

	// Streaming: the upstream sends each event only after the SDK has
	// received the one before, so a gateway that held the answer back
	// would starve it and the text would come out short.
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "assistant",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	var deltas []string
	chunks := 0
	for stream.Next() {
		chunk := stream.Current()
		chunks++
		up.ack <- struct{}{}
		acc.AddChunk(chunk)
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			deltas = append(deltas, chunk.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("streaming chat completion after %d chunks: %v", chunks, err)
	}
	stream.Close()
	if !slices.Equal(deltas, streamPieces) || chunks != len(streamPieces)+3 {
		t.Fatalf("streamed %d chunks with deltas %q, want %d chunks with %q (upstream: %s)", chunks, deltas, len(streamPieces)+3, streamPieces, up.note())
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != strings.Join(streamPieces, "") ||
		acc.Usage.PromptTokens != streamPrompt || acc.Usage.CompletionTokens != streamCompletion {
		t.Fatalf("accumulated stream: %+v, usage %+v", acc.Choices, acc.Usage)
	}

	text, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:  "assistant",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hello")},
	})
	if err != nil {
		t.Fatalf("completion: %v", err)
	}
	if len(text.Choices) != 1 || text.Choices[0].Text != ", world" || text.Usage.CompletionTokens != textCompletion {
		t.Fatalf("completion: %s", text.RawJSON())
	}

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "assistant",
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("slipway")},
	})
	if err != nil {
		t.Fatalf("embeddings: %v", err)
	}
	if len(emb.Data) != 1 || !slices.Equal(emb.Data[0].Embedding, []float64{0.25, -0.5, 1}) || emb.Usage.PromptTokens != embedPrompt {
		t.Fatalf("embeddings: %s", emb.RawJSON())
	}

	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatalf("models: %v", err)
	}
	if !slices.ContainsFunc(models.Data, func(m openai.Model) bool { return m.ID == "assistant" && m.OwnedBy == "slipway" }) {
		t.Fatalf("models: %s", models.RawJSON())
	}
	if _, err := client.Models.Get(ctx, "assistant"); err != nil {
		t.Fatalf("model get: %v", err)
	}

	// What the upstream saw: its own model name, and none of the
	// caller's credentials.
	for _, rec := range up.requests() {
		if rec.path != "/v1/models" && rec.model != "upstream-llm" {
			t.Errorf("upstream got model %q on %s, want upstream-llm", rec.model, rec.path)
		}
		if rec.auth != "" {
			t.Errorf("upstream got Authorization %q on %s; the caller's credentials must not leave the gateway", rec.auth, rec.path)
		}
	}
	if got := up.paths(); !slices.Equal(got, []string{"/v1/chat/completions", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"}) {
		t.Errorf("upstream inference requests %v", got)
	}

	// Live metrics and /metrics: a request is recorded once its answer
	// has ended, which may be a moment after the client has read it, so
	// the figures are awaited, then checked.
	const calls = 4
	wantPrompt := uint64(chatPrompt + streamPrompt + textPrompt + embedPrompt)
	wantCompletion := uint64(chatCompletion + streamCompletion + textCompletion)
	labels := map[string]string{"model": "assistant", "version": "1", "environment": "production"}
	tokens := func(prom, kind string) uint64 {
		return uint64(promSum(prom, "slipway_gateway_tokens_total", map[string]string{"model": "assistant", "kind": kind}))
	}
	poll(t, 30*time.Second, "the metrics to count every call", func() (bool, string) {
		m := deploymentMetrics(t, srv, "assistant", "production")
		w, ok := windowOf(m, 1, "5m")
		prom := getText(t, "http://"+srv.addr+"/metrics", "")
		requests := promSum(prom, "slipway_gateway_requests_total", labels)
		note := fmt.Sprintf("live %+v; /metrics: %v requests, %d prompt and %d completion tokens",
			w, requests, tokens(prom, "prompt"), tokens(prom, "completion"))
		if !ok || w.Count < calls || w.PromptTokens < wantPrompt || w.CompletionTokens < wantCompletion ||
			requests < calls || tokens(prom, "prompt") < wantPrompt || tokens(prom, "completion") < wantCompletion {
			return false, note
		}
		if w.Count != calls || w.Errors != 0 || w.PromptTokens != wantPrompt || w.CompletionTokens != wantCompletion || w.P50Ms <= 0 ||
			requests != calls || tokens(prom, "prompt") != wantPrompt || tokens(prom, "completion") != wantCompletion {
			t.Fatalf("metrics of version 1: %s; want %d calls, no errors, %d prompt and %d completion tokens", note, calls, wantPrompt, wantCompletion)
		}
		return true, note
	})
}

// fakeOpenAI is an OpenAI-compatible model server on loopback.
type fakeOpenAI struct {
	*httptest.Server
	// ack is sent to by the test for every streamed chunk it receives.
	ack chan struct{}

	mu      sync.Mutex
	seen    []upstreamRequest
	stalled string
}

type upstreamRequest struct{ path, model, auth string }

func newFakeOpenAI(t *testing.T) *fakeOpenAI {
	f := &fakeOpenAI{ack: make(chan struct{}, 64)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeOpenAI) requests() []upstreamRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// paths lists the inference paths called, in order.
func (f *fakeOpenAI) paths() []string {
	var out []string
	for _, r := range f.requests() {
		if r.path != "/v1/models" {
			out = append(out, r.path)
		}
	}
	return out
}

func (f *fakeOpenAI) note() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stalled == "" {
		return "sent everything"
	}
	return f.stalled
}

func (f *fakeOpenAI) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
			return
		}
	}
	f.mu.Lock()
	f.seen = append(f.seen, upstreamRequest{path: r.URL.Path, model: body.Model, auth: r.Header.Get("Authorization")})
	f.mu.Unlock()
	usage := func(p, c int) map[string]int {
		return map[string]int{"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		writeJSONBody(w, map[string]any{"object": "list", "data": []map[string]any{{"id": "upstream-llm", "object": "model", "created": 0, "owned_by": "test"}}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" && body.Stream:
		f.stream(w, r, body.Model, body.StreamOptions.IncludeUsage)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		writeJSONBody(w, map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": body.Model,
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "logprobs": nil,
				"message": map[string]any{"role": "assistant", "content": "Paris is the capital of France."}}},
			"usage": usage(chatPrompt, chatCompletion),
		})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/completions":
		writeJSONBody(w, map[string]any{
			"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": body.Model,
			"choices": []map[string]any{{"index": 0, "text": ", world", "finish_reason": "length", "logprobs": nil}},
			"usage":   usage(textPrompt, textCompletion),
		})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/embeddings":
		writeJSONBody(w, map[string]any{
			"object": "list", "model": body.Model,
			"data":  []map[string]any{{"object": "embedding", "index": 0, "embedding": []float64{0.25, -0.5, 1}}},
			"usage": map[string]int{"prompt_tokens": embedPrompt, "total_tokens": embedPrompt},
		})
	default:
		http.Error(w, `{"error":{"message":"no such endpoint"}}`, http.StatusNotFound)
	}
}

// stream answers server-sent events: a role chunk, one chunk per piece, a
// finish chunk, a usage chunk when asked, then [DONE]. Up to the finish
// chunk it sends each event only once the client acknowledged the one
// before; if no acknowledgement comes it stops, leaving the answer short.
func (f *fakeOpenAI) stream(w http.ResponseWriter, r *http.Request, model string, withUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	chunk := func(choices []map[string]any, usage any) map[string]any {
		return map[string]any{"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
			"choices": choices, "usage": usage}
	}
	delta := func(d map[string]any, finish any) []map[string]any {
		return []map[string]any{{"index": 0, "delta": d, "finish_reason": finish, "logprobs": nil}}
	}
	events := []any{chunk(delta(map[string]any{"role": "assistant", "content": ""}, nil), nil)}
	for _, p := range streamPieces {
		events = append(events, chunk(delta(map[string]any{"content": p}, nil), nil))
	}
	gated := len(events) // events before this one wait for an ack
	events = append(events, chunk(delta(map[string]any{}, "stop"), nil))
	if withUsage {
		events = append(events, chunk([]map[string]any{}, map[string]int{
			"prompt_tokens": streamPrompt, "completion_tokens": streamCompletion, "total_tokens": streamPrompt + streamCompletion}))
	}
	rc := http.NewResponseController(w)
	for i, ev := range events {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if err := rc.Flush(); err != nil {
			return
		}
		if i+1 >= gated {
			continue
		}
		select {
		case <-f.ack:
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Second):
			f.mu.Lock()
			f.stalled = "no acknowledgement of event " + strconv.Itoa(i) + "; the gateway held it back"
			f.mu.Unlock()
			return
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

func writeJSONBody(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// deploymentMetrics reads GET /api/v1/models/{m}/deployments/{env}/metrics
// with the admin token.
func deploymentMetrics(t *testing.T, s *server, model, env string) api.DeploymentMetrics {
	t.Helper()
	var m api.DeploymentMetrics
	decodeStrict(t, getText(t, "http://"+s.addr+"/api/v1/models/"+model+"/deployments/"+env+"/metrics", s.token), &m)
	return m
}

// windowOf returns one version's window of the given name.
func windowOf(m api.DeploymentMetrics, version int, name string) (w struct {
	Count, Errors, PromptTokens, CompletionTokens uint64
	P50Ms                                         float64
}, ok bool) {
	for _, v := range m.Versions {
		if v.Version != version {
			continue
		}
		if win, found := v.Window(name); found {
			w.Count, w.Errors, w.PromptTokens, w.CompletionTokens, w.P50Ms = win.Count, win.Errors, win.PromptTokens, win.CompletionTokens, win.P50Ms
			return w, true
		}
	}
	return w, false
}

// getText GETs url (with a bearer token unless empty) and returns the body
// of a 200 answer.
func getText(t *testing.T, url, token string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, b)
	}
	return string(b)
}

// promSum adds up the samples of metric name in Prometheus text whose
// labels include every one of labels.
func promSum(text, name string, labels map[string]string) float64 {
	sum := 0.0
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), name+"{")
		if !ok {
			continue
		}
		ls, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		have := strings.Split(ls, ",")
		match := true
		for k, v := range labels {
			match = match && slices.Contains(have, k+"="+strconv.Quote(v))
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); match && err == nil {
			sum += f
		}
	}
	return sum
}
