package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/slipway-ml/slipway/internal/auth"
)

// Authentication on the gateway. Callers may present a slipway API token
// as "Authorization: Bearer slw_…", the way the OpenAI SDKs send their API
// key. The rules:
//
//   - A slipway token is verified (Config.Tokens, which remembers verdicts
//     for a few seconds so the hot path does not read the store): a
//     malformed, unknown or revoked one gets 401, whatever else the
//     request carries. Every role may call models.
//   - With Config.RequireToken, every request needs a valid slipway token
//     (401 without one), except the health probes /v2/health/live and
//     /v2/health/ready, which load balancers call without credentials.
//   - Without it, a request with no Authorization header, or with
//     credentials that are not a slipway token (an OpenAI SDK user's
//     placeholder key, Basic credentials), is anonymous: it is served,
//     and rate-limited per client address with the per-token rate.
//
// The caller's token or address is its identity for the per-caller rate
// limit and the scope of its idempotency keys. The Authorization header
// never reaches a model server (outboundHeaders drops it).

// TokenVerifier checks the slipway API token a request presents.
type TokenVerifier interface {
	// Authenticate returns the ID of the token bearer is, an error
	// wrapping auth.ErrUnauthenticated when it is no valid token, or
	// another error when it cannot tell now.
	Authenticate(ctx context.Context, bearer string) (tokenID string, err error)
}

var _ TokenVerifier = (*auth.Verifier)(nil)

// gatewayAuth is the gateway's authentication setting.
type gatewayAuth struct {
	tokens  TokenVerifier // nil: tokens are not checked, every caller is anonymous
	require bool
}

// tokenPrefix starts every slipway API token.
const tokenPrefix = "slw_"

// bearer returns the slipway token in an Authorization header, and
// whether the header holds one; other credentials are not a slipway
// token.
func bearer(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, strings.HasPrefix(cred, tokenPrefix)
}

// authenticate applies the rules above and sets the caller's identity.
// It answers 401 (or 503 when tokens cannot be checked now) and returns
// false when the request may not go on.
func (x *exchange) authenticate() bool {
	p := x.r.URL.Path
	if p == "/v2/health/live" || p == "/v2/health/ready" {
		return true
	}
	a := x.g.auth
	tok, ok := bearer(x.r.Header)
	if !ok || a.tokens == nil {
		if a.require {
			x.unauthorized("this gateway needs a slipway API token: send Authorization: Bearer slw_…")
			return false
		}
		x.lim.caller = callerKey{anonymous: true, id: clientAddr(x.r)}
		return true
	}
	id, err := a.tokens.Authenticate(x.r.Context(), tok)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		x.unauthorized("the API token is malformed, unknown or revoked")
		return false
	case err != nil:
		if x.r.Context().Err() != nil {
			x.status = 499
			return false
		}
		x.g.log.WarnContext(x.r.Context(), "checking an API token failed", "request_id", x.id, "error", err.Error())
		x.w.Header().Set("Retry-After", "1")
		x.fail(http.StatusServiceUnavailable, "auth_unavailable", "the gateway cannot check API tokens right now; retry shortly")
		return false
	}
	x.lim.caller = callerKey{id: id}
	return true
}

// unauthorized answers 401 in the request's protocol.
func (x *exchange) unauthorized(msg string) {
	x.w.Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
	x.fail(http.StatusUnauthorized, "invalid_api_key", msg)
}
