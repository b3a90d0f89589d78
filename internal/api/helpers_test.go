package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/api/apitest"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

type harness struct {
	t       testing.TB
	api     *apitest.Server
	srv     *httptest.Server
	store   *sqlstore.Store
	blobDir string
	admin   string
}

// newHarness starts a server (apitest.New) with small body limits; each
// option adjusts its Config after those.
func newHarness(t testing.TB, opts ...func(*api.Config)) *harness {
	t.Helper()
	limits := func(c *api.Config) { c.MaxBodyBytes, c.MaxBlobBytes = 64<<10, 1<<20 }
	s := apitest.New(t, append([]func(*api.Config){limits}, opts...)...)
	return &harness{t: t, api: s, srv: s.Server, store: s.Store, blobDir: s.BlobDir, admin: s.Admin}
}

// token mints a token of role and returns its secret.
func (h *harness) token(name string, role domain.Role) string {
	h.t.Helper()
	return h.api.Token(name, role)
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	problem api.Problem
}

// call sends body (a []byte, a string sent raw, or a value encoded as
// JSON) and returns the answer.
func (h *harness) call(method, path, token string, body any) response {
	h.t.Helper()
	var r io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		r, ct = bytes.NewReader(b), "application/octet-stream"
	case string:
		r = strings.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := response{status: resp.StatusCode, header: resp.Header}
	out.body, _ = io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(out.body, &out.problem); err != nil {
			h.t.Fatalf("problem body %q: %v", out.body, err)
		}
	}
	return out
}

func (h *harness) mustCall(method, path, token string, body any, want int) response {
	h.t.Helper()
	r := h.call(method, path, token, body)
	if r.status != want {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	return r
}

func decode[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return v
}

// uploadFile puts content as a blob and returns its manifest entry.
func (h *harness) uploadFile(path string, content []byte) artifact.File {
	h.t.Helper()
	d := artifact.DigestOf(content)
	h.mustCall(http.MethodPut, "/api/v1/blobs/"+d, h.admin, content, http.StatusCreated)
	return artifact.File{Path: path, Size: int64(len(content)), SHA256: strings.TrimPrefix(d, "sha256:")}
}

// pushVersion uploads one file and registers it as a version.
func (h *harness) pushVersion(model string, content []byte, labels map[string]string) domain.Version {
	h.t.Helper()
	f := h.uploadFile("model.json", content)
	r := h.mustCall(http.MethodPost, "/api/v1/models/"+model+"/versions", h.admin, api.VersionRequest{
		Format: domain.FormatXGBoostJSON, Manifest: &artifact.Manifest{Files: []artifact.File{f}}, Labels: labels,
	}, http.StatusCreated)
	return decode[domain.Version](h.t, r)
}

// fingerprint captures everything a failed call must leave unchanged: the
// audit head (every mutation appends to it) and the stored blobs.
type fingerprint struct {
	seq   int64
	hash  string
	blobs []string
	tmp   int
}

func (h *harness) fingerprint() fingerprint {
	h.t.Helper()
	seq, hash, err := h.store.AuditHead(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	fp := fingerprint{seq: seq, hash: hash}
	_ = filepath.WalkDir(filepath.Join(h.blobDir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fp.blobs = append(fp.blobs, d.Name())
		}
		return nil
	})
	entries, _ := os.ReadDir(filepath.Join(h.blobDir, "tmp"))
	fp.tmp = len(entries)
	return fp
}

func (a fingerprint) equal(b fingerprint) bool {
	if a.seq != b.seq || a.hash != b.hash || a.tmp != b.tmp || len(a.blobs) != len(b.blobs) {
		return false
	}
	for i := range a.blobs {
		if a.blobs[i] != b.blobs[i] {
			return false
		}
	}
	return true
}
