package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
)

// TestBadInputLeavesStateUnchanged sends every kind of bad request and
// checks the status, that the problem names the issue, and that nothing
// stored changed: no audit entry, no blob, no upload leftover.
func TestBadInputLeavesStateUnchanged(t *testing.T) {
	h := newHarness(t)
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	v1 := h.pushVersion("m", []byte("one"), nil)
	h.pushVersion("m", []byte("two"), nil)
	h.mustCall(http.MethodPut, "/api/v1/models/m/aliases/champion", h.admin, api.AliasRequest{Version: "1"}, http.StatusOK)
	h.mustCall(http.MethodPut, "/api/v1/models/m/versions/2/state", h.admin, api.StateRequest{State: domain.StateArchived}, http.StatusOK)

	good := h.uploadFile("model.json", []byte("one"))
	other := []byte("content nobody uploaded")
	notUploaded := artifact.File{Path: "w.bin", Size: int64(len(other)), SHA256: strings.TrimPrefix(artifact.DigestOf(other), "sha256:")}
	two, wrong := 2, 3
	manifest := func(files ...artifact.File) *artifact.Manifest { return &artifact.Manifest{Files: files} }
	withPath := func(f artifact.File, p string) artifact.File { f.Path = p; return f }
	withSize := func(f artifact.File, n int64) artifact.File { f.Size = n; return f }

	cases := []struct {
		name, method, path string
		body               any
		want               int
		detail             string // a fragment the problem detail must contain
	}{
		{"invalid model name", "POST", "/api/v1/models", api.ModelRequest{Name: "Bad Name"}, 400, "must match"},
		{"empty model name", "POST", "/api/v1/models", api.ModelRequest{}, 400, "empty"},
		{"duplicate model", "POST", "/api/v1/models", api.ModelRequest{Name: "m"}, 409, `"m"`},
		{"malformed JSON", "POST", "/api/v1/models", `{"name":`, 400, "not valid JSON"},
		{"unknown field", "POST", "/api/v1/models", `{"name":"x","colour":"red"}`, 400, "colour"},
		{"trailing data", "POST", "/api/v1/models", `{"name":"x"} {"name":"y"}`, 400, "after the JSON"},
		{"empty body", "POST", "/api/v1/models", ``, 400, "empty"},
		{"oversized body", "POST", "/api/v1/models", `{"name":"x","description":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "larger than"},
		{"unknown model", "GET", "/api/v1/models/ghost", nil, 404, "ghost"},
		{"unknown version", "GET", "/api/v1/models/m/versions/99", nil, 404, "99"},
		{"bad version ref", "GET", "/api/v1/models/m/versions/latest!", nil, 400, "number"},
		{"unknown alias", "GET", "/api/v1/models/m/versions/@ghost", nil, 404, "ghost"},
		{"push to unknown model", "POST", "/api/v1/models/ghost/versions", api.VersionRequest{Format: domain.FormatXGBoostJSON, Manifest: manifest(good)}, 404, "ghost"},
		{"new manifest to unknown model", "POST", "/api/v1/models/ghost/versions", api.VersionRequest{Format: domain.FormatXGBoostJSON, Manifest: manifest(withPath(good, "fresh.json"))}, 404, "ghost"},
		{"new manifest with unknown format", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: "onnx", Manifest: manifest(withPath(good, "fresh.json"))}, 400, "onnx"},
		{"new manifest with unknown parent", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: domain.FormatXGBoostJSON, Manifest: manifest(withPath(good, "fresh.json")), Lineage: domain.Lineage{ParentVersion: 9}}, 404, "parent version 9"},
		{"unknown format", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: "onnx", Manifest: manifest(good)}, 400, "onnx"},
		{"xgboost without artifact", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: domain.FormatXGBoostJSON}, 400, "needs an artifact"},
		{"path escaping", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: domain.FormatXGBoostJSON, Manifest: manifest(withPath(good, "../../etc/passwd"))}, 400, "escapes"},
		{"absolute path", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: domain.FormatXGBoostJSON, Manifest: manifest(withPath(good, "/etc/passwd"))}, 400, "absolute"},
		{"blob not uploaded", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: domain.FormatXGBoostJSON, Manifest: manifest(notUploaded)}, 409, "not uploaded"},
		{"size mismatch", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: domain.FormatXGBoostJSON, Manifest: manifest(withSize(good, 99))}, 400, "99"},
		{"unknown parent", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: domain.FormatExternal, Lineage: domain.Lineage{ParentVersion: 42}}, 404, "parent version 42"},
		{"bad dataset sha", "POST", "/api/v1/models/m/versions", api.VersionRequest{Format: domain.FormatExternal, Lineage: domain.Lineage{DatasetURI: "s3://d", DatasetSHA256: "xyz"}}, 400, "sha256"},
		{"wrong expected version", "PUT", "/api/v1/models/m/aliases/champion", api.AliasRequest{Version: "1", ExpectedVersion: &wrong}, 409, "expected 3"},
		{"expected absent but exists", "PUT", "/api/v1/models/m/aliases/champion", api.AliasRequest{Version: "1", ExpectedVersion: new(int)}, 409, "absent"},
		{"alias to unknown version", "PUT", "/api/v1/models/m/aliases/prod", api.AliasRequest{Version: "7"}, 404, "7"},
		{"alias to archived version", "PUT", "/api/v1/models/m/aliases/prod", api.AliasRequest{Version: "2", ExpectedVersion: &two}, 409, "archived"},
		{"invalid alias name", "PUT", "/api/v1/models/m/aliases/Prod", api.AliasRequest{Version: "1"}, 400, "alias name"},
		{"alias without version", "PUT", "/api/v1/models/m/aliases/prod", `{}`, 400, "version"},
		{"delete unknown alias", "DELETE", "/api/v1/models/m/aliases/ghost", nil, 404, "ghost"},
		{"delete with wrong expectation", "DELETE", "/api/v1/models/m/aliases/champion?expected_version=2", nil, 409, "expected 2"},
		{"illegal transition", "PUT", "/api/v1/models/m/versions/2/state", api.StateRequest{State: domain.StateProduction}, 409, "archived to production"},
		{"archive an alias target", "PUT", "/api/v1/models/m/versions/1/state", api.StateRequest{State: domain.StateArchived}, 409, "champion"},
		{"unknown state", "PUT", "/api/v1/models/m/versions/1/state", api.StateRequest{State: "gone"}, 400, "gone"},
		{"bad label key", "PATCH", "/api/v1/models/m/versions/1/labels", api.LabelsRequest{Set: map[string]string{"a b": "c"}}, 400, "label key"},
		{"bad limit", "GET", "/api/v1/models?limit=5000", nil, 400, "limit"},
		{"bad cursor", "GET", "/api/v1/models?cursor=not-a-cursor!", nil, 400, "cursor"},
		{"bad label filter", "GET", "/api/v1/models/m/versions?label=novalue", nil, 400, "key=value"},
		{"bad digest", "PUT", "/api/v1/blobs/sha256:xyz", []byte("x"), 400, "digest"},
		{"digest mismatch", "PUT", "/api/v1/blobs/" + artifact.DigestOf([]byte("expected")), []byte("something else"), 400, "mismatch"},
		{"blob over the cap", "PUT", "/api/v1/blobs/" + artifact.DigestOf(make([]byte, 2<<20)), make([]byte, 2<<20), 413, "limit"},
		{"unknown blob", "GET", "/api/v1/blobs/" + artifact.DigestOf(other), nil, 404, "not found"},
		{"duplicate token", "POST", "/api/v1/tokens", api.TokenRequest{Name: "admin", Role: domain.RoleViewer}, 409, "admin"},
		{"unknown role", "POST", "/api/v1/tokens", api.TokenRequest{Name: "x", Role: "root"}, 400, "root"},
		{"revoke unknown token", "DELETE", "/api/v1/tokens/ghost", nil, 404, "ghost"},
		{"wrong content type", "POST", "/api/v1/models", []byte(`{"name":"x"}`), 400, "application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.fingerprint()
			r := h.call(c.method, c.path, h.admin, c.body)
			if r.status != c.want {
				t.Fatalf("status %d, want %d: %s", r.status, c.want, r.body)
			}
			if !strings.Contains(r.problem.Detail, c.detail) {
				t.Fatalf("detail %q does not mention %q", r.problem.Detail, c.detail)
			}
			if after := h.fingerprint(); !before.equal(after) {
				t.Fatalf("state changed: %+v -> %+v", before, after)
			}
		})
	}
	// The version refused above left v1 exactly as it was.
	got := decode[domain.Version](t, h.mustCall("GET", "/api/v1/models/m/versions/1", h.admin, nil, 200))
	if got.ArtifactDigest != v1.ArtifactDigest || got.State != v1.State {
		t.Fatalf("version 1 changed: %+v", got)
	}
}

// TestTruncatedUploadLeavesNothing sends fewer bytes than Content-Length
// and hangs up; no blob and no temp file may remain.
func TestTruncatedUploadLeavesNothing(t *testing.T) {
	h := newHarness(t)
	before := h.fingerprint()
	content := []byte(strings.Repeat("model weights ", 1000))
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /api/v1/blobs/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
		artifact.DigestOf(content), h.admin, len(content))
	if _, err := conn.Write(content[:len(content)/2]); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	// The server answers (or hangs up) once it sees the short body.
	// The server answers once it sees the short body, after the upload's
	// temp file is gone.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	conn.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("truncated upload answered %d", resp.StatusCode)
	}
	if after := h.fingerprint(); !before.equal(after) {
		t.Fatalf("truncated upload changed state: %+v -> %+v", before, after)
	}
	h.mustCall("HEAD", "/api/v1/blobs/"+artifact.DigestOf(content), h.admin, nil, 404)
}
