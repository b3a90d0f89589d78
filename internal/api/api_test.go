package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
)

func TestRegistryFlow(t *testing.T) {
	h := newHarness(t)
	r := h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "fraud", Owner: "risk", Tags: map[string]string{"team": "risk"}}, http.StatusCreated)
	if got := r.header.Get("Location"); got != "/api/v1/models/fraud" {
		t.Errorf("Location = %q", got)
	}
	v1 := h.pushVersion("fraud", []byte(`{"v":1}`), map[string]string{"team": "a"})
	v2 := h.pushVersion("fraud", []byte(`{"v":2}`), map[string]string{"team": "b"})
	if v1.Number != 1 || v2.Number != 2 || v1.State != domain.StateRegistered || v1.CreatedBy != "admin" {
		t.Fatalf("versions = %+v, %+v", v1, v2)
	}
	h.mustCall(http.MethodPut, "/api/v1/models/fraud/aliases/champion", h.admin, api.AliasRequest{Version: "1"}, http.StatusOK)
	got := decode[domain.Version](t, h.mustCall(http.MethodGet, "/api/v1/models/fraud/versions/@champion", h.admin, nil, http.StatusOK))
	if got.Number != 1 || len(got.Aliases) != 1 || got.Aliases[0] != "champion" {
		t.Fatalf("@champion = %+v", got)
	}
	// Filters.
	l := decode[api.List[domain.Version]](t, h.mustCall(http.MethodGet, "/api/v1/models/fraud/versions?label=team=b", h.admin, nil, http.StatusOK))
	if len(l.Items) != 1 || l.Items[0].Number != 2 {
		t.Fatalf("label filter = %+v", l.Items)
	}
	l = decode[api.List[domain.Version]](t, h.mustCall(http.MethodGet, "/api/v1/models/fraud/versions?alias=champion", h.admin, nil, http.StatusOK))
	if len(l.Items) != 1 || l.Items[0].Number != 1 {
		t.Fatalf("alias filter = %+v", l.Items)
	}
	// Move with the right expectation, then state and labels.
	exp := 1
	h.mustCall(http.MethodPut, "/api/v1/models/fraud/aliases/champion", h.admin, api.AliasRequest{Version: "2", ExpectedVersion: &exp}, http.StatusOK)
	v := decode[domain.Version](t, h.mustCall(http.MethodPut, "/api/v1/models/fraud/versions/1/state", h.admin, api.StateRequest{State: domain.StateArchived}, http.StatusOK))
	if v.State != domain.StateArchived {
		t.Fatalf("state = %s", v.State)
	}
	v = decode[domain.Version](t, h.mustCall(http.MethodPatch, "/api/v1/models/fraud/versions/2/labels", h.admin, api.LabelsRequest{Set: map[string]string{"x": "y"}, Remove: []string{"team"}}, http.StatusOK))
	if len(v.Labels) != 1 || v.Labels["x"] != "y" {
		t.Fatalf("labels = %v", v.Labels)
	}
	l = decode[api.List[domain.Version]](t, h.mustCall(http.MethodGet, "/api/v1/models/fraud/versions?state=archived", h.admin, nil, http.StatusOK))
	if len(l.Items) != 1 || l.Items[0].Number != 1 {
		t.Fatalf("state filter = %+v", l.Items)
	}
	// Manifest and verify.
	m := decode[api.ManifestResponse](t, h.mustCall(http.MethodGet, "/api/v1/models/fraud/versions/2/manifest", h.admin, nil, http.StatusOK))
	if d, _ := m.Manifest.Digest(); d != v2.ArtifactDigest {
		t.Fatalf("manifest digest %s, version digest %s", d, v2.ArtifactDigest)
	}
	rep := decode[struct{ OK bool }](t, h.mustCall(http.MethodPost, "/api/v1/models/fraud/versions/2/verify", h.admin, "{}", http.StatusOK))
	if !rep.OK {
		t.Fatal("verify not ok")
	}
	// The audit log holds every mutation in order and verifies.
	al := decode[api.List[audit.Entry]](t, h.mustCall(http.MethodGet, "/api/v1/audit?subject=model/fraud", h.admin, nil, http.StatusOK))
	var actions []string
	for _, e := range al.Items {
		actions = append(actions, e.Action)
	}
	want := "model.create version.create version.create alias.set alias.set version.state version.labels"
	if strings.Join(actions, " ") != want {
		t.Fatalf("audit actions = %v, want %s", actions, want)
	}
	if string(al.Items[4].Before) != `{"version":1}` || string(al.Items[4].After) != `{"version":2}` {
		t.Fatalf("alias move audited as %s -> %s", al.Items[4].Before, al.Items[4].After)
	}
	vr := decode[audit.Report](t, h.mustCall(http.MethodGet, "/api/v1/audit/verify", h.admin, nil, http.StatusOK))
	if !vr.OK || vr.Entries != 8 {
		t.Fatalf("audit verify = %+v", vr)
	}
}

func TestPagination(t *testing.T) {
	h := newHarness(t)
	for i := range 7 {
		h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: fmt.Sprintf("m%d", i)}, http.StatusCreated)
	}
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		l := decode[api.List[domain.Model]](t, h.mustCall(http.MethodGet, "/api/v1/models?limit=3&cursor="+cursor, h.admin, nil, http.StatusOK))
		for _, m := range l.Items {
			names = append(names, m.Name)
		}
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	if strings.Join(names, ",") != "m0,m1,m2,m3,m4,m5,m6" {
		t.Fatalf("paged names = %v", names)
	}
	// Aliases page the same way.
	h.pushVersion("m0", []byte("x"), nil)
	for _, a := range []string{"a", "b", "c", "d", "e"} {
		h.mustCall(http.MethodPut, "/api/v1/models/m0/aliases/"+a, h.admin, api.AliasRequest{Version: "1"}, http.StatusOK)
	}
	names, cursor = nil, ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("alias pagination does not end")
		}
		l := decode[api.List[domain.Alias]](t, h.mustCall(http.MethodGet, "/api/v1/models/m0/aliases?limit=2&cursor="+cursor, h.admin, nil, http.StatusOK))
		for _, a := range l.Items {
			names = append(names, a.Name)
		}
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	if strings.Join(names, ",") != "a,b,c,d,e" {
		t.Fatalf("paged aliases = %v", names)
	}
	h.mustCall(http.MethodGet, "/api/v1/models/m0/aliases?cursor=bogus", h.admin, nil, http.StatusBadRequest)
}

func TestAliasRaceExactlyOneWins(t *testing.T) {
	h := newHarness(t)
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	for i := range 9 {
		h.pushVersion("m", []byte(fmt.Sprintf("v%d", i)), nil)
	}
	h.mustCall(http.MethodPut, "/api/v1/models/m/aliases/champion", h.admin, api.AliasRequest{Version: "1"}, http.StatusOK)
	for round := range 5 {
		cur := decode[domain.Alias](t, h.mustCall(http.MethodGet, "/api/v1/models/m/aliases/champion", h.admin, nil, http.StatusOK)).Version
		var wg sync.WaitGroup
		statuses := make([]int, 8)
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				exp := cur
				target := 2 + (i+round)%8
				if target == cur {
					target = 1 + cur%9
				}
				statuses[i] = h.call(http.MethodPut, "/api/v1/models/m/aliases/champion", h.admin,
					api.AliasRequest{Version: api.VersionRef(fmt.Sprint(target)), ExpectedVersion: &exp}).status
			}()
		}
		wg.Wait()
		wins, conflicts := 0, 0
		for _, s := range statuses {
			switch s {
			case http.StatusOK:
				wins++
			case http.StatusConflict:
				conflicts++
			default:
				t.Fatalf("unexpected status %d", s)
			}
		}
		if wins != 1 || conflicts != len(statuses)-1 {
			t.Fatalf("round %d: %d wins, %d conflicts", round, wins, conflicts)
		}
	}
}

func TestAuthAndRoles(t *testing.T) {
	h := newHarness(t)
	viewer := h.token("reader", domain.RoleViewer)
	author := h.token("ci", domain.RoleAuthor)
	deployer := h.token("cd", domain.RoleDeployer)
	h.mustCall(http.MethodPost, "/api/v1/models", author, api.ModelRequest{Name: "m"}, http.StatusCreated)
	h.pushVersion("m", []byte("x"), nil)

	cases := []struct {
		name, method, path, token string
		body                      any
		want                      int
	}{
		{"viewer reads", http.MethodGet, "/api/v1/models", viewer, nil, http.StatusOK},
		{"viewer cannot create", http.MethodPost, "/api/v1/models", viewer, api.ModelRequest{Name: "n"}, http.StatusForbidden},
		{"author cannot move alias", http.MethodPut, "/api/v1/models/m/aliases/prod", author, api.AliasRequest{Version: "1"}, http.StatusForbidden},
		{"deployer cannot push", http.MethodPost, "/api/v1/models/m/versions", deployer, api.VersionRequest{Format: domain.FormatExternal}, http.StatusForbidden},
		{"deployer cannot mint tokens", http.MethodPost, "/api/v1/tokens", deployer, api.TokenRequest{Name: "x", Role: domain.RoleAdmin}, http.StatusForbidden},
		{"no token", http.MethodGet, "/api/v1/models", "", nil, http.StatusUnauthorized},
		{"garbage token", http.MethodGet, "/api/v1/models", "slw_nope", nil, http.StatusUnauthorized},
		{"wrong secret", http.MethodGet, "/api/v1/models", viewer[:len(viewer)-2] + "AA", nil, http.StatusUnauthorized},
		{"deployer moves alias", http.MethodPut, "/api/v1/models/m/aliases/prod", deployer, api.AliasRequest{Version: "1"}, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.fingerprint()
			r := h.call(c.method, c.path, c.token, c.body)
			if r.status != c.want {
				t.Fatalf("status %d, want %d: %s", r.status, c.want, r.body)
			}
			if c.want >= 400 {
				if r.problem.Detail == "" || r.problem.Status != c.want {
					t.Fatalf("problem = %+v", r.problem)
				}
				if !before.equal(h.fingerprint()) {
					t.Fatal("a refused call changed stored state")
				}
			}
			if c.want == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Revocation takes effect on the next call.
	h.mustCall(http.MethodDelete, "/api/v1/tokens/reader", h.admin, nil, http.StatusOK)
	r := h.mustCall(http.MethodGet, "/api/v1/models", viewer, nil, http.StatusUnauthorized)
	if !strings.Contains(r.problem.Detail, "revoked") {
		t.Errorf("revoked token detail = %q", r.problem.Detail)
	}
	h.mustCall(http.MethodDelete, "/api/v1/tokens/reader", h.admin, nil, http.StatusConflict)
	// Tokens are listed without secrets or hashes.
	r = h.mustCall(http.MethodGet, "/api/v1/tokens", h.admin, nil, http.StatusOK)
	if strings.Contains(string(r.body), "slw_") || strings.Contains(string(r.body), "hash") {
		t.Fatalf("token listing leaks secrets: %s", r.body)
	}
	// The last active admin cannot be revoked: nobody could manage tokens.
	r = h.mustCall(http.MethodDelete, "/api/v1/tokens/admin", h.admin, nil, http.StatusConflict)
	if !strings.Contains(r.problem.Detail, "last active admin") {
		t.Errorf("revoking the last admin: %q", r.problem.Detail)
	}
	h.token("admin2", domain.RoleAdmin)
	h.mustCall(http.MethodDelete, "/api/v1/tokens/admin", h.admin, nil, http.StatusOK)
}

func TestObservability(t *testing.T) {
	h := newHarness(t)
	h.mustCall(http.MethodGet, "/healthz", "", nil, http.StatusOK)
	h.mustCall(http.MethodGet, "/readyz", "", nil, http.StatusOK)
	r := h.mustCall(http.MethodGet, "/api/v1/models/nope", h.admin, nil, http.StatusNotFound)
	if r.header.Get("X-Request-ID") == "" || r.problem.RequestID != r.header.Get("X-Request-ID") {
		t.Fatalf("request id header %q, problem %q", r.header.Get("X-Request-ID"), r.problem.RequestID)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	if r.problem.Type != "https://slipway.dev/problems/not-found" || r.problem.Instance != "/api/v1/models/nope" {
		t.Fatalf("problem = %+v", r.problem)
	}
	m := h.mustCall(http.MethodGet, "/metrics", "", nil, http.StatusOK)
	for _, want := range []string{
		`slipway_api_requests_total{code="404",method="GET",route="/api/v1/models/{model}"} 1`,
		`slipway_api_request_duration_seconds_bucket{method="GET",route="/api/v1/models/{model}"`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	h.mustCall(http.MethodGet, "/api/v2/nothing", h.admin, nil, http.StatusNotFound)
	r = h.mustCall(http.MethodDelete, "/api/v1/models", h.admin, nil, http.StatusMethodNotAllowed)
	if allow := r.header.Get("Allow"); allow != "GET, HEAD, POST" {
		t.Errorf("Allow = %q", allow)
	}
}

var _ = artifact.File{}
