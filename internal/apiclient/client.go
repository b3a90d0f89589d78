// Package apiclient is the typed Go client of slipway's HTTP API; the CLI
// uses nothing else to talk to a server. It reuses the api package's request
// and response types so the two cannot drift apart.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Client calls one slipway server.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for addr ("127.0.0.1:8700" or a full URL) that
// authenticates with token.
func New(addr, token string) (*Client, error) {
	if addr == "" {
		return nil, errors.New("no server address: set SLIPWAY_ADDR or --addr")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server address %q must be host:port or an http(s) URL", addr)
	}
	// A server that never answers must not hang the CLI; bodies (artifact
	// streams) may take as long as they need once the answer has begun.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 5 * time.Minute
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, http: &http.Client{Transport: tr}}, nil
}

// Error is a problem answer from the server.
type Error struct {
	Status  int
	Problem api.Problem
}

func (e *Error) Error() string {
	if e.Problem.Detail != "" {
		return e.Problem.Detail
	}
	return fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
}

// Unwrap maps the status back to a domain error, so callers can use
// errors.Is(err, domain.ErrNotFound) on either side of the wire.
func (e *Error) Unwrap() error {
	switch e.Status {
	case http.StatusNotFound:
		return domain.ErrNotFound
	case http.StatusConflict:
		return domain.ErrConflict
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return domain.ErrInvalid
	case http.StatusServiceUnavailable:
		return domain.ErrUnavailable
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling slipway at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding answer of %s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	e := &Error{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err := json.Unmarshal(b, &e.Problem); err != nil || e.Problem.Status == 0 {
		e.Problem = api.Problem{Status: resp.StatusCode, Detail: strings.TrimSpace(string(b))}
		if e.Problem.Detail == "" {
			e.Problem.Detail = fmt.Sprintf("server answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		}
	}
	return e
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	return c.do(req, out)
}

func (c *Client) sendJSON(ctx context.Context, method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := c.newRequest(ctx, method, path, nil, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, out)
}

// Page asks for one page of a listing.
type Page struct {
	Limit  int
	Cursor string
}

func (p Page) values() url.Values {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	return q
}

// Whoami returns the caller's token record.
func (c *Client) Whoami(ctx context.Context) (domain.Token, error) {
	var t domain.Token
	return t, c.getJSON(ctx, "/api/v1/whoami", nil, &t)
}

// Health reports whether the server answers /readyz.
func (c *Client) Health(ctx context.Context) error {
	return c.getJSON(ctx, "/readyz", nil, nil)
}
