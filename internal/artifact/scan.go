package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Source is an artifact on the local disk about to be pushed: a single file
// or a directory tree, read through an os.Root so nothing outside it is ever
// opened.
type Source struct {
	root     *os.Root
	single   string // the file name when the artifact is one file
	Manifest Manifest
}

// Scan walks path (a file or a directory), hashes every file and builds the
// manifest. Symlinks are followed only when they stay inside the artifact;
// a symlink pointing out, or to a directory, is refused with its path.
// progress, when not nil, is told the byte count of each chunk hashed.
func Scan(p string, progress func(n int64)) (*Source, error) {
	// The path given on the command line may itself be a symlink (a DVC or
	// git-annex cache, a "latest" link); only links inside it are policed.
	if resolved, err := filepath.EvalSymlinks(p); err == nil {
		p = resolved
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", p, err)
	}
	if !fi.IsDir() {
		root, err := os.OpenRoot(filepath.Dir(p))
		if err != nil {
			return nil, fmt.Errorf("artifact %s: %w", p, err)
		}
		name := filepath.Base(p)
		s := &Source{root: root, single: name}
		f, err := s.hashFile(name, progress)
		if err != nil {
			root.Close()
			return nil, err
		}
		s.Manifest = Manifest{Files: []File{f}}
		return s, s.Manifest.Validate()
	}
	root, err := os.OpenRoot(p)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", p, err)
	}
	s := &Source{root: root}
	var files []File
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("artifact path %q: %w", rel, err)
		}
		if d.IsDir() {
			return nil
		}
		if err := ValidatePath(rel); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err := root.Stat(rel) // follows the link, refusing escapes
			if err != nil {
				return fmt.Errorf("artifact path %q is a symlink pointing outside the artifact: %w", rel, domain.ErrInvalid)
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("artifact path %q is a symlink to a directory or special file; only regular files are allowed: %w", rel, domain.ErrInvalid)
			}
		} else if !d.Type().IsRegular() {
			return fmt.Errorf("artifact path %q is not a regular file: %w", rel, domain.ErrInvalid)
		}
		f, err := s.hashFile(rel, progress)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		root.Close()
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	s.Manifest = Manifest{Files: files}
	if err := s.Manifest.Validate(); err != nil {
		root.Close()
		return nil, err
	}
	return s, nil
}

func (s *Source) hashFile(rel string, progress func(int64)) (File, error) {
	f, err := s.root.Open(filepath.FromSlash(rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return File{}, fmt.Errorf("artifact path %q: %w", rel, err)
		}
		return File{}, fmt.Errorf("artifact path %q cannot be read inside the artifact (a symlink out?): %v: %w", rel, err, domain.ErrInvalid)
	}
	defer f.Close()
	h := sha256.New()
	var w io.Writer = h
	if progress != nil {
		w = progressWriter{h, progress}
	}
	n, err := io.CopyBuffer(w, f, make([]byte, copyBuf))
	if err != nil {
		return File{}, fmt.Errorf("artifact path %q: %w", rel, err)
	}
	return File{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Open opens one file of the scanned artifact for upload.
func (s *Source) Open(rel string) (*os.File, error) {
	if s.single != "" {
		if rel != s.single {
			return nil, fmt.Errorf("artifact path %q: %w", rel, domain.ErrNotFound)
		}
	}
	return s.root.Open(filepath.FromSlash(rel))
}

// Close releases the artifact's folder.
func (s *Source) Close() error { return s.root.Close() }

type progressWriter struct {
	w  io.Writer
	fn func(int64)
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.fn(int64(n))
	return n, err
}
