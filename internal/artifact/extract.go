package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Extract writes the files of m under dest, fetching each with open, and
// verifies every byte against the manifest before the file appears under
// its name. Paths are checked again here (a client never trusts the server)
// and written through an os.Root, so nothing lands outside dest.
func Extract(ctx context.Context, dest string, m Manifest, open func(ctx context.Context, f File) (io.ReadCloser, error)) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("pull destination: %w", err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return fmt.Errorf("pull destination: %w", err)
	}
	defer root.Close()
	for _, f := range m.Files {
		if err := extractOne(ctx, root, f, open); err != nil {
			return err
		}
	}
	return nil
}

func extractOne(ctx context.Context, root *os.Root, f File, open func(context.Context, File) (io.ReadCloser, error)) error {
	if dir := path.Dir(f.Path); dir != "." {
		if err := root.MkdirAll(filepath.FromSlash(dir), 0o755); err != nil {
			return fmt.Errorf("artifact path %q: %w", f.Path, err)
		}
	}
	tmpName := filepath.FromSlash(f.Path) + ".slipway-partial"
	out, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("artifact path %q: %w", f.Path, err)
	}
	done := false
	defer func() {
		if !done {
			out.Close()
			root.Remove(tmpName)
		}
	}()
	rc, err := open(ctx, f)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(out, h), ctxReader{ctx, io.LimitReader(rc, f.Size+1)}, make([]byte, copyBuf))
	if err != nil {
		return fmt.Errorf("artifact path %q: download interrupted after %d bytes: %w", f.Path, n, err)
	}
	if n != f.Size {
		return fmt.Errorf("artifact path %q: got %d bytes, manifest says %d: %w", f.Path, n, f.Size, domain.ErrPrecondition)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("artifact path %q: content hashes to sha256:%s, manifest says sha256:%s: %w", f.Path, got, f.SHA256, domain.ErrPrecondition)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("artifact path %q: %w", f.Path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("artifact path %q: %w", f.Path, err)
	}
	if err := root.Rename(tmpName, filepath.FromSlash(f.Path)); err != nil {
		return fmt.Errorf("artifact path %q: %w", f.Path, err)
	}
	done = true
	return nil
}
