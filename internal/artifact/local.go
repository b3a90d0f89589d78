package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Store keeps blobs by content digest. Local is the folder implementation;
// an S3 one comes later behind the same methods.
type Store interface {
	// Put streams r into the blob named digest. size is the expected length
	// or -1 when unknown. Nothing is visible under digest unless every byte
	// arrived, hashed to digest and was made durable.
	Put(ctx context.Context, digest string, size int64, r io.Reader) (written int64, err error)
	// Open returns the blob's content and size.
	Open(ctx context.Context, digest string) (io.ReadCloser, int64, error)
	// Stat returns the blob's size, or ErrNotFound.
	Stat(ctx context.Context, digest string) (int64, error)
}

var _ Store = (*Local)(nil)

// Local stores blobs in a folder: blobs/sha256/ab/abcdef… and an upload
// folder tmp/ for blobs in flight.
type Local struct {
	dir string
	// bufs holds copy buffers so parallel uploads don't allocate 1 MiB each.
	bufs sync.Pool
}

const copyBuf = 1 << 20

// OpenLocal opens (creating if needed) a blob folder and removes upload
// leftovers of a previous run: a crash mid-upload leaves nothing behind.
func OpenLocal(dir string) (*Local, error) {
	for _, d := range []string{filepath.Join(dir, "blobs", "sha256"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("artifact folder: %w", err)
		}
	}
	tmp := filepath.Join(dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return nil, fmt.Errorf("artifact folder: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return nil, fmt.Errorf("removing unfinished upload %s: %w", e.Name(), err)
		}
	}
	l := &Local{dir: dir}
	l.bufs.New = func() any { b := make([]byte, copyBuf); return &b }
	return l, nil
}

func (l *Local) blobPath(hexsum string) string {
	return filepath.Join(l.dir, "blobs", "sha256", hexsum[:2], hexsum)
}

// Stat returns the size of a stored blob.
func (l *Local) Stat(_ context.Context, digest string) (int64, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(l.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", digest, domain.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	return fi.Size(), nil
}

// Open returns a stored blob.
func (l *Local) Open(_ context.Context, digest string) (io.ReadCloser, int64, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(l.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("blob %s: %w", digest, domain.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	return f, fi.Size(), nil
}

// Put writes r to a temp file while hashing it, checks length and digest,
// fsyncs, renames into place and fsyncs the folder. A blob already stored is
// not written again (identical content is stored once).
func (l *Local) Put(ctx context.Context, digest string, size int64, r io.Reader) (int64, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return 0, err
	}
	final := l.blobPath(h)
	if fi, err := os.Stat(final); err == nil {
		if size >= 0 && fi.Size() != size {
			return 0, fmt.Errorf("blob %s is stored with %d bytes, upload says %d: %w", digest, fi.Size(), size, domain.ErrInvalid)
		}
		return fi.Size(), nil
	}
	tmp, err := os.CreateTemp(filepath.Join(l.dir, "tmp"), "upload-*")
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	hasher := sha256.New()
	bp := l.bufs.Get().(*[]byte)
	defer l.bufs.Put(bp)
	src := r
	if size >= 0 {
		// Read one byte past the promised size so an oversized body is caught.
		src = io.LimitReader(r, size+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(tmp, hasher), ctxReader{ctx, src}, *bp)
	if err != nil {
		return n, fmt.Errorf("blob %s: upload interrupted after %d bytes: %w", digest, n, errors.Join(err, domain.ErrInvalid))
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("blob %s: upload has %d bytes, expected %d (truncated or oversized): %w", digest, n, size, domain.ErrInvalid)
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != h {
		return n, fmt.Errorf("blob digest mismatch: uploaded content hashes to sha256:%s, not %s: %w", got, digest, domain.ErrInvalid)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("blob %s: fsync: %w", digest, err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("blob %s: %w", digest, err)
	}
	if err := l.shardDir(filepath.Dir(final)); err != nil {
		return n, fmt.Errorf("blob %s: %w", digest, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return n, fmt.Errorf("blob %s: %w", digest, err)
	}
	committed = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return n, fmt.Errorf("blob %s: fsync folder: %w", digest, err)
	}
	return n, nil
}

// Verify re-hashes a stored blob and reports a mismatch as ErrPrecondition:
// the stored bytes are no longer what was registered.
func (l *Local) Verify(ctx context.Context, digest string) error {
	rc, _, err := l.Open(ctx, digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	return VerifyReader(ctx, digest, rc)
}

// VerifyReader hashes r and compares it with digest.
func VerifyReader(ctx context.Context, digest string, r io.Reader) error {
	h, err := ParseDigest(digest)
	if err != nil {
		return err
	}
	hasher := sha256.New()
	if _, err := io.Copy(hasher, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != h {
		return fmt.Errorf("blob %s is corrupt: its content hashes to sha256:%s: %w", digest, got, domain.ErrPrecondition)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// shardDir makes sure a blob's shard folder exists durably: a new folder's
// entry in its parent is fsynced too, or a power cut could lose the folder
// with the blob that a committed version row points at.
func (l *Local) shardDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}
