// Package external runs a version served by someone else's server
// (KServe, Triton, vLLM, a hosted OpenAI-compatible API): slipway only
// checks that the server answers and hands the gateway its URL and a
// transport that enforces the egress policy. It imports runtime, egress and
// domain; never the gateway, deployments or stores.
package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Config is what an external runtime needs.
type Config struct {
	// ModelName is the slipway model name, used in messages and as the
	// upstream name when Options.ModelName is empty.
	ModelName string
	Options   runtime.ExternalOptions
	// Policy is the egress policy; nil means loopback only.
	Policy *egress.Policy
}

// Runtime is a version served by a remote server.
type Runtime struct {
	cfg       Config
	transport *http.Transport
	client    *http.Client

	mu      sync.Mutex
	started bool
	stopped bool
}

// New returns a runtime for cfg; nothing is contacted until Start.
func New(cfg Config) *Runtime {
	if cfg.Options.Timeout <= 0 {
		cfg.Options.Timeout = runtime.DefaultTimeout
	}
	tr := cfg.Policy.Transport()
	// A server that has not started answering within the timeout is
	// treated as down; a streaming answer, once started, is not cut.
	tr.ResponseHeaderTimeout = cfg.Options.Timeout
	return &Runtime{
		cfg:       cfg,
		transport: tr,
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Start checks the URL against the egress policy and that the server
// answers its health endpoint within the timeout.
func (r *Runtime) Start(ctx context.Context) error {
	if r.cfg.Options.URL == nil {
		return fmt.Errorf("external runtime for model %q has no url: %w", r.cfg.ModelName, domain.ErrInvalid)
	}
	if _, err := r.cfg.Policy.CheckURL(r.cfg.Options.URL.String()); err != nil {
		return fmt.Errorf("external runtime for model %q: %w", r.cfg.ModelName, err)
	}
	if err := r.check(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started, r.stopped = true, false
	return nil
}

// Endpoint returns the server's base URL and the egress transport.
func (r *Runtime) Endpoint() runtime.Endpoint {
	if r.cfg.Options.URL == nil {
		return runtime.Endpoint{Protocol: r.cfg.Options.Protocol}
	}
	u := *r.cfg.Options.URL
	return runtime.Endpoint{Protocol: r.cfg.Options.Protocol, URL: &u, Transport: r.transport}
}

// Health asks the server's health endpoint again.
func (r *Runtime) Health(ctx context.Context) error {
	r.mu.Lock()
	started, stopped := r.started, r.stopped
	r.mu.Unlock()
	if !started || stopped {
		return fmt.Errorf("external runtime for model %q is not started: %w", r.cfg.ModelName, domain.ErrUnavailable)
	}
	return r.check(ctx)
}

// Stop forgets the server's idle connections; the server itself is not
// slipway's to stop.
func (r *Runtime) Stop(context.Context) error {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.transport.CloseIdleConnections()
	return nil
}

// healthURL is the base URL with the protocol's health path appended.
func (r *Runtime) healthURL() string {
	u := *r.cfg.Options.URL
	path := "/v2/health/ready"
	if r.cfg.Options.Protocol == runtime.ProtocolOpenAI {
		path = "/v1/models"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	return u.String()
}

// check makes one health request bounded by the timeout and judges the
// answer by the protocol: oip-v2 wants 200 and, if there is a body, JSON
// that does not say ready is false; openai wants 200 and a model list.
func (r *Runtime) check(ctx context.Context) error {
	target := r.healthURL()
	fail := func(format string, a ...any) error {
		return fmt.Errorf("model server of %q at %s (%s): %s: %w", r.cfg.ModelName, target, r.cfg.Options.Protocol,
			fmt.Sprintf(format, a...), domain.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Options.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fail("building the request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		if errors.Is(err, egress.ErrRefused) {
			return fmt.Errorf("model server of %q at %s: %w: %w", r.cfg.ModelName, target, unwrapURL(err), domain.ErrInvalid)
		}
		// Two clocks bound the check, the context's and the transport's
		// response-header timeout; both are the same option.
		var ne net.Error
		if (errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil) || (errors.As(err, &ne) && ne.Timeout()) {
			return fail("no answer within %s", r.cfg.Options.Timeout)
		}
		return fail("%v", unwrapURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail("reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
			return fail("answered %s redirecting to %q; slipway does not follow redirects, give the final URL", resp.Status, loc)
		}
		return fail("answered %s%s", resp.Status, bodySnippet(body))
	}
	switch r.cfg.Options.Protocol {
	case runtime.ProtocolOpenAI:
		var list struct {
			Data *[]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &list); err != nil || list.Data == nil {
			return fail("answered 200 but not with an OpenAI model list (a JSON object with \"data\")%s", bodySnippet(body))
		}
	default:
		if len(strings.TrimSpace(string(body))) == 0 {
			return nil // Triton answers an empty 200
		}
		var ready struct {
			Ready *bool `json:"ready"`
		}
		if err := json.Unmarshal(body, &ready); err != nil {
			return fail("answered 200 with a body that is not JSON%s", bodySnippet(body))
		}
		if ready.Ready != nil && !*ready.Ready {
			return fail("says it is not ready")
		}
	}
	return nil
}

// bodySnippet quotes the start of an answer for an error message.
func bodySnippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return fmt.Sprintf(": %q", s)
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
