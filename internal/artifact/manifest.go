// Package artifact owns the files of model versions: content-addressed blobs
// (sha256), the manifest that lists an artifact's files, and the path rules
// that keep every file inside its artifact. The version digest is the sha256
// of the manifest's canonical bytes, the same idea as the OpenSSF
// model-signing manifest, so signatures can be added later without changing
// digests. It imports domain and the standard library only.
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Limits on what one manifest may describe.
const (
	MaxFiles    = 100_000
	MaxPathLen  = 1024
	digestAlgo  = "sha256:"
	digestBytes = len(digestAlgo) + 64
)

// File is one file of an artifact.
type File struct {
	// Path is slash-separated and relative to the artifact root.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Digest returns the blob digest of the file's content.
func (f File) Digest() string { return digestAlgo + f.SHA256 }

// Manifest lists every file of an artifact in path order.
type Manifest struct {
	Files []File `json:"files"`
}

// Validate checks that the manifest is canonical: at least one file, paths
// local and unique and in byte order, sizes non-negative, hashes hex.
func (m Manifest) Validate() error {
	if len(m.Files) == 0 {
		return fmt.Errorf("artifact manifest lists no files: %w", domain.ErrInvalid)
	}
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("artifact manifest lists %d files, at most %d allowed: %w", len(m.Files), MaxFiles, domain.ErrInvalid)
	}
	for i, f := range m.Files {
		if err := ValidatePath(f.Path); err != nil {
			return err
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			if m.Files[i-1].Path == f.Path {
				return fmt.Errorf("artifact path %q is listed twice: %w", f.Path, domain.ErrInvalid)
			}
			return fmt.Errorf("artifact manifest is not in path order at %q: %w", f.Path, domain.ErrInvalid)
		}
		if f.Size < 0 {
			return fmt.Errorf("artifact file %q has negative size %d: %w", f.Path, f.Size, domain.ErrInvalid)
		}
		if !domain.IsHexSHA256(f.SHA256) {
			return fmt.Errorf("artifact file %q: sha256 %q must be 64 lower-case hex digits: %w", f.Path, f.SHA256, domain.ErrInvalid)
		}
	}
	// A file may not also be a directory of another ("a" and "a/b"). Paths
	// such as "a-b" or "a.txt" sort between "a" and "a/b", so comparing
	// neighbours is not enough: look up the first path at or after "a/".
	for i, f := range m.Files {
		dir := f.Path + "/"
		rest := m.Files[i+1:]
		j := sort.Search(len(rest), func(k int) bool { return rest[k].Path >= dir })
		if j < len(rest) && strings.HasPrefix(rest[j].Path, dir) {
			return fmt.Errorf("artifact path %q is both a file and a directory (of %q): %w", f.Path, rest[j].Path, domain.ErrInvalid)
		}
	}
	return nil
}

// Canonical returns the bytes the version digest is computed over: compact
// JSON {"files":[{"path":…,"size":…,"sha256":…},…]} in path order.
func (m Manifest) Canonical() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// Digest returns "sha256:<hex>" of the canonical manifest: the version's
// artifact digest.
func (m Manifest) Digest() (string, error) {
	c, err := m.Canonical()
	if err != nil {
		return "", err
	}
	return DigestOf(c), nil
}

// Size is the total size of the artifact's files.
func (m Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// DigestOf returns "sha256:<hex>" of b.
func DigestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return digestAlgo + hex.EncodeToString(sum[:])
}

// ParseManifest decodes and validates canonical manifest bytes. Unknown
// fields are refused so that two different documents cannot share a digest.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("artifact manifest: %v: %w", err, domain.ErrInvalid)
	}
	// A second document after the first would be silently ignored.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Manifest{}, fmt.Errorf("artifact manifest: data after the manifest document: %w", domain.ErrInvalid)
	}
	return m, m.Validate()
}

// ParseDigest checks "sha256:<64 hex>" and returns the hex part.
func ParseDigest(d string) (string, error) {
	if len(d) != digestBytes || !strings.HasPrefix(d, digestAlgo) || !domain.IsHexSHA256(d[len(digestAlgo):]) {
		return "", fmt.Errorf("digest %q must be \"sha256:\" followed by 64 lower-case hex digits: %w", truncate(d), domain.ErrInvalid)
	}
	return d[len(digestAlgo):], nil
}

// ValidatePath checks that p names a file inside an artifact: relative,
// slash-separated, clean (no "", "." or ".." elements), valid UTF-8 without
// control characters or backslashes, at most MaxPathLen bytes.
func ValidatePath(p string) error {
	bad := func(why string) error {
		return fmt.Errorf("artifact path %q %s: %w", truncate(p), why, domain.ErrInvalid)
	}
	switch {
	case p == "":
		return bad("is empty")
	case len(p) > MaxPathLen:
		return bad(fmt.Sprintf("is longer than %d bytes", MaxPathLen))
	case !utf8.ValidString(p):
		return bad("is not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return bad("is absolute; paths must be relative to the artifact root")
	case strings.ContainsRune(p, '\\'):
		return bad("contains a backslash; use '/' to separate directories")
	case len(p) >= 2 && p[1] == ':':
		return bad("looks like a Windows drive path")
	}
	for _, r := range p {
		// C0, DEL and C1 (U+0080–U+009F): none belongs in a file name, and
		// they can rewrite a terminal that prints the path.
		if unicode.IsControl(r) {
			return bad("contains a control character")
		}
	}
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "":
			return bad("has an empty element (a doubled or trailing '/')")
		case ".":
			return bad("has a '.' element")
		case "..":
			return bad("escapes the artifact with '..'")
		}
	}
	if path.Clean(p) != p {
		return bad("is not clean")
	}
	return nil
}

func truncate(s string) string {
	if len(s) <= 120 {
		return s
	}
	return s[:120] + "…"
}
