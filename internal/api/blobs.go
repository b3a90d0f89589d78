package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/slipway-ml/slipway/internal/artifact"
)

func (s *Server) headBlob(w http.ResponseWriter, r *http.Request) error {
	size, err := s.blobs.Stat(r.Context(), r.PathValue("digest"))
	if err != nil {
		// HEAD answers carry no body; the status says it all.
		status, _ := statusOf(err)
		w.WriteHeader(status)
		return nil
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	return nil
}

// BlobResponse is the answer of PUT /api/v1/blobs/{digest}.
type BlobResponse struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// putBlob streams an upload to the artifact store, which hashes it on the
// way and keeps it only if it hashes to the digest in the URL.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) error {
	digest := r.PathValue("digest")
	if _, err := artifact.ParseDigest(digest); err != nil {
		return err
	}
	if r.ContentLength > s.maxBlob {
		return fmt.Errorf("artifact file is %d bytes, larger than this server's limit of %d: %w", r.ContentLength, s.maxBlob, &http.MaxBytesError{Limit: s.maxBlob})
	}
	body := http.MaxBytesReader(w, r.Body, s.maxBlob)
	n, err := s.blobs.Put(r.Context(), digest, r.ContentLength, body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("artifact file is larger than this server's limit of %d bytes: %w", s.maxBlob, tooBig)
		}
		return err
	}
	writeJSON(w, http.StatusCreated, BlobResponse{Digest: digest, Size: n})
	return nil
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) error {
	rc, size, err := s.blobs.Open(r.Context(), r.PathValue("digest"))
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Docker-Content-Digest", r.PathValue("digest"))
	if _, err := io.Copy(w, rc); err != nil {
		// Headers are gone; abort so the client sees a truncated body
		// rather than a short one that looks whole.
		panic(http.ErrAbortHandler)
	}
	return nil
}
