package artifact

import (
	"bytes"
	"errors"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/slipway-ml/slipway/internal/domain"
)

// FuzzValidatePath checks that every accepted path stays inside any root it
// is joined to.
func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"model.json", "a/b/c", "../x", "a/../b", "/abs", `a\b`, "C:x", "a//b", "a/./b", "é/ü"} {
		f.Add(s)
	}
	root := filepath.Join(string(filepath.Separator), "srv", "artifacts", "v1")
	f.Fuzz(func(t *testing.T, p string) {
		err := ValidatePath(p)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("ValidatePath(%q) = %v, want it to wrap ErrInvalid", p, err)
			}
			return
		}
		if !filepath.IsLocal(filepath.FromSlash(p)) {
			t.Fatalf("ValidatePath accepted %q, which is not local", p)
		}
		if path.Clean(p) != p {
			t.Fatalf("ValidatePath accepted %q, which cleans to %q", p, path.Clean(p))
		}
		for _, el := range strings.Split(p, "/") {
			if el == ".." || el == "." || el == "" {
				t.Fatalf("ValidatePath accepted %q with element %q", p, el)
			}
		}
		if strings.ContainsRune(p, '\\') || strings.IndexFunc(p, unicode.IsControl) >= 0 || !utf8.ValidString(p) {
			t.Fatalf("ValidatePath accepted %q with a backslash, a control character or invalid UTF-8", p)
		}
		joined := filepath.Join(root, filepath.FromSlash(p))
		if !strings.HasPrefix(joined, root+string(filepath.Separator)) {
			t.Fatalf("%q joined under %s gives %s, outside the root", p, root, joined)
		}
		rel, err := filepath.Rel(root, joined)
		if err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("%q joined under %s gives %s (rel %q, %v)", p, root, joined, rel, err)
		}
	})
}

// FuzzParseManifest checks that parsing never panics and that an accepted
// manifest survives a round trip through its canonical bytes.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"files":[{"path":"a","size":1,"sha256":"` + hexA + `"}]}`))
	f.Add([]byte(`{"files":[{"path":"a","size":1,"sha256":"` + hexA + `"},{"path":"a/b","size":1,"sha256":"` + hexB + `"}]}`))
	f.Add([]byte(`{"files":[]}`))
	f.Add([]byte(`{"files":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("ParseManifest(%q) = %v, want it to wrap ErrInvalid", b, err)
			}
			return
		}
		c, err := m.Canonical()
		if err != nil {
			t.Fatalf("accepted manifest %q has no canonical form: %v", b, err)
		}
		d1, err := m.Digest()
		if err != nil || d1 != DigestOf(c) {
			t.Fatalf("Digest = %s, %v; want sha256 of the canonical bytes", d1, err)
		}
		m2, err := ParseManifest(c)
		if err != nil {
			t.Fatalf("canonical bytes %q do not parse: %v", c, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, m2)
		}
		c2, _ := m2.Canonical()
		if !bytes.Equal(c, c2) {
			t.Fatalf("canonical bytes not stable:\n%s\n%s", c, c2)
		}
		if d2, _ := m2.Digest(); d2 != d1 {
			t.Fatalf("digest not stable: %s then %s", d1, d2)
		}
	})
}
