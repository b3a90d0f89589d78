package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
)

func modelPath(m string) string { return "/api/v1/models/" + url.PathEscape(m) }
func versionPath(m, ref string) string {
	return modelPath(m) + "/versions/" + url.PathEscape(ref)
}

// CreateModel registers a model.
func (c *Client) CreateModel(ctx context.Context, req api.ModelRequest) (domain.Model, error) {
	var m domain.Model
	return m, c.sendJSON(ctx, http.MethodPost, "/api/v1/models", req, &m)
}

// GetModel returns one model.
func (c *Client) GetModel(ctx context.Context, name string) (domain.Model, error) {
	var m domain.Model
	return m, c.getJSON(ctx, modelPath(name), nil, &m)
}

// ListModels returns one page of models.
func (c *Client) ListModels(ctx context.Context, p Page) (api.List[domain.Model], error) {
	var l api.List[domain.Model]
	return l, c.getJSON(ctx, "/api/v1/models", p.values(), &l)
}

// PushVersion registers a version whose blobs are uploaded.
func (c *Client) PushVersion(ctx context.Context, model string, req api.VersionRequest) (domain.Version, error) {
	var v domain.Version
	return v, c.sendJSON(ctx, http.MethodPost, modelPath(model)+"/versions", req, &v)
}

// VersionFilter narrows ListVersions.
type VersionFilter struct {
	State  string
	Alias  string
	Labels map[string]string
}

// ListVersions returns one page of a model's versions.
func (c *Client) ListVersions(ctx context.Context, model string, f VersionFilter, p Page) (api.List[domain.Version], error) {
	q := p.values()
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Alias != "" {
		q.Set("alias", f.Alias)
	}
	keys := make([]string, 0, len(f.Labels))
	for k := range f.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Add("label", k+"="+f.Labels[k])
	}
	var l api.List[domain.Version]
	return l, c.getJSON(ctx, modelPath(model)+"/versions", q, &l)
}

// GetVersion returns a version by number ("3") or alias ("@champion").
func (c *Client) GetVersion(ctx context.Context, model, ref string) (domain.Version, error) {
	var v domain.Version
	return v, c.getJSON(ctx, versionPath(model, ref), nil, &v)
}

// Manifest returns a version's artifact manifest.
func (c *Client) Manifest(ctx context.Context, model, ref string) (api.ManifestResponse, error) {
	var m api.ManifestResponse
	return m, c.getJSON(ctx, versionPath(model, ref)+"/manifest", nil, &m)
}

// Verify asks the server to re-hash a version's stored artifact.
func (c *Client) Verify(ctx context.Context, model, ref string) (registry.VerifyReport, error) {
	var r registry.VerifyReport
	return r, c.sendJSON(ctx, http.MethodPost, versionPath(model, ref)+"/verify", struct{}{}, &r)
}

// SetState moves a version along its lifecycle.
func (c *Client) SetState(ctx context.Context, model, ref string, s domain.State) (domain.Version, error) {
	var v domain.Version
	return v, c.sendJSON(ctx, http.MethodPut, versionPath(model, ref)+"/state", api.StateRequest{State: s}, &v)
}

// SetLabels changes a version's labels.
func (c *Client) SetLabels(ctx context.Context, model, ref string, req api.LabelsRequest) (domain.Version, error) {
	var v domain.Version
	return v, c.sendJSON(ctx, http.MethodPatch, versionPath(model, ref)+"/labels", req, &v)
}

// ListAliases returns a model's aliases.
func (c *Client) ListAliases(ctx context.Context, model string, p Page) (api.List[domain.Alias], error) {
	var l api.List[domain.Alias]
	return l, c.getJSON(ctx, modelPath(model)+"/aliases", p.values(), &l)
}

// GetAlias returns one alias.
func (c *Client) GetAlias(ctx context.Context, model, alias string) (domain.Alias, error) {
	var a domain.Alias
	return a, c.getJSON(ctx, modelPath(model)+"/aliases/"+url.PathEscape(alias), nil, &a)
}

// SetAlias points an alias at a version; expected (when not nil) is the
// version it must point at now, 0 for "must not exist".
func (c *Client) SetAlias(ctx context.Context, model, alias, ref string, expected *int) (domain.Alias, error) {
	var a domain.Alias
	return a, c.sendJSON(ctx, http.MethodPut, modelPath(model)+"/aliases/"+url.PathEscape(alias),
		api.AliasRequest{Version: api.VersionRef(ref), ExpectedVersion: expected}, &a)
}

// DeleteAlias removes an alias.
func (c *Client) DeleteAlias(ctx context.Context, model, alias string, expected *int) error {
	q := url.Values{}
	if expected != nil {
		q.Set("expected_version", strconv.Itoa(*expected))
	}
	req, err := c.newRequest(ctx, http.MethodDelete, modelPath(model)+"/aliases/"+url.PathEscape(alias), q, nil)
	if err != nil {
		return err
	}
	return c.do(req, nil)
}

// ListAudit returns one page of audit entries.
func (c *Client) ListAudit(ctx context.Context, subject, actor string, p Page) (api.List[audit.Entry], error) {
	q := p.values()
	if subject != "" {
		q.Set("subject", subject)
	}
	if actor != "" {
		q.Set("actor", actor)
	}
	var l api.List[audit.Entry]
	return l, c.getJSON(ctx, "/api/v1/audit", q, &l)
}

// VerifyAudit asks the server to verify the whole audit chain.
func (c *Client) VerifyAudit(ctx context.Context) (audit.Report, error) {
	var r audit.Report
	return r, c.getJSON(ctx, "/api/v1/audit/verify", nil, &r)
}

// CreateToken mints a token; the secret is in the answer only.
func (c *Client) CreateToken(ctx context.Context, name string, role domain.Role) (api.TokenResponse, error) {
	var t api.TokenResponse
	return t, c.sendJSON(ctx, http.MethodPost, "/api/v1/tokens", api.TokenRequest{Name: name, Role: role}, &t)
}

// ListTokens returns one page of tokens.
func (c *Client) ListTokens(ctx context.Context, p Page) (api.List[domain.Token], error) {
	var l api.List[domain.Token]
	return l, c.getJSON(ctx, "/api/v1/tokens", p.values(), &l)
}

// RevokeToken revokes a token by name.
func (c *Client) RevokeToken(ctx context.Context, name string) (domain.Token, error) {
	var t domain.Token
	req, err := c.newRequest(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name), nil, nil)
	if err != nil {
		return t, err
	}
	return t, c.do(req, &t)
}
