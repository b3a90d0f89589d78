package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/artifact"
)

// uploadArtifact hashes the files at path, uploads the blobs the server
// lacks and returns the manifest to register.
func uploadArtifact(ctx context.Context, c *apiclient.Client, path string, stderr io.Writer) (artifact.Manifest, error) {
	bar := newProgress(stderr, "hashing", -1)
	src, err := artifact.Scan(path, bar.add)
	bar.done()
	if err != nil {
		return artifact.Manifest{}, err
	}
	defer src.Close()
	m := src.Manifest
	var missing []artifact.File
	var total int64
	for _, f := range m.Files {
		ok, err := c.HasBlob(ctx, f.Digest())
		if err != nil {
			return m, err
		}
		if !ok {
			missing = append(missing, f)
			total += f.Size
		}
	}
	bar = newProgress(stderr, "uploading", total)
	defer bar.done()
	for _, f := range missing {
		if err := uploadFile(ctx, c, src, f, bar); err != nil {
			return m, err
		}
	}
	return m, nil
}

func uploadFile(ctx context.Context, c *apiclient.Client, src *artifact.Source, f artifact.File, bar *progress) error {
	fh, err := src.Open(f.Path)
	if err != nil {
		return fmt.Errorf("artifact path %q: %w", f.Path, err)
	}
	defer fh.Close()
	if _, err := c.PutBlob(ctx, f.Digest(), f.Size, bar.reader(fh)); err != nil {
		return fmt.Errorf("uploading %q: %w", f.Path, err)
	}
	return nil
}

func newVersionPullCmd(g *globals) *cobra.Command {
	var dest string
	cmd := &cobra.Command{
		Use:   "pull MODEL VERSION|@alias",
		Short: "Download a version's artifact and verify every file's digest",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			mr, err := c.Manifest(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			// The server's word is checked, not trusted: the manifest must
			// hash to the version's digest.
			if d, err := mr.Manifest.Digest(); err != nil || d != mr.Digest {
				return fmt.Errorf("manifest of version %d does not hash to its digest %s", mr.Version, mr.Digest)
			}
			if dest == "" {
				dest = fmt.Sprintf("%s-v%d", mr.Model, mr.Version)
			}
			if err := emptyOrAbsent(dest); err != nil {
				return err
			}
			bar := newProgress(g.stderr, "downloading", mr.Manifest.Size())
			err = artifact.Extract(cmd.Context(), dest, mr.Manifest, func(ctx context.Context, f artifact.File) (io.ReadCloser, error) {
				rc, _, err := c.GetBlob(ctx, f.Digest())
				if err != nil {
					return nil, err
				}
				return readCloser{bar.reader(rc), rc}, nil
			})
			bar.done()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "pulled %s version %d (%d files, %s, %s) into %s; every digest verified\n",
				mr.Model, mr.Version, len(mr.Manifest.Files), humanBytes(mr.Manifest.Size()), mr.Digest, dest)
			return nil
		},
	}
	cmd.Flags().StringVarP(&dest, "dest", "d", "", "folder to write into (default MODEL-vN; must be empty or absent)")
	return cmd
}

type readCloser struct {
	io.Reader
	io.Closer
}

func emptyOrAbsent(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destination %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("destination %s is not empty; pull into a new folder with --dest", dir)
	}
	return nil
}

func newVersionVerifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify MODEL VERSION|@alias",
		Short: "Have the server re-hash every stored file of a version",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Verify(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			err = g.emit(r, func() table {
				t := table{header: []string{"PATH", "OK", "ERROR"}}
				for _, f := range r.Files {
					t.rows = append(t.rows, []string{f.Path, strconv.FormatBool(f.OK), f.Error})
				}
				return t
			})
			if err != nil {
				return err
			}
			if !r.OK {
				return fmt.Errorf("version %d of model %s: stored artifact does not match its digest %s", r.Version, r.Model, r.Digest)
			}
			return nil
		},
	}
	g.addOutput(cmd)
	return cmd
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
