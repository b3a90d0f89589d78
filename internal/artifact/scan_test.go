package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// writeTree creates files (slash paths → content) under dir.
func writeTree(t *testing.T, dir string, tree map[string]string) {
	t.Helper()
	for p, content := range tree {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func scan(t *testing.T, p string) *Source {
	t.Helper()
	s, err := Scan(p, nil)
	if err != nil {
		t.Fatalf("Scan(%s) = %v", p, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestScanSingleFile(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"model.json": `{"trees":[]}`, "other.txt": "not part of it"})
	s := scan(t, filepath.Join(dir, "model.json"))
	want := []File{{Path: "model.json", Size: 12, SHA256: sha(`{"trees":[]}`)}}
	if len(s.Manifest.Files) != 1 || s.Manifest.Files[0] != want[0] {
		t.Fatalf("manifest %+v, want %+v", s.Manifest.Files, want)
	}
	f, err := s.Open("model.json")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.Open("other.txt"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Open of a sibling of a single-file artifact = %v, want ErrNotFound", err)
	}
}

func TestScanTree(t *testing.T) {
	dir := t.TempDir()
	tree := map[string]string{
		"model.json":             "weights",
		"config/params.json":     `{"max_depth":6}`,
		"config/a-b.txt":         "dash",
		"config/nested/deep/x":   "",
		"a.txt":                  "first",
		"Z-upper":                "upper sorts first",
		"tokenizer/vocab.txt":    strings.Repeat("word\n", 10_000),
		"tokenizer/é-unicode.md": "unicode",
	}
	writeTree(t, dir, tree)
	if err := os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	var progressed int64
	s, err := Scan(dir, func(n int64) { progressed += n })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := []string{"Z-upper", "a.txt", "config/a-b.txt", "config/nested/deep/x", "config/params.json", "model.json", "tokenizer/vocab.txt", "tokenizer/é-unicode.md"}
	if len(s.Manifest.Files) != len(want) {
		t.Fatalf("manifest lists %d files, want %d: %+v", len(s.Manifest.Files), len(want), s.Manifest.Files)
	}
	var total int64
	for i, f := range s.Manifest.Files {
		if f.Path != want[i] {
			t.Errorf("file %d is %q, want %q", i, f.Path, want[i])
		}
		if f.Size != int64(len(tree[f.Path])) || f.SHA256 != sha(tree[f.Path]) {
			t.Errorf("file %q: size %d sha %s, want %d %s", f.Path, f.Size, f.SHA256, len(tree[f.Path]), sha(tree[f.Path]))
		}
		total += f.Size
	}
	if err := s.Manifest.Validate(); err != nil {
		t.Fatalf("scanned manifest does not validate: %v", err)
	}
	if progressed != total || s.Manifest.Size() != total {
		t.Errorf("progress reported %d bytes, manifest size %d, files total %d", progressed, s.Manifest.Size(), total)
	}
	f, err := s.Open("config/params.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != tree["config/params.json"] {
		t.Fatalf("Open read %q", b)
	}
}

func TestScanSymlinkInsideAccepted(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"real/weights.bin": "w", "config.json": "{}"})
	if err := os.Symlink("real/weights.bin", filepath.Join(dir, "latest.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../config.json", filepath.Join(dir, "real", "config-link.json")); err != nil {
		t.Fatal(err)
	}
	s := scan(t, dir)
	got := map[string]File{}
	for _, f := range s.Manifest.Files {
		got[f.Path] = f
	}
	if f := got["latest.bin"]; f.Size != 1 || f.SHA256 != sha("w") {
		t.Errorf("latest.bin = %+v, want the target's content", f)
	}
	if f := got["real/config-link.json"]; f.SHA256 != sha("{}") {
		t.Errorf("real/config-link.json = %+v, want the target's content", f)
	}
	if len(got) != 4 {
		t.Errorf("manifest %+v, want 4 files", s.Manifest.Files)
	}
}

func TestScanRefusesEscapingSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret": "s3cr3t"})
	tests := []struct {
		name, link, target string
	}{
		{"absolute", "stolen", filepath.Join(outside, "secret")},
		{"relative up", "stolen", filepath.Join("..", filepath.Base(outside), "secret")},
		{"nested relative up", "sub/stolen", "../../" + filepath.Base(outside) + "/secret"},
		{"absolute into the artifact itself", "self", ""}, // target filled in below
		{"dangling", "ghost", "does-not-exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := filepath.Dir(outside)
			dir, err := os.MkdirTemp(parent, "artifact-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			writeTree(t, dir, map[string]string{"model.json": "m", "sub/keep": "k"})
			target := tt.target
			if target == "" {
				// Absolute links are refused even when they point back inside.
				target = filepath.Join(dir, "model.json")
			}
			if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(tt.link))); err != nil {
				t.Fatal(err)
			}
			_, err = Scan(dir, nil)
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("Scan = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.link) {
				t.Fatalf("error %q does not name the link %q", err, tt.link)
			}
		})
	}
}

func TestScanRefusesSymlinkToDirectory(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"real/weights.bin": "w"})
	if err := os.Symlink("real", filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	_, err := Scan(dir, nil)
	if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), `"alias"`) {
		t.Fatalf("Scan = %v, want ErrInvalid naming alias", err)
	}
}

func TestScanRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"model.json": "m"})
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err) // Linux CI has it: the refusal must be exercised
	}
	_, err := Scan(dir, nil)
	if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), `"pipe"`) {
		t.Fatalf("Scan = %v, want ErrInvalid naming pipe", err)
	}
}

func TestScanEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "only", "dirs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(dir, nil); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("Scan(empty tree) = %v, want ErrInvalid", err)
	}
	if _, err := Scan(filepath.Join(dir, "missing"), nil); err == nil {
		t.Fatal("Scan(missing path) succeeded")
	}
}

// sourceOpener serves a scanned artifact's files the way a download would.
func sourceOpener(s *Source) func(context.Context, File) (io.ReadCloser, error) {
	return func(_ context.Context, f File) (io.ReadCloser, error) { return s.Open(f.Path) }
}

// leftovers lists files under dir whose name marks an unfinished download.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".slipway-partial") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestExtractRoundTrip(t *testing.T) {
	src := t.TempDir()
	tree := map[string]string{
		"model.json":          "weights",
		"config/params.json":  `{"max_depth":6}`,
		"a/b/c/d/e.bin":       string(randomBytes(9, 3*copyBuf+5)),
		"tokenizer/vocab.txt": "hello\nworld\n",
		"empty":               "",
	}
	writeTree(t, src, tree)
	s := scan(t, src)
	dest := filepath.Join(t.TempDir(), "pulled")
	if err := Extract(context.Background(), dest, s.Manifest, sourceOpener(s)); err != nil {
		t.Fatal(err)
	}
	for p, want := range tree {
		got, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s: %d bytes differ from the %d scanned", p, len(got), len(want))
		}
	}
	// The extracted tree scans to the same manifest, hence the same digest.
	again := scan(t, dest)
	d1, _ := s.Manifest.Digest()
	d2, _ := again.Manifest.Digest()
	if d1 != d2 {
		t.Fatalf("extracted tree has digest %s, source %s", d2, d1)
	}
	if l := leftovers(t, dest); len(l) != 0 {
		t.Fatalf("partial files left: %v", l)
	}
}

func TestExtractRefusesWrongContent(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"dir/model.json": "the real weights"})
	s := scan(t, src)
	tests := []struct {
		name string
		body string
	}{
		{"same length, other bytes", "the fake weights"},
		{"short", "the real"},
		{"long", "the real weights and more"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := t.TempDir()
			err := Extract(context.Background(), dest, s.Manifest, func(context.Context, File) (io.ReadCloser, error) {
				return io.NopCloser(strings.NewReader(tt.body)), nil
			})
			if !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), "dir/model.json") {
				t.Fatalf("Extract = %v, want ErrPrecondition naming the file", err)
			}
			if _, err := os.Stat(filepath.Join(dest, "dir", "model.json")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the unverified file is present under its name (stat: %v)", err)
			}
			if l := leftovers(t, dest); len(l) != 0 {
				t.Fatalf("partial files left: %v", l)
			}
		})
	}
}

func TestExtractOpenFailsOrBreaks(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"model.json": "the real weights"})
	s := scan(t, src)
	boom := errors.New("connection reset")
	opens := map[string]func(context.Context, File) (io.ReadCloser, error){
		"open fails": func(context.Context, File) (io.ReadCloser, error) { return nil, boom },
		"read fails": func(context.Context, File) (io.ReadCloser, error) {
			return io.NopCloser(&brokenReader{data: []byte("the real"), err: boom}), nil
		},
	}
	for name, open := range opens {
		dest := t.TempDir()
		if err := Extract(context.Background(), dest, s.Manifest, open); !errors.Is(err, boom) {
			t.Errorf("%s: Extract = %v, want %v", name, err, boom)
		}
		entries, _ := os.ReadDir(dest)
		if len(entries) != 0 {
			t.Errorf("%s: dest holds %d entries after a failed pull", name, len(entries))
		}
	}
}

func TestExtractStopsOnCancel(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"model.json": string(randomBytes(11, 4*copyBuf))})
	s := scan(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	dest := t.TempDir()
	err := Extract(ctx, dest, s.Manifest, func(ctx context.Context, f File) (io.ReadCloser, error) {
		cancel()
		return s.Open(f.Path)
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dest); len(entries) != 0 {
		t.Fatalf("dest holds %d entries after a cancelled pull", len(entries))
	}
}

func TestExtractRefusesEscapingManifest(t *testing.T) {
	for _, p := range []string{"../x", "a/../../x", "/etc/cron.d/x", `..\x`} {
		base := t.TempDir()
		dest := filepath.Join(base, "pulled")
		opened := false
		m := Manifest{Files: []File{{Path: p, Size: 1, SHA256: sha("x")}}}
		err := Extract(context.Background(), dest, m, func(context.Context, File) (io.ReadCloser, error) {
			opened = true
			return io.NopCloser(strings.NewReader("x")), nil
		})
		if !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Extract(%q) = %v, want ErrInvalid", p, err)
		}
		if opened {
			t.Errorf("Extract(%q) fetched a file before refusing the manifest", p)
		}
		if entries, _ := os.ReadDir(base); len(entries) != 0 {
			t.Errorf("Extract(%q) wrote %d entries before refusing", p, len(entries))
		}
	}
}

// TestExtractStaysInsideDespiteSymlink: a symlink already in the destination
// cannot redirect a write outside it.
func TestExtractStaysInsideDespiteSymlink(t *testing.T) {
	outside := t.TempDir()
	dest := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dest, "sub")); err != nil {
		t.Fatal(err)
	}
	m := Manifest{Files: []File{{Path: "sub/x", Size: 1, SHA256: sha("x")}}}
	err := Extract(context.Background(), dest, m, func(context.Context, File) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("x")), nil
	})
	if err == nil {
		t.Fatal("Extract wrote through a symlink leaving the destination")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("Extract wrote %d entries outside the destination", len(entries))
	}
}
