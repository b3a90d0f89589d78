package promprov

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
)

// seen is what a fake Prometheus was asked.
type seen struct {
	method, path, query, time, timeout, auth, contentType string
}

// fakePrometheus answers every request with code and body (and the
// headers in hdr) and records the last request.
func fakePrometheus(t *testing.T, code int, body string, hdr map[string]string) (*httptest.Server, func() seen) {
	t.Helper()
	var mu sync.Mutex
	var last seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		mu.Lock()
		last = seen{r.Method, r.URL.Path, r.PostForm.Get("query"), r.PostForm.Get("time"), r.PostForm.Get("timeout"), r.Header.Get("Authorization"), r.Header.Get("Content-Type")}
		mu.Unlock()
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, func() seen { mu.Lock(); defer mu.Unlock(); return last }
}

func newProvider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return p
}

const (
	vector1   = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.123,"0.25"]}]}}`
	vectorLbl = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"slipway"},"value":[1700000000,"42"]}]},"warnings":["PromQL info: metric might not be a counter"]}`
	empty     = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	two       = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"version":"v1","__name__":"x_total"},"value":[1,"1"]},{"metric":{"version":"v2","__name__":"x_total"},"value":[1,"2"]}]}}`
	scalar    = `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3.5"]}}`
)

func series(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `{"metric":{"i":"` + string(rune('a'+i)) + `"},"value":[1,"1"]}`
	}
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(parts, ",") + `]}}`
}

func valueOf(v string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"` + v + `"]}]}}`
}

func TestQueryAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    int
		body    string
		hdr     map[string]string
		want    float64
		noData  bool
		errHas  []string // all of these in the error; none means no error
		errNot  []string
		maxBody int64
	}{
		{name: "one series", code: 200, body: vector1, want: 0.25},
		{name: "one labelled series with a warning", code: 200, body: vectorLbl, want: 42},
		{name: "scalar", code: 200, body: scalar, want: 3.5},
		{name: "zero", code: 200, body: valueOf("0"), want: 0},
		{name: "negative", code: 200, body: valueOf("-1.5e3"), want: -1500},
		{name: "empty vector", code: 200, body: empty, noData: true, errHas: []string{"no series", "no data"}},
		{name: "two series", code: 200, body: two, errHas: []string{"2 series", `{__name__="x_total", version="v1"}, {__name__="x_total", version="v2"}`, "sum(...)"}},
		{name: "five series", code: 200, body: series(5), errHas: []string{"5 series", `{i="a"}, {i="b"}, {i="c"}, and 2 more`}, errNot: []string{`i="d"`}},
		{name: "NaN", code: 200, body: valueOf("NaN"), errHas: []string{"value is NaN", "finite"}},
		{name: "+Inf", code: 200, body: valueOf("+Inf"), errHas: []string{"value is +Inf"}},
		{name: "-Inf scalar", code: 200, body: `{"status":"success","data":{"resultType":"scalar","result":[1,"-Inf"]}}`, errHas: []string{"value is -Inf"}},
		{name: "bad_data", code: 400, body: `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \")\""}`, errHas: []string{"answered 400, bad_data: 1:5: parse error"}},
		{name: "execution error", code: 422, body: `{"status":"error","errorType":"execution","error":"vector cannot contain metrics with the same labelset"}`, errHas: []string{"answered 422, execution: vector cannot contain"}},
		{name: "timeout at Prometheus", code: 503, body: `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`, errHas: []string{"answered 503, timeout: query timed out"}},
		{name: "error status with 200", code: 200, body: `{"status":"error","error":"odd"}`, errHas: []string{"answered 200, error: odd"}},
		{name: "server error text", code: 500, body: "internal\n  error", errHas: []string{`answered 500: "internal error"`}},
		{name: "bad gateway, empty", code: 502, body: "", errHas: []string{"answered 502: (empty body)"}},
		{name: "unauthorized", code: 401, body: "Unauthorized\n", errHas: []string{`answered 401: "Unauthorized"`}},
		{name: "redirect", code: 302, body: "", hdr: map[string]string{"Location": "https://elsewhere/api/v1/query"}, errHas: []string{"answered 302, redirecting to https://elsewhere/api/v1/query"}},
		{name: "garbage", code: 200, body: "<html>hello</html>", errHas: []string{"not Prometheus' JSON", `"<html>hello</html>"`}},
		{name: "truncated JSON", code: 200, body: vector1[:40], errHas: []string{"not Prometheus' JSON"}},
		{name: "long garbage is cut", code: 200, body: strings.Repeat("x", 5000), errHas: []string{"not Prometheus' JSON", strings.Repeat("x", 200) + "…"}, errNot: []string{strings.Repeat("x", 201)}},
		{name: "success without data", code: 200, body: `{"status":"success"}`, errHas: []string{`status "success" and no data`}},
		{name: "no status", code: 200, body: `{}`, errHas: []string{`status "" and no data`}},
		{name: "matrix", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}`, errHas: []string{"range vector", "sum(rate(x[1m]))"}},
		{name: "string", code: 200, body: `{"status":"success","data":{"resultType":"string","result":[1,"hi"]}}`, errHas: []string{"a string, not a number"}},
		{name: "unknown type", code: 200, body: `{"status":"success","data":{"resultType":"tensor","result":[]}}`, errHas: []string{`unknown result type "tensor"`}},
		{name: "native histogram", code: 200, body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"3","sum":"1","buckets":[]}]}]}}`, errHas: []string{"native histogram", "histogram_quantile"}},
		{name: "vector not a list", code: 200, body: `{"status":"success","data":{"resultType":"vector","result":{"a":1}}}`, errHas: []string{"vector result"}},
		{name: "value not a pair", code: 200, body: `{"status":"success","data":{"resultType":"scalar","result":[1]}}`, errHas: []string{"not a [time, \"number\"] pair"}},
		{name: "value unquoted", code: 200, body: `{"status":"success","data":{"resultType":"scalar","result":[1,2]}}`, errHas: []string{"not a quoted number"}},
		{name: "value not a number", code: 200, body: valueOf("abc"), errHas: []string{`value "abc" is not a number`}},
		{name: "answer too big", code: 200, body: series(20), maxBody: 300, errHas: []string{"larger than 300 bytes", "aggregate"}},
		{name: "answer exactly at the bound", code: 200, body: vector1, maxBody: int64(len(vector1)), want: 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fakePrometheus(t, tc.code, tc.body, tc.hdr)
			p := newProvider(t, Config{URL: srv.URL, MaxResponseBytes: tc.maxBody})
			got, err := p.Query(context.Background(), "q_total", time.Unix(1700000000, 0))
			if len(tc.errHas) == 0 {
				if err != nil {
					t.Fatalf("Query: %v", err)
				}
				if got != tc.want {
					t.Fatalf("Query = %v, want %v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Query = %v, nil; want an error", got)
			}
			if errors.Is(err, analysis.ErrNoData) != tc.noData {
				t.Errorf("errors.Is(%v, ErrNoData) = %v, want %v", err, !tc.noData, tc.noData)
			}
			if !strings.HasPrefix(err.Error(), `prometheus query "q_total": `) {
				t.Errorf("error %q does not name the query", err)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, s := range tc.errNot {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q", err, s)
				}
			}
		})
	}
}

func TestQuerySendsTheRequestPrometheusExpects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		at       time.Time
		wantPath string
		wantAuth string
		wantTime string
		wantTO   string
	}{
		{name: "plain", cfg: Config{}, at: time.Unix(1700000000, 123456789), wantPath: "/api/v1/query", wantTime: "1700000000.123", wantTO: "10"},
		{name: "prefix and slash", cfg: Config{Timeout: 1500 * time.Millisecond}, at: time.UnixMilli(5), wantPath: "/prom/api/v1/query", wantTime: "0.005", wantTO: "1.5"},
		{name: "bearer", cfg: Config{BearerToken: "tok.en-1"}, at: time.Unix(10, 0), wantPath: "/api/v1/query", wantAuth: "Bearer tok.en-1", wantTime: "10.000", wantTO: "10"},
		{name: "basic", cfg: Config{Username: "slipway", Password: "p:ss w"}, at: time.Unix(10, 0), wantPath: "/api/v1/query", wantAuth: "Basic c2xpcHdheTpwOnNzIHc=", wantTime: "10.000", wantTO: "10"},
		{name: "no time means Prometheus' now", cfg: Config{}, wantPath: "/api/v1/query", wantTO: "10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, last := fakePrometheus(t, 200, scalar, nil)
			tc.cfg.URL = srv.URL
			if tc.wantPath == "/prom/api/v1/query" {
				tc.cfg.URL += "/prom/"
			}
			p := newProvider(t, tc.cfg)
			query := `sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))`
			if _, err := p.Query(context.Background(), query, tc.at); err != nil {
				t.Fatal(err)
			}
			want := seen{http.MethodPost, tc.wantPath, query, tc.wantTime, tc.wantTO, tc.wantAuth, "application/x-www-form-urlencoded"}
			if got := last(); got != want {
				t.Errorf("request\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestQueryTimeout: a Prometheus that never answers costs one Timeout,
// and the error says so and keeps context.DeadlineExceeded.
func TestQueryTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	p := newProvider(t, Config{URL: srv.URL, Timeout: 50 * time.Millisecond})
	_, err := p.Query(context.Background(), "up", time.Time{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Query error = %v, want context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "no answer within 50ms") || errors.Is(err, analysis.ErrNoData) {
		t.Errorf("error %q: want 'no answer within 50ms' and not ErrNoData", err)
	}

	// The caller's own cancellation is reported as such, not as a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Query(ctx, "up", time.Time{})
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "no answer within") {
		t.Errorf("cancelled Query error = %v, want context.Canceled without the timeout wording", err)
	}
}

// TestQueryServerGone: a Prometheus that is not listening is an error
// (Error outcome), never "no data".
func TestQueryServerGone(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p := newProvider(t, Config{URL: url})
	_, err := p.Query(context.Background(), "up", time.Time{})
	if err == nil || errors.Is(err, analysis.ErrNoData) {
		t.Fatalf("Query against a closed port: %v, want an error that is not ErrNoData", err)
	}
	if !strings.Contains(err.Error(), "connect") {
		t.Errorf("error %q does not say the connection failed", err)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		errHas string // "" means valid
	}{
		{name: "http", cfg: Config{URL: "http://127.0.0.1:9090"}},
		{name: "https with prefix", cfg: Config{URL: "https://metrics.example.com/prometheus/"}},
		{name: "ipv6", cfg: Config{URL: "http://[::1]:9090"}},
		{name: "bearer", cfg: Config{URL: "https://p", BearerToken: "t"}},
		{name: "basic without password", cfg: Config{URL: "https://p", Username: "u"}},
		{name: "empty", cfg: Config{}, errHas: "prometheus URL is empty"},
		{name: "no scheme", cfg: Config{URL: "prometheus:9090"}, errHas: "scheme must be http or https"},
		{name: "ftp", cfg: Config{URL: "ftp://p"}, errHas: "scheme must be http or https"},
		{name: "relative", cfg: Config{URL: "/api"}, errHas: "scheme must be http or https"},
		{name: "no host", cfg: Config{URL: "http://"}, errHas: "no host"},
		{name: "port only", cfg: Config{URL: "http://:9090"}, errHas: "no host"},
		{name: "userinfo", cfg: Config{URL: "http://admin:s3cret@p:9090"}, errHas: "no credentials in the URL"},
		{name: "query", cfg: Config{URL: "http://p:9090/?x=1"}, errHas: "no query or fragment"},
		{name: "empty query", cfg: Config{URL: "http://p:9090/?"}, errHas: "no query or fragment"},
		{name: "fragment", cfg: Config{URL: "http://p:9090/#x"}, errHas: "no query or fragment"},
		{name: "unparsable", cfg: Config{URL: "http://a b:s3cret@p\x7f"}, errHas: "prometheus URL: "},
		{name: "both auths", cfg: Config{URL: "http://p", BearerToken: "t", Username: "u"}, errHas: "not both"},
		{name: "password alone", cfg: Config{URL: "http://p", Password: "s3cret"}, errHas: "needs a username"},
		{name: "token with newline", cfg: Config{URL: "http://p", BearerToken: "t\nX-Evil: 1"}, errHas: "bearer token holds a control character"},
		{name: "password with CR", cfg: Config{URL: "http://p", Username: "u", Password: "a\rb"}, errHas: "password holds a control character"},
		{name: "negative timeout", cfg: Config{URL: "http://p", Timeout: -time.Second}, errHas: "must not be negative"},
		{name: "negative size", cfg: Config{URL: "http://p", MaxResponseBytes: -1}, errHas: "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cfg)
			if tc.errHas == "" {
				if err != nil || p == nil {
					t.Fatalf("New(%+v) = %v, %v; want a provider", tc.cfg, p, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New(%+v) succeeded; want an error with %q", tc.cfg, tc.errHas)
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not contain %q", err, tc.errHas)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

// FuzzDecode: whatever Prometheus (or something posing as it) answers,
// decode does not panic, and a value it accepts is finite and came with
// a 2xx status.
func FuzzDecode(f *testing.F) {
	for _, b := range []string{vector1, vectorLbl, empty, two, scalar, series(4), valueOf("NaN"), valueOf("1e309"),
		`{"status":"error","errorType":"bad_data","error":"x"}`, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, "", "null", "[]"} {
		f.Add(200, []byte(b))
	}
	f.Add(500, []byte(vector1))
	f.Fuzz(func(t *testing.T, code int, body []byte) {
		v, err := decode(code, "", body)
		if err != nil {
			return
		}
		if code < 200 || code > 299 {
			t.Fatalf("decode accepted status %d", code)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("decode accepted %v", v)
		}
	})
}
