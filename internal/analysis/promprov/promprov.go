// Package promprov is the analysis.Provider that asks a real Prometheus
// server: an instant query through its HTTP API (/api/v1/query) whose
// answer must be one number — one series or a scalar. It owns the HTTP
// exchange with Prometheus and the reading of its JSON answers, nothing
// else; it imports only analysis from slipway and must not import
// stores, the gateway or the controller, which hands it to the judge.
//
// It speaks the API with net/http rather than client_golang's api/v1:
// the exchange is one request and one small JSON shape, and doing it here
// bounds the size of the answer (api/v1 reads any body whole), keeps a
// Prometheus error's errorType and message, and adds no dependency
// (api/v1 brings json-iterator and is marked experimental).
package promprov

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
)

// Defaults for Config's zero fields.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// Config says where Prometheus is and how to reach it.
type Config struct {
	// URL is Prometheus' base URL, such as http://127.0.0.1:9090 or
	// https://metrics.example.com/prometheus (a path prefix is kept):
	// http or https, a host, no query or fragment, and no user:password@
	// — credentials go in the fields below, where they are never printed.
	URL string
	// BearerToken, if set, is sent as "Authorization: Bearer <token>".
	BearerToken string
	// Username and Password, if Username is set, are sent as HTTP basic
	// auth. At most one of BearerToken and Username may be set.
	Username string
	Password string
	// Timeout bounds each query, from sending it to reading the answer,
	// and is passed on to Prometheus as the query's own timeout. Zero
	// means DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes bounds the answer's body; a bigger one is an
	// error. Zero means DefaultMaxResponseBytes. A one-series answer is a
	// few hundred bytes; a huge one is a query that forgot to aggregate.
	MaxResponseBytes int64
	// Transport carries the requests (for a private CA, a proxy); nil
	// means http.DefaultTransport.
	Transport http.RoundTripper
}

// Provider queries one Prometheus server. It is safe for concurrent use.
type Provider struct {
	endpoint string // base URL + /api/v1/query
	auth     string // the Authorization header's value, or ""
	timeout  time.Duration
	maxBytes int64
	client   *http.Client
}

var _ analysis.Provider = (*Provider)(nil)

// New checks cfg and returns a Provider for it. It does not contact
// Prometheus: a server that is down when slipway starts makes queries
// fail (analysis outcome Error) until it is back, not the start.
func New(cfg Config) (*Provider, error) {
	endpoint, err := queryEndpoint(cfg.URL)
	if err != nil {
		return nil, err
	}
	auth, err := authorization(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("prometheus timeout %v: must not be negative", cfg.Timeout)
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("prometheus max response bytes %d: must not be negative", cfg.MaxResponseBytes)
	}
	p := &Provider{
		endpoint: endpoint,
		auth:     auth,
		timeout:  cmp.Or(cfg.Timeout, DefaultTimeout),
		maxBytes: cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		client: &http.Client{
			Transport: cfg.Transport,
			// A redirect would replay the query elsewhere (and a POST
			// turns into a bodiless GET); say where to point instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	return p, nil
}

// queryEndpoint validates a base URL and returns its /api/v1/query URL.
func queryEndpoint(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("prometheus URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, which may hold a password: say only why.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("prometheus URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("prometheus URL %q: scheme must be http or https", u.Redacted())
	case u.User != nil:
		return "", fmt.Errorf("prometheus URL %q: no credentials in the URL; use the username and password (or bearer token) options", u.Redacted())
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("prometheus URL %q: no host", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("prometheus URL %q: no query or fragment; give the base URL, such as http://prometheus:9090", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/query"
	u.RawPath = ""
	return u.String(), nil
}

// authorization returns the Authorization header cfg asks for.
func authorization(cfg Config) (string, error) {
	if cfg.BearerToken != "" && cfg.Username != "" {
		return "", errors.New("prometheus auth: give a bearer token or a username and password, not both")
	}
	if cfg.Password != "" && cfg.Username == "" {
		return "", errors.New("prometheus auth: a password needs a username")
	}
	for _, s := range []struct{ what, v string }{{"bearer token", cfg.BearerToken}, {"username", cfg.Username}, {"password", cfg.Password}} {
		if strings.ContainsFunc(s.v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", fmt.Errorf("prometheus auth: the %s holds a control character", s.what)
		}
	}
	switch {
	case cfg.BearerToken != "":
		return "Bearer " + cfg.BearerToken, nil
	case cfg.Username != "":
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(cfg.Username, cfg.Password)
		return req.Header.Get("Authorization"), nil
	}
	return "", nil
}

// Query returns the value of query at time at (Prometheus' own "now" if
// at is zero). An empty answer wraps analysis.ErrNoData; an answer of
// more than one series, a range vector, a string, or a NaN or infinite
// value is an error, as is anything Prometheus or the network refuse.
func (p *Provider) Query(ctx context.Context, query string, at time.Time) (float64, error) {
	v, err := p.query(ctx, query, at)
	if err != nil {
		return 0, fmt.Errorf("prometheus query %q: %w", query, err)
	}
	return v, nil
}

func (p *Provider) query(ctx context.Context, query string, at time.Time) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	form := url.Values{}
	form.Set("query", query)
	if !at.IsZero() {
		form.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1e3, 'f', 3, 64))
	}
	form.Set("timeout", strconv.FormatFloat(p.timeout.Seconds(), 'f', -1, 64))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}

	resp, err := p.client.Do(req)
	if err != nil {
		return 0, p.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBytes+1))
	if err != nil {
		return 0, p.transportError(ctx, fmt.Errorf("reading the answer: %w", err))
	}
	if int64(len(body)) > p.maxBytes {
		return 0, fmt.Errorf("answer is larger than %d bytes; a rule's query must return one value, so aggregate it, such as sum(...)", p.maxBytes)
	}
	return decode(resp.StatusCode, resp.Header.Get("Location"), body)
}

// transportError says that a query ran out of time in words, keeping
// the cause for errors.Is.
func (p *Provider) transportError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v: %w", p.timeout, err)
	}
	return err
}

// response is Prometheus' answer envelope. Warnings and infos are not
// read: a warning does not change the value.
type response struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      *struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

type sample struct {
	Metric    map[string]string `json:"metric"`
	Value     json.RawMessage   `json:"value"`
	Histogram json.RawMessage   `json:"histogram"`
}

// decode reads an answer of HTTP status code with body: the value, or
// why there is none.
func decode(code int, location string, body []byte) (float64, error) {
	var r response
	jsonErr := json.Unmarshal(body, &r)
	if jsonErr == nil && r.Status == "error" {
		return 0, fmt.Errorf("answered %d, %s: %s", code, cmp.Or(r.ErrorType, "error"), r.Error)
	}
	if code < 200 || code > 299 {
		if location != "" {
			return 0, fmt.Errorf("answered %d, redirecting to %s; configure that URL", code, location)
		}
		return 0, fmt.Errorf("answered %d: %s", code, excerpt(body))
	}
	if jsonErr != nil {
		return 0, fmt.Errorf("answer is not Prometheus' JSON (%v): %s", jsonErr, excerpt(body))
	}
	if r.Status != "success" || r.Data == nil {
		return 0, fmt.Errorf("answer has status %q and no data: %s", r.Status, excerpt(body))
	}
	switch r.Data.ResultType {
	case "scalar":
		return point(r.Data.Result)
	case "vector":
		var series []sample
		if err := json.Unmarshal(r.Data.Result, &series); err != nil {
			return 0, fmt.Errorf("vector result: %w", err)
		}
		switch len(series) {
		case 0:
			return 0, fmt.Errorf("no series: %w", analysis.ErrNoData)
		case 1:
			if series[0].Value == nil && series[0].Histogram != nil {
				return 0, errors.New("the series is a native histogram, not a number; use histogram_quantile or histogram_sum")
			}
			return point(series[0].Value)
		default:
			return 0, fmt.Errorf("%d series (%s); a rule's query must return one, so aggregate it, such as sum(...)", len(series), labelSets(series, 3))
		}
	case "matrix":
		return 0, errors.New("result is a range vector; a rule's query must be an instant one, such as sum(rate(x[1m])) rather than x[1m]")
	case "string":
		return 0, errors.New("result is a string, not a number")
	default:
		return 0, fmt.Errorf("unknown result type %q", r.Data.ResultType)
	}
}

// point reads a [<unix time>, "<value>"] pair's value.
func point(raw json.RawMessage) (float64, error) {
	var pair []json.RawMessage
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return 0, fmt.Errorf("value %s is not a [time, \"number\"] pair", excerpt(raw))
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, fmt.Errorf("value %s is not a quoted number", excerpt(pair[1]))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q is not a number", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("value is %v; a rule needs a finite number (a division by zero traffic?)", v)
	}
	return v, nil
}

// labelSets prints up to n series' label sets, in a stable order.
func labelSets(series []sample, n int) string {
	var out []string
	for i, s := range series {
		if i == n {
			out = append(out, fmt.Sprintf("and %d more", len(series)-n))
			break
		}
		keys := make([]string, 0, len(s.Metric))
		for k := range s.Metric {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		pairs := make([]string, len(keys))
		for j, k := range keys {
			pairs[j] = fmt.Sprintf("%s=%q", k, s.Metric[k])
		}
		out = append(out, "{"+strings.Join(pairs, ", ")+"}")
	}
	return strings.Join(out, ", ")
}

// excerpt is the start of a body, short and on one line, for messages.
func excerpt(b []byte) string {
	const limit = 200
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}
