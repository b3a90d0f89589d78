package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// A rollout judged by a Prometheus rule, end to end: a real Prometheus
// scrapes the real server's /metrics, the controller asks it
// (--prometheus-url) for the candidate's server errors, and a candidate
// whose injected 500s show up there is rolled back on that rule, while
// the same rule lets a healthy candidate through.
func TestRolloutPrometheusRule(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("the prometheus binary is not on PATH (%v): `make test` installs it (Debian package prometheus)", err)
	}
	promAddr := freeAddr(t)
	srv := rolloutServer(t, t.TempDir(), "--prometheus-url", "http://"+promAddr, "--prometheus-scrape-interval", "1s")
	startPrometheusAt(t, bin, promAddr, srv.addr)
	// Prometheus finds its targets a few seconds after it is ready; the
	// rollouts begin once it has scraped slipway.
	waitPrometheus(t, promAddr, `up{job="slipway"} == 1`)
	load := startLoad(t, srv, "cancer", 3)
	defer load.halt()

	spec := func(cand int) string {
		return fmt.Sprintf(`kind: Rollout
model: cancer
environment: production
candidate: "%d"
strategy:
  canary:
    steps:
      - weight: 50
analysis:
  minSamples: 50
  rules:
    - prometheus:
        query: 'sum(slipway_gateway_requests_total{model="cancer",version="%d",code=~"5.."}) or vector(0)'
        max: 0
progressDeadline: 1m
`, cand, cand)
	}
	// Healthy: no server error of v3's ever reaches Prometheus.
	r := srv.startRollout(t, spec(3))
	r = srv.awaitRollout(t, r.ID, 90*time.Second, "the healthy rollout to end", ended)
	if r.Phase != domain.RolloutSucceeded {
		t.Fatalf("the healthy candidate ended %s", describeRollout(r))
	}
	pass := r.Verdicts[len(r.Verdicts)-1]
	if len(pass.Evidence) != 1 || pass.Evidence[0].Rule != "prometheus max" || pass.Evidence[0].Outcome != domain.AnalysisPass {
		t.Errorf("the pass rests on %+v", pass.Evidence)
	}

	// Faulty: v2 answers 500 to half its requests; Prometheus sees them
	// at its next scrape and the controller at its next query.
	c := srv.admin().in(t)
	c.ok("traffic", "set", "cancer", "3=100", "2=0", "--stable", "3", "--env", "production")
	c.ok("deployment", "set-fault", "cancer", "--env", "production", "--version", "2", "--abort-percent", "50", "--abort-status", "500")
	r = srv.startRollout(t, spec(2))
	r = srv.awaitRollout(t, r.ID, 90*time.Second, "the faulty rollout to end", ended)
	if r.Phase != domain.RolloutRolledBack {
		t.Fatalf("the faulty candidate ended %s", describeRollout(r))
	}
	fail := r.Verdicts[len(r.Verdicts)-1]
	found := false
	for _, e := range fail.Evidence {
		found = found || e.Rule == "prometheus max" && e.Outcome == domain.AnalysisFail
	}
	if !found {
		t.Errorf("rolled back, but not on the Prometheus rule: %s %+v", r.Reason, fail.Evidence)
	}
	t.Logf("rolled back: %s", r.Reason)
}

// freeAddr is a loopback address with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPrometheusAt runs Prometheus on addr scraping target's /metrics
// every second, waits until it answers, and stops it when the test ends.
func startPrometheusAt(t *testing.T, bin, addr, target string) {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	yml := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: slipway\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.console.templates="+dir, "--web.console.libraries="+dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	deadline := time.Now().Add(startDeadline)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("prometheus exited before it was ready:\n%s", strings.TrimSpace(string(b)))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus on %s was not ready within %s", addr, startDeadline)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// waitPrometheus polls Prometheus until query has a result.
func waitPrometheus(t *testing.T, addr, query string) {
	t.Helper()
	deadline := time.Now().Add(startDeadline)
	for {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
		if err == nil {
			var out struct {
				Data struct {
					Result []json.RawMessage `json:"result"`
				} `json:"data"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err == nil && len(out.Data.Result) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never answered %s within %s (last error %v)", query, startDeadline, err)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}
