package artifact

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newLocal(t *testing.T) (*Local, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l, dir
}

// storedFiles lists every regular file under dir/sub, relative to dir.
func storedFiles(t *testing.T, dir, sub string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertEmpty checks that a failed Put left no blob and no upload behind.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	if f := storedFiles(t, dir, "blobs"); len(f) != 0 {
		t.Errorf("blobs left behind: %v", f)
	}
	if f := storedFiles(t, dir, "tmp"); len(f) != 0 {
		t.Errorf("uploads left in tmp/: %v", f)
	}
}

func TestLocalPutOpenStat(t *testing.T) {
	ctx := context.Background()
	l, dir := newLocal(t)
	for _, size := range []int{0, 1, 1000, copyBuf + 17} {
		data := randomBytes(uint64(size), size)
		d := DigestOf(data)
		n, err := l.Put(ctx, d, int64(size), bytes.NewReader(data))
		if err != nil || n != int64(size) {
			t.Fatalf("Put(%d bytes) = %d, %v", size, n, err)
		}
		if got, err := l.Stat(ctx, d); err != nil || got != int64(size) {
			t.Fatalf("Stat = %d, %v", got, err)
		}
		rc, got, err := l.Open(ctx, d)
		if err != nil || got != int64(size) {
			t.Fatalf("Open = %d, %v", got, err)
		}
		back, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("read back %d bytes (err %v), want the %d put", len(back), err, size)
		}
		if err := l.Verify(ctx, d); err != nil {
			t.Fatalf("Verify = %v", err)
		}
		h, _ := ParseDigest(d)
		if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", h[:2], h)); err != nil {
			t.Fatalf("blob not at its content address: %v", err)
		}
	}
	if f := storedFiles(t, dir, "tmp"); len(f) != 0 {
		t.Errorf("uploads left in tmp/: %v", f)
	}
}

func TestLocalPutUnknownSize(t *testing.T) {
	ctx := context.Background()
	l, _ := newLocal(t)
	data := randomBytes(7, 5000)
	n, err := l.Put(ctx, DigestOf(data), -1, bytes.NewReader(data))
	if err != nil || n != 5000 {
		t.Fatalf("Put(size -1) = %d, %v", n, err)
	}
}

func TestLocalMissingAndBadDigest(t *testing.T) {
	ctx := context.Background()
	l, _ := newLocal(t)
	missing := DigestOf([]byte("never stored"))
	if _, err := l.Stat(ctx, missing); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Stat(missing) = %v, want ErrNotFound", err)
	}
	if _, _, err := l.Open(ctx, missing); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Open(missing) = %v, want ErrNotFound", err)
	}
	if err := l.Verify(ctx, missing); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Verify(missing) = %v, want ErrNotFound", err)
	}
	for _, d := range []string{"", "sha256:../../etc/passwd", "sha256:" + strings.Repeat("A", 64), "md5:abc"} {
		if _, err := l.Stat(ctx, d); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Stat(%q) = %v, want ErrInvalid", d, err)
		}
		if _, _, err := l.Open(ctx, d); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", d, err)
		}
		if _, err := l.Put(ctx, d, 1, strings.NewReader("x")); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Put(%q) = %v, want ErrInvalid", d, err)
		}
	}
}

// failingReader fails the test if anything reads it.
type failingReader struct{ t *testing.T }

func (f failingReader) Read([]byte) (int, error) {
	f.t.Error("an already-stored blob was read again")
	return 0, io.ErrUnexpectedEOF
}

func TestLocalPutStoresOnce(t *testing.T) {
	ctx := context.Background()
	l, dir := newLocal(t)
	data := randomBytes(1, 4096)
	d := DigestOf(data)
	if _, err := l.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	h, _ := ParseDigest(d)
	blob := filepath.Join(dir, "blobs", "sha256", h[:2], h)
	before, err := os.Stat(blob)
	if err != nil {
		t.Fatal(err)
	}
	// Age the file so a rewrite would show in its modification time.
	old := before.ModTime().Add(-time.Hour)
	if err := os.Chtimes(blob, old, old); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{int64(len(data)), -1} {
		n, err := l.Put(ctx, d, size, failingReader{t})
		if err != nil || n != int64(len(data)) {
			t.Fatalf("second Put(size %d) = %d, %v", size, n, err)
		}
	}
	after, err := os.Stat(blob)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(old) {
		t.Errorf("blob modification time changed from %v to %v: it was rewritten", old, after.ModTime())
	}
	if a, b := before.Sys().(*syscall.Stat_t), after.Sys().(*syscall.Stat_t); a != nil && b != nil && a.Ino != b.Ino {
		t.Errorf("blob inode changed from %d to %d: it was replaced", a.Ino, b.Ino)
	}
	if f := storedFiles(t, dir, "blobs"); len(f) != 1 {
		t.Errorf("stored files %v, want exactly one blob", f)
	}
	// A Put that claims a different size for the same digest is refused.
	if _, err := l.Put(ctx, d, int64(len(data))+1, failingReader{t}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("Put with a conflicting size = %v, want ErrInvalid", err)
	}
}

func TestLocalPutConcurrentSameBlob(t *testing.T) {
	ctx := context.Background()
	l, dir := newLocal(t)
	data := randomBytes(2, 3*copyBuf)
	d := DigestOf(data)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := l.Put(ctx, d, int64(len(data)), bytes.NewReader(data))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Put: %v", err)
		}
	}
	if err := l.Verify(ctx, d); err != nil {
		t.Fatal(err)
	}
	if f := storedFiles(t, dir, "tmp"); len(f) != 0 {
		t.Errorf("uploads left in tmp/: %v", f)
	}
}

// brokenReader returns n bytes of data, then err.
type brokenReader struct {
	data []byte
	err  error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func TestLocalPutRefusesBadUploads(t *testing.T) {
	data := randomBytes(3, 100)
	d := DigestOf(data)
	boom := errors.New("connection reset")
	tests := []struct {
		name   string
		digest string
		size   int64
		r      io.Reader
		is     []error
	}{
		{"digest mismatch", DigestOf([]byte("something else")), 100, bytes.NewReader(data), []error{domain.ErrInvalid}},
		{"digest mismatch, unknown size", DigestOf([]byte("something else")), -1, bytes.NewReader(data), []error{domain.ErrInvalid}},
		{"truncated", d, 100, bytes.NewReader(data[:50]), []error{domain.ErrInvalid}},
		{"oversized", d, 100, io.MultiReader(bytes.NewReader(data), bytes.NewReader(randomBytes(4, 50))), []error{domain.ErrInvalid}},
		{"empty body", d, 100, strings.NewReader(""), []error{domain.ErrInvalid}},
		{"reader fails midway", d, 100, &brokenReader{data: data[:60], err: boom}, []error{domain.ErrInvalid, boom}},
		{"reader fails midway, unknown size", d, -1, &brokenReader{data: data[:60], err: boom}, []error{boom}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, dir := newLocal(t)
			_, err := l.Put(context.Background(), tt.digest, tt.size, tt.r)
			if err == nil {
				t.Fatal("Put accepted a bad upload")
			}
			for _, want := range tt.is {
				if !errors.Is(err, want) {
					t.Errorf("Put = %v, want it to wrap %v", err, want)
				}
			}
			assertEmpty(t, dir)
			if _, err := l.Stat(context.Background(), tt.digest); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Stat after a failed Put = %v, want ErrNotFound", err)
			}
		})
	}
}

// endlessReader produces zeros forever, cancelling ctx after `after` reads.
type endlessReader struct {
	reads, after int
	cancel       context.CancelFunc
}

func (e *endlessReader) Read(p []byte) (int, error) {
	e.reads++
	if e.reads == e.after {
		e.cancel()
	}
	clear(p)
	return len(p), nil
}

func TestLocalPutStopsOnCancel(t *testing.T) {
	l, dir := newLocal(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &endlessReader{after: 3, cancel: cancel}
	_, err := l.Put(ctx, DigestOf(nil), -1, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	if r.reads > r.after+1 {
		t.Errorf("Put kept reading %d times after cancel", r.reads-r.after)
	}
	assertEmpty(t, dir)

	// A context already done stops a Put before it reads anything.
	r = &endlessReader{after: -1, cancel: func() {}}
	if _, err := l.Put(ctx, DigestOf(nil), 10, r); !errors.Is(err, context.Canceled) || r.reads != 0 {
		t.Fatalf("Put with a done context = %v after %d reads", err, r.reads)
	}
	assertEmpty(t, dir)
}

func TestOpenLocalRemovesLeftovers(t *testing.T) {
	ctx := context.Background()
	l, dir := newLocal(t)
	data := []byte("kept")
	d := DigestOf(data)
	if _, err := l.Put(ctx, d, 4, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// A crash mid-upload leaves a temp file and perhaps a folder.
	tmp := filepath.Join(dir, "tmp")
	if err := os.WriteFile(filepath.Join(tmp, "upload-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tmp, "odd", "nested"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "odd", "nested", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l2, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil || len(entries) != 0 {
		t.Fatalf("tmp/ after reopening holds %d entries (err %v)", len(entries), err)
	}
	if err := l2.Verify(ctx, d); err != nil {
		t.Fatalf("a finished blob did not survive reopening: %v", err)
	}
}

func TestLocalVerifyDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	l, dir := newLocal(t)
	data := randomBytes(5, 10_000)
	d := DigestOf(data)
	if _, err := l.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	h, _ := ParseDigest(d)
	blob := filepath.Join(dir, "blobs", "sha256", h[:2], h)
	f, err := os.OpenFile(blob, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[5000] ^ 1}, 5000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = l.Verify(ctx, d)
	if !errors.Is(err, domain.ErrPrecondition) || !strings.Contains(err.Error(), d) {
		t.Fatalf("Verify of a flipped bit = %v, want ErrPrecondition naming %s", err, d)
	}
	// A truncated blob too.
	if err := os.Truncate(blob, 100); err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(ctx, d); !errors.Is(err, domain.ErrPrecondition) {
		t.Fatalf("Verify of a truncated blob = %v, want ErrPrecondition", err)
	}
}
