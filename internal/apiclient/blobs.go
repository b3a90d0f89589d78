package apiclient

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/slipway-ml/slipway/internal/api"
)

// HasBlob reports whether the server already stores a blob, so identical
// files are never uploaded twice.
func (c *Client) HasBlob(ctx context.Context, digest string) (bool, error) {
	req, err := c.newRequest(ctx, http.MethodHead, "/api/v1/blobs/"+digest, nil, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("calling slipway at %s: %w", c.base, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	default:
		return false, &Error{Status: resp.StatusCode, Problem: api.Problem{Status: resp.StatusCode,
			Detail: fmt.Sprintf("checking blob %s: server answered %d %s", digest, resp.StatusCode, http.StatusText(resp.StatusCode))}}
	}
}

// PutBlob streams size bytes of r as the blob named digest.
func (c *Client) PutBlob(ctx context.Context, digest string, size int64, r io.Reader) (api.BlobResponse, error) {
	var out api.BlobResponse
	req, err := c.newRequest(ctx, http.MethodPut, "/api/v1/blobs/"+digest, nil, r)
	if err != nil {
		return out, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	return out, c.do(req, &out)
}

// GetBlob opens a blob's content; the caller closes it.
func (c *Client) GetBlob(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v1/blobs/"+digest, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("calling slipway at %s: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, 0, decodeError(resp)
	}
	return resp.Body, resp.ContentLength, nil
}
