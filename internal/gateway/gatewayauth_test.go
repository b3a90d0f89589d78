package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// tokenTable is the token rows a store would hold, for auth.Verifier.
type tokenTable struct {
	mu    sync.Mutex
	rows  map[string]domain.Token
	down  error // when set, every read fails with it
	reads atomic.Int64
}

func (s *tokenTable) GetToken(_ context.Context, id string) (domain.Token, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return domain.Token{}, s.down
	}
	t, ok := s.rows[id]
	if !ok {
		return domain.Token{}, fmt.Errorf("token %q: %w", id, domain.ErrNotFound)
	}
	return t, nil
}

// mint stores a new token and returns its plain form.
func (s *tokenTable) mint(t *testing.T, name string, role domain.Role) (plain, id string) {
	t.Helper()
	sec, err := auth.Mint(name, role, "admin", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rows == nil {
		s.rows = map[string]domain.Token{}
	}
	s.rows[sec.Token.ID] = sec.Token
	return sec.Plain, sec.Token.ID
}

func (s *tokenTable) revoke(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.rows[id]
	now := time.Now()
	tok.RevokedAt = &now
	s.rows[id] = tok
}

// authVerifier checks tokens in tokens as the server does.
func authVerifier(tokens *tokenTable) *auth.Verifier {
	return auth.NewVerifier(auth.VerifierConfig{Reader: tokens})
}

// authHarness serves route m (OIP, an upstream counting its calls) and
// chat (OpenAI) behind a gateway checking tokens with auth.Verifier.
type authHarness struct {
	*harness
	tokens *tokenTable
	clk    *clock.Fake
	up     *failingUpstream
}

func newAuthHarness(t *testing.T, require bool, cfg func(*Config)) *authHarness {
	t.Helper()
	a := &authHarness{tokens: &tokenTable{}, clk: clock.NewFake(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))}
	a.up = newFailingUpstream(t, upOK)
	v := auth.NewVerifier(auth.VerifierConfig{Reader: a.tokens, Clock: a.clk, TTL: 5 * time.Second})
	a.harness = newHarness(t, func(c *Config) {
		c.Tokens, c.RequireToken, c.Clock = v, require, a.clk
		if cfg != nil {
			cfg(c)
		}
	}, route("m", "production", a.up.version(t, 1, 100, runtime.ProtocolOIP)),
		route("chat", "production", a.up.version(t, 1, 100, runtime.ProtocolOpenAI)))
	return a
}

func bearerHeader(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestGatewayAuthInvalidTokens(t *testing.T) {
	a := newAuthHarness(t, false, nil)
	good, id := a.tokens.mint(t, "app", domain.RoleViewer)
	other, _ := a.tokens.mint(t, "other", domain.RoleViewer)
	for name, tok := range map[string]string{
		"malformed":    "slw_123",
		"unknown":      other[:21] + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"wrong secret": good[:len(good)-2] + "zz",
	} {
		resp, b := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, bearerHeader(tok)...)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: %d %s, want 401 with WWW-Authenticate", name, resp.StatusCode, b)
		}
		oipError(t, b)
		resp, b = a.do(http.MethodPost, "/v1/chat/completions", chatBody, bearerHeader(tok)...)
		var e openAIError
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(b, &e) != nil || e.Error.Code != "invalid_api_key" {
			t.Fatalf("%s (OpenAI): %d %s, want 401 invalid_api_key", name, resp.StatusCode, b)
		}
	}
	if n := a.up.hits.Load(); n != 0 {
		t.Fatalf("the model was called %d times by refused requests", n)
	}

	// A valid token passes; revoked, it is refused once the verifier's
	// verdict expires (5 s here).
	if resp, b := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, bearerHeader(good)...); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid token: %d %s", resp.StatusCode, b)
	}
	a.tokens.revoke(id)
	if resp, _ := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, bearerHeader(good)...); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoked token within the verdict's TTL: %d, want the remembered 200", resp.StatusCode)
	}
	a.clk.Advance(5 * time.Second)
	if resp, _ := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, bearerHeader(good)...); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked token after the TTL: %d, want 401", resp.StatusCode)
	}
}

func TestGatewayAuthAnonymousUnlessRequired(t *testing.T) {
	a := newAuthHarness(t, false, nil)
	for name, h := range map[string][]string{
		"no header":          nil,
		"openai placeholder": bearerHeader("sk-placeholder"),
		"basic":              {"Authorization", "Basic dXNlcjpwYXNz"},
	} {
		if resp, b := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, h...); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s, want an anonymous 200", name, resp.StatusCode, b)
		}
	}
	if a.tokens.reads.Load() != 0 {
		t.Fatal("credentials that are no slipway token were looked up")
	}
}

func TestGatewayAuthRequireToken(t *testing.T) {
	a := newAuthHarness(t, true, nil)
	good, _ := a.tokens.mint(t, "app", domain.RoleViewer)
	deployer, _ := a.tokens.mint(t, "ci", domain.RoleDeployer)
	for name, h := range map[string][]string{
		"no header":          nil,
		"openai placeholder": bearerHeader("sk-placeholder"),
	} {
		for _, p := range []string{"/v2/models/m/infer", "/v2/models/m", "/v1/models"} {
			method, body := http.MethodPost, inferBody
			if p != "/v2/models/m/infer" {
				method, body = http.MethodGet, ""
			}
			if resp, b := a.do(method, p, body, h...); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s %s: %d %s, want 401", name, p, resp.StatusCode, b)
			}
		}
	}
	for _, tok := range []string{good, deployer} { // any role may infer
		if resp, b := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, bearerHeader(tok)...); resp.StatusCode != http.StatusOK {
			t.Fatalf("valid token: %d %s", resp.StatusCode, b)
		}
	}
	// Probes need no token.
	for _, p := range []string{"/v2/health/live", "/v2/health/ready"} {
		if resp, _ := a.do(http.MethodGet, p, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s without a token: %d", p, resp.StatusCode)
		}
	}
	if n := a.up.hits.Load(); n != 2 {
		t.Fatalf("model called %d times, want 2", n)
	}
}

func TestGatewayAuthStoreDown(t *testing.T) {
	a := newAuthHarness(t, false, nil)
	good, _ := a.tokens.mint(t, "app", domain.RoleViewer)
	a.tokens.down = errors.New("database is locked")
	resp, b := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, bearerHeader(good)...)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("store down: %d %s, want 503 with Retry-After", resp.StatusCode, b)
	}
	a.tokens.down = nil
	if resp, _ := a.do(http.MethodPost, "/v2/models/m/infer", inferBody, bearerHeader(good)...); resp.StatusCode != http.StatusOK {
		t.Fatalf("store back: %d", resp.StatusCode)
	}
}

func TestRequireTokenWithoutVerifierIsAProgramError(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted RequireToken without Tokens")
		}
	}()
	New(Config{RequireToken: true})
}

func FuzzBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer slw_abc", "bearer  slw_x ", "Basic dXNlcg==", "Bearer sk-1", "Bearer", "Bearer ", "slw_abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Authorization", v)
		tok, ok := bearer(h)
		if ok != strings.HasPrefix(tok, tokenPrefix) {
			t.Fatalf("bearer(%q) = %q, %v", v, tok, ok)
		}
		if ok && strings.TrimSpace(tok) != tok {
			t.Fatalf("bearer(%q) = %q keeps spaces", v, tok)
		}
	})
}
