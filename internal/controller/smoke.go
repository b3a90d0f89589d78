package controller

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/rollout"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// maxSmokeAnswer bounds a smoke answer read into memory.
const maxSmokeAnswer = 1 << 20

// runSmoke sends each smoke request to the candidate's runtime — not
// through the gateway, so no client's traffic, limit or injected fault is
// involved — and checks each answer against what the spec expects.
// Open Inference Protocol versions get POST /v2/models/{name}/infer,
// OpenAI-compatible ones POST /v1/chat/completions.
func (c *Controller) runSmoke(ctx context.Context, r domain.Rollout, req rollout.SmokeRequest) rollout.SmokeResult {
	res := rollout.SmokeResult{Run: req.Run}
	rt := c.cfg.Deployments.Routes().Lookup(r.Model, r.Environment)
	var rv *routeVersion
	if rt != nil {
		if v := rt.Version(req.Candidate); v != nil {
			rv = &routeVersion{ep: v.Endpoint, model: v.UpstreamModel}
		}
	}
	for _, sc := range req.Cases {
		if rv == nil {
			res.Failures = append(res.Failures, fmt.Sprintf("smoke %q: version %d is not running in %s", sc.Name, req.Candidate, r.Environment))
			continue
		}
		if err := c.smokeOne(ctx, rv, sc); err != nil {
			res.Failures = append(res.Failures, err.Error())
		}
	}
	return res
}

// routeVersion is where the candidate's requests go.
type routeVersion struct {
	ep    runtime.Endpoint
	model string
}

func (c *Controller) smokeOne(ctx context.Context, rv *routeVersion, sc rollout.SmokeCase) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.SmokeTimeout)
	defer cancel()
	path := "/v2/models/" + rv.model + "/infer"
	if rv.ep.Protocol == runtime.ProtocolOpenAI {
		path = "/v1/chat/completions"
	}
	status, body, err := call(ctx, rv.ep, path, sc.Request)
	if err != nil {
		return fmt.Errorf("smoke %q: %v", sc.Name, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("smoke %q: status %d: %s", sc.Name, status, strings.TrimSpace(string(truncate(body, 200))))
	}
	return sc.Check(body)
}

// call sends one JSON request to an endpoint, in process or remote.
func call(ctx context.Context, ep runtime.Endpoint, path string, body []byte) (int, []byte, error) {
	if ep.Handler != nil {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		ep.Handler.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes(), nil
	}
	if ep.URL == nil || ep.Transport == nil {
		return 0, nil, fmt.Errorf("the version has neither a handler nor a URL to call")
	}
	u := *ep.URL
	u.Path = strings.TrimRight(u.Path, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: ep.Transport}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSmokeAnswer))
	return resp.StatusCode, b, err
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
