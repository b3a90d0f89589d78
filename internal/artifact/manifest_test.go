package artifact

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

const (
	hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hexB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func files(paths ...string) Manifest {
	m := Manifest{}
	for _, p := range paths {
		m.Files = append(m.Files, File{Path: p, Size: 1, SHA256: hexA})
	}
	return m
}

func TestManifestValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Manifest
		ok   bool
	}{
		{"one file", files("model.json"), true},
		{"sorted tree", files("a", "b/c", "b/d/e", "c"), true},
		{"byte order not locale", files("B", "a", "é"), true},
		{"dir sorts between siblings", files("a-b", "a.txt", "a/b", "a0"), true},
		{"zero size", Manifest{Files: []File{{Path: "empty", Size: 0, SHA256: hexA}}}, true},

		{"nil files", Manifest{}, false},
		{"empty files", Manifest{Files: []File{}}, false},
		{"unsorted", files("b", "a"), false},
		{"duplicate", files("a", "a"), false},
		{"duplicate nested", files("x/a", "x/a"), false},
		{"file and dir", files("a", "a/b"), false},
		{"file and deep dir", files("a", "a/b/c"), false},
		{"file and dir with sibling between (-)", files("a", "a-b", "a/b"), false},
		{"file and dir with sibling between (.)", files("a", "a.txt", "a/b"), false},
		{"nested file and dir with siblings between", files("d/a", "d/a b", "d/a.json", "d/a/x"), false},
		{"escaping path", files("../x"), false},
		{"absolute path", files("/etc/passwd"), false},
		{"negative size", Manifest{Files: []File{{Path: "a", Size: -1, SHA256: hexA}}}, false},
		{"upper-case hash", Manifest{Files: []File{{Path: "a", Size: 1, SHA256: strings.ToUpper(hexA)}}}, false},
		{"short hash", Manifest{Files: []File{{Path: "a", Size: 1, SHA256: hexA[:63]}}}, false},
		{"prefixed hash", Manifest{Files: []File{{Path: "a", Size: 1, SHA256: "sha256:" + hexA[:57]}}}, false},
		{"non-hex hash", Manifest{Files: []File{{Path: "a", Size: 1, SHA256: "z" + hexA[1:]}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if !tt.ok && !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestManifestTooManyFiles(t *testing.T) {
	m := Manifest{Files: make([]File, MaxFiles+1)}
	if err := m.Validate(); !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("Validate() = %v", err)
	}
}

func TestManifestCanonicalAndDigest(t *testing.T) {
	m := Manifest{Files: []File{
		{Path: "config/params.json", Size: 12, SHA256: hexB},
		{Path: "model.json", Size: 1 << 40, SHA256: hexA},
	}}
	c, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"files":[{"path":"config/params.json","size":12,"sha256":"` + hexB +
		`"},{"path":"model.json","size":1099511627776,"sha256":"` + hexA + `"}]}`
	if string(c) != want {
		t.Fatalf("Canonical =\n%s\nwant\n%s", c, want)
	}
	d, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d != DigestOf([]byte(want)) {
		t.Fatalf("Digest = %s, want sha256 of the canonical bytes", d)
	}
	if _, err := ParseDigest(d); err != nil {
		t.Fatalf("Digest %s does not parse: %v", d, err)
	}
	if m.Size() != 12+1<<40 {
		t.Fatalf("Size = %d", m.Size())
	}
	// Every field enters the digest.
	for name, mutate := range map[string]func(*Manifest){
		"path": func(m *Manifest) { m.Files[1].Path = "model2.json" },
		"size": func(m *Manifest) { m.Files[0].Size++ },
		"hash": func(m *Manifest) { m.Files[0].SHA256 = hexA },
		"drop": func(m *Manifest) { m.Files = m.Files[1:] },
	} {
		c := Manifest{Files: append([]File(nil), m.Files...)}
		mutate(&c)
		if d2, err := c.Digest(); err != nil || d2 == d {
			t.Errorf("changing %s: digest %s (err %v), unchanged from %s", name, d2, err, d)
		}
	}
	// Invalid manifests have no canonical form.
	if _, err := files("b", "a").Canonical(); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("Canonical of an unsorted manifest: %v", err)
	}
	if _, err := (Manifest{}).Digest(); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("Digest of an empty manifest: %v", err)
	}
}

func TestParseManifest(t *testing.T) {
	good := `{"files":[{"path":"a","size":1,"sha256":"` + hexA + `"},{"path":"b/c","size":2,"sha256":"` + hexB + `"}]}`
	m, err := ParseManifest([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files[1] != (File{Path: "b/c", Size: 2, SHA256: hexB}) {
		t.Fatalf("parsed %+v", m)
	}
	c, _ := m.Canonical()
	if !bytes.Equal(c, []byte(good)) {
		t.Fatalf("canonical %s, want the input back", c)
	}
	entry := func(p, sha string) string { return `{"path":"` + p + `","size":1,"sha256":"` + sha + `"}` }
	bad := map[string]string{
		"empty input":       ``,
		"not json":          `files: []`,
		"null":              `null`,
		"no files":          `{"files":[]}`,
		"missing files":     `{}`,
		"unknown top field": `{"files":[` + entry("a", hexA) + `],"signature":"x"}`,
		"unknown file field": `{"files":[{"path":"a","size":1,"sha256":"` + hexA +
			`","mode":420}]}`,
		"out of order":  `{"files":[` + entry("b", hexA) + `,` + entry("a", hexA) + `]}`,
		"duplicate":     `{"files":[` + entry("a", hexA) + `,` + entry("a", hexA) + `]}`,
		"file and dir":  `{"files":[` + entry("a", hexA) + `,` + entry("a/b", hexA) + `]}`,
		"bad hex":       `{"files":[` + entry("a", "xyz") + `]}`,
		"upper hex":     `{"files":[` + entry("a", strings.ToUpper(hexA)) + `]}`,
		"escaping":      `{"files":[` + entry("../a", hexA) + `]}`,
		"negative size": `{"files":[{"path":"a","size":-5,"sha256":"` + hexA + `"}]}`,
		"float size":    `{"files":[{"path":"a","size":1.5,"sha256":"` + hexA + `"}]}`,
		"string size":   `{"files":[{"path":"a","size":"1","sha256":"` + hexA + `"}]}`,
	}
	for name, in := range bad {
		if _, err := ParseManifest([]byte(in)); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: ParseManifest = %v, want ErrInvalid", name, err)
		}
	}
}

// TestParseManifestTrailingData: a second document after the manifest would
// let two byte strings share a parsed manifest while their digests differ.
func TestParseManifestTrailingData(t *testing.T) {
	good := `{"files":[{"path":"a","size":1,"sha256":"` + hexA + `"}]}`
	for _, in := range []string{good + `{}`, good + `x`, good + `{"files":[]}`} {
		if _, err := ParseManifest([]byte(in)); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("ParseManifest(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

// TestParseManifestNonCanonicalSpelling pins down what ParseManifest does
// not refuse: encoding/json matches keys case-insensitively and lets a
// repeated key win, and whitespace is free. Such input decodes, but its
// digest is not the manifest's digest, which is always taken over
// Canonical(); callers that check a digest must check it on the bytes they
// parsed (the registry does) or recompute it from Canonical().
func TestParseManifestNonCanonicalSpelling(t *testing.T) {
	e := `{"path":"a","size":1,"sha256":"` + hexA + `"}`
	for _, in := range []string{
		`{"Files":[` + e + `]}`,
		`{"files":[{"PATH":"a","Size":1,"SHA256":"` + hexA + `"}]}`,
		`{"files":[{"path":"zzz","size":9,"sha256":"` + hexB + `"}],"files":[` + e + `]}`,
		" {\n \"files\" : [ " + e + " ] }\n",
	} {
		m, err := ParseManifest([]byte(in))
		if err != nil {
			t.Fatalf("ParseManifest(%q) = %v", in, err)
		}
		want := Manifest{Files: []File{{Path: "a", Size: 1, SHA256: hexA}}}
		d, _ := m.Digest()
		if wd, _ := want.Digest(); d != wd || DigestOf([]byte(in)) == d {
			t.Fatalf("ParseManifest(%q): digest %s, want %s and different from the input's", in, d, wd)
		}
	}
}

func TestParseDigest(t *testing.T) {
	if h, err := ParseDigest("sha256:" + hexA); err != nil || h != hexA {
		t.Fatalf("ParseDigest = %q, %v", h, err)
	}
	for _, d := range []string{"", hexA, "sha256:", "sha256:" + hexA[:63], "sha256:" + hexA + "a",
		"SHA256:" + hexA, "sha512:" + hexA, "sha256:" + strings.ToUpper(hexA), "sha256-" + hexA} {
		if _, err := ParseDigest(d); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("ParseDigest(%q) = %v, want ErrInvalid", d, err)
		}
	}
}

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"model.json", true},
		{"a/b/c/d.bin", true},
		{"weights/layer.0/part-00001.safetensors", true},
		{".hidden", true},
		{"..hidden", true},
		{"a/...", true},
		{"dir/..foo", true},
		{"spaces in name.txt", true},
		{"modèle/权重/файл.bin", true},
		{"emoji/🚀.json", true},
		{"a:b", false}, // second byte ':' reads as a drive letter
		{"ab:c", true},
		{strings.Repeat("a", MaxPathLen), true},
		{strings.Repeat("abc/", 255) + "abcd", true},

		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/../b", false},
		{"a/..", false},
		{"a/./b", false},
		{"./a", false},
		{"a/.", false},
		{"/abs", false},
		{"/", false},
		{"//server/share", false},
		{`a\b`, false},
		{`..\x`, false},
		{`C:\x`, false},
		{"C:x", false},
		{"c:/x", false},
		{"a//b", false},
		{"a/", false},
		{"a/b/", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"tab\there", false},
		{"del\x7f", false},
		{"esc\x1b[31m", false},
		{"c1\u0085next-line", false},
		{"csi\u009b31m", false},
		{"bad\xffutf8", false},
		{"\xc0\xaf", false}, // overlong '/'
		{strings.Repeat("a", MaxPathLen+1), false},
	}
	for _, tt := range tests {
		err := ValidatePath(tt.path)
		if tt.ok && err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", tt.path, err)
		}
		if !tt.ok && !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("ValidatePath(%q) = %v, want ErrInvalid", tt.path, err)
		}
		if tt.ok && !filepath.IsLocal(filepath.FromSlash(tt.path)) {
			t.Errorf("test table: %q is valid but not local", tt.path)
		}
	}
}
