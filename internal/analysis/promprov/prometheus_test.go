//go:build linux

package promprov

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slipway-ml/slipway/internal/analysis"
)

// TestRealPrometheus starts the real Prometheus server on loopback,
// lets it scrape a /metrics endpoint every second, and asks it through
// the Provider: a counter, a sum, a rate, a query with two series, one
// with none, one at a time before any scrape, and one it cannot parse.
// `make test` installs Prometheus when it is missing (Debian package
// prometheus); without it this test fails rather than pass unseen.
func TestRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus server; skipped with -short")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("the prometheus binary is not on PATH (%v): `make test` installs it with apt-get (Debian package prometheus); "+
			"install it, or run `go test -short` to leave out the tests that need it", err)
	}
	before := time.Now()

	// The scraped endpoint: a registry like slipway's /metrics, with
	// values set before Prometheus starts so its first scrape sees them.
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slipway_promprov_test_requests_total",
		Help: "Requests served, per version (test only).",
	}, []string{"version"})
	reg.MustRegister(requests)
	requests.WithLabelValues("a").Add(3)
	requests.WithLabelValues("b").Add(4)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(target.Close)

	url := startPrometheus(t, bin, strings.TrimPrefix(target.URL, "http://"))
	p := newProvider(t, Config{URL: url, Timeout: 5 * time.Second})
	ctx := context.Background()

	waitForValue(t, p, "sum(slipway_promprov_test_requests_total)", 7)

	for _, tc := range []struct {
		query  string
		at     time.Time
		want   float64
		noData bool
		errHas string
	}{
		{query: `up{job="slipway"}`, want: 1},
		{query: `slipway_promprov_test_requests_total{version="a"}`, want: 3},
		{query: `sum(slipway_promprov_test_requests_total)`, want: 7},
		{query: `scalar(sum(slipway_promprov_test_requests_total))`, want: 7},
		{query: `count(slipway_promprov_test_requests_total)`, want: 2},
		{query: `slipway_promprov_test_requests_total`, errHas: "2 series"},
		{query: `slipway_promprov_test_requests_total{version="none"}`, noData: true},
		{query: `sum(slipway_promprov_test_requests_total)`, at: before, noData: true},
		{query: `sum(slipway_promprov_test_requests_total`, errHas: "answered 400, bad_data: "},
		{query: `slipway_promprov_test_requests_total[1m]`, errHas: "range vector"},
		{query: `sum(slipway_promprov_test_requests_total) / 0`, errHas: "value is +Inf"},
	} {
		at := tc.at
		if at.IsZero() {
			at = time.Now()
		}
		got, err := p.Query(ctx, tc.query, at)
		switch {
		case tc.noData:
			if !errors.Is(err, analysis.ErrNoData) {
				t.Errorf("Query(%s at %v) = %v, %v; want ErrNoData", tc.query, at, got, err)
			}
		case tc.errHas != "":
			if err == nil || !strings.Contains(err.Error(), tc.errHas) || errors.Is(err, analysis.ErrNoData) {
				t.Errorf("Query(%s) = %v, %v; want an error with %q", tc.query, got, err, tc.errHas)
			}
		case err != nil || got != tc.want:
			t.Errorf("Query(%s) = %v, %v; want %v", tc.query, got, err, tc.want)
		}
	}

	// A rate: 100 more requests of version a, scraped, then the
	// per-second rate over a minute. Prometheus divides the increase it
	// saw (100), extrapolated outwards by at most half an average scrape
	// interval at the start and 1.1 of one at the end (so at most 2.6
	// times), by the 60 s of the range.
	requests.WithLabelValues("a").Add(100)
	waitForValue(t, p, "sum(slipway_promprov_test_requests_total)", 107)
	rate, err := p.Query(ctx, "sum(rate(slipway_promprov_test_requests_total[1m]))", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := 100.0/60, 260.0/60; rate < lo || rate > hi {
		t.Errorf("sum(rate(...[1m])) = %v, want within [%.3f, %.3f] after an increase of 100", rate, lo, hi)
	}
	byVersion, err := p.Query(ctx, `sum(rate(slipway_promprov_test_requests_total{version="b"}[1m]))`, time.Now())
	if err != nil || byVersion != 0 {
		t.Errorf(`rate of version b = %v, %v; want 0 (it never moved)`, byVersion, err)
	}
	// A ratio over no traffic is NaN, an Error; docs/analysis.md's guard
	// "/ (denominator > 0)" makes it no data instead.
	const still = `sum(rate(slipway_promprov_test_requests_total{version="b"}[1m]))`
	if v, err := p.Query(ctx, still+" / "+still, time.Now()); err == nil || !strings.Contains(err.Error(), "value is NaN") {
		t.Errorf("0/0 = %v, %v; want a NaN error", v, err)
	}
	if v, err := p.Query(ctx, still+" / ("+still+" > 0)", time.Now()); !errors.Is(err, analysis.ErrNoData) {
		t.Errorf("0/(0 > 0) = %v, %v; want ErrNoData", v, err)
	}
}

// waitForValue polls query until it returns want: Prometheus scrapes on
// its own schedule, so the test waits for the scrape instead of timing it.
func waitForValue(t *testing.T, p *Provider, query string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		v, err := p.Query(context.Background(), query, time.Time{})
		if err == nil && v == want {
			return
		}
		last = fmt.Sprintf("%v, %v", v, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never became %v within 60s; last answer %s", query, want, last)
}

// startPrometheus runs bin on a free loopback port with a temp config
// scraping target every second and temp storage; it returns its URL once
// Prometheus answers queries and stops its whole process group when the
// test ends.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	yml := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: slipway
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	addr := freeLoopbackAddr(t)
	cmd := exec.Command(bin,
		"--config.file="+config,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--storage.tsdb.retention.time=1h",
		"--web.console.templates="+dir, // Debian's defaults point at /etc/prometheus
		"--web.console.libraries="+dir,
		"--log.level=info",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so the end of the test stops all of it; and
	// killed with the test binary if that dies first.
	// Pdeathsig follows the thread that started the child, so that thread
	// stays this goroutine's until Prometheus has stopped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	showLog := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	t.Cleanup(func() {
		pgid := cmd.Process.Pid // Setpgid: the group's id is the leader's pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
			t.Errorf("prometheus did not stop within 20s of SIGTERM; killed it")
		}
		runtime.UnlockOSThread()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", showLog())
		}
	})

	url := "http://" + addr
	ready := newProvider(t, Config{URL: url, Timeout: time.Second})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("prometheus exited before it was ready: %v\n%s", err, showLog())
		default:
		}
		if _, err := ready.Query(context.Background(), "vector(1)", time.Time{}); err == nil {
			return url
		} else if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s did not answer within 60s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port nothing
// listens on now, for a server that takes its address as a flag.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
