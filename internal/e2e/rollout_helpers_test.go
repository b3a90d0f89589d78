package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

// rolloutFlags are the server flags of the rollout tests: faults may be
// injected in production, where the rollouts run.
var rolloutFlags = []string{"--fault-injection-envs", "dev,staging,production"}

// rolloutServer starts a server with rolloutFlags and extra flags, creates
// model "cancer" with the committed v1, v2 and v3, a v4 that is v1's file
// again (an A/A candidate), and deploys v1 alone in production.
func rolloutServer(t *testing.T, dataDir string, flags ...string) *server {
	t.Helper()
	srv := startServer(t, dataDir, append(slices.Clone(rolloutFlags), flags...)...)
	c := srv.admin()
	c.ok("model", "create", "cancer")
	for _, f := range []string{"v1.json", "v2.json", "v3.json", "v1.json"} {
		c.ok("version", "push", "cancer", example(t, f), "--format", "xgboost-json")
	}
	c.ok("deploy", "cancer", "1", "--env", "production")
	return srv
}

// apiDo sends one request to the control plane's API with the admin
// token and returns the status and body; a failed exchange fails the test.
func (s *server) apiDo(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// apiJSON is apiDo for a call that must answer want; the body is decoded
// into out unless out is nil.
func (s *server) apiJSON(t *testing.T, method, path string, body []byte, want int, out any) {
	t.Helper()
	code, b := s.apiDo(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s: want %d, got %d: %s", method, path, want, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %T: %v\n%s", method, path, out, err, b)
		}
	}
}

// startRollout posts a Rollout document and returns the rollout as the
// server stored it.
func (s *server) startRollout(t *testing.T, spec string) domain.Rollout {
	t.Helper()
	var r domain.Rollout
	s.apiJSON(t, http.MethodPost, "/api/v1/rollouts", []byte(spec), http.StatusCreated, &r)
	return r
}

func (s *server) rolloutStatus(t *testing.T, id int64) api.RolloutStatus {
	t.Helper()
	var st api.RolloutStatus
	s.apiJSON(t, http.MethodGet, "/api/v1/rollouts/"+strconv.FormatInt(id, 10), nil, http.StatusOK, &st)
	return st
}

func (s *server) deployment(t *testing.T, model, env string) deployment.Status {
	t.Helper()
	var d deployment.Status
	s.apiJSON(t, http.MethodGet, "/api/v1/models/"+model+"/deployments/"+env, nil, http.StatusOK, &d)
	return d
}

// awaitRollout polls rollout id until done says so, and returns it; the
// limit is a safety net, not an assertion on time.
func (s *server) awaitRollout(t *testing.T, id int64, limit time.Duration, what string, done func(domain.Rollout) bool) domain.Rollout {
	t.Helper()
	var r domain.Rollout
	poll(t, limit, what, func() (bool, string) {
		st := s.rolloutStatus(t, id)
		r = st.Rollout
		note := describeRollout(r)
		if st.Live != nil {
			v := st.Live.Verdict
			note += fmt.Sprintf("; live verdict %s on %d/%d requests (%d/%d errors): %s", v.Outcome,
				v.Candidate.Requests, v.Baseline.Requests, v.Candidate.Errors, v.Baseline.Errors, v.Reason)
		}
		return done(r), note
	})
	return r
}

// ended is an awaitRollout condition: a terminal phase, carried out.
func ended(r domain.Rollout) bool { return r.Phase.Terminal() && r.InEffect }

func describeRollout(r domain.Rollout) string {
	return fmt.Sprintf("rollout %d %s step %d traffic %d/%d shadow %v in_effect %v rev %d: %s",
		r.ID, r.Phase, r.Step, r.Traffic.Baseline, r.Traffic.Candidate, r.Traffic.ShadowPercent, r.InEffect, r.Revision, r.Reason)
}

// weights are a deployment's weights by version.
func weights(d domain.Deployment) map[int]int {
	w := map[int]int{}
	for _, v := range d.Versions {
		w[v.Version] = v.Weight
	}
	return w
}

// storedWeights are the weights a rollout's stored state asks of the
// deployment: the baseline is left out once retired, the candidate once
// the rollout ended without it.
func storedWeights(r domain.Rollout) map[int]int {
	w := map[int]int{}
	if !r.Phase.Terminal() || r.Phase == domain.RolloutSucceeded {
		w[r.Candidate] = r.Traffic.Candidate
	}
	if !r.Traffic.BaselineRetired {
		w[r.Baseline] = r.Traffic.Baseline
	}
	return w
}

// loadRecord is one request of a loadGen.
type loadRecord struct {
	start, end time.Time
	// status is 0 when the exchange itself failed.
	status   int
	version  string
	fallback string
	// bad says why the answer is a client-visible error ("" when good).
	bad string
}

// loadGen is a small closed-loop load generator: workers send Open
// Inference Protocol infer requests of single holdout rows through the
// gateway without pause and record every answer.
type loadGen struct {
	t      *testing.T
	target atomic.Pointer[string] // the gateway's address; may change on restart
	path   string
	bodies [][]byte
	hc     *http.Client
	stop   chan struct{}
	wg     sync.WaitGroup

	total, errors atomic.Int64
	mu            sync.Mutex
	recs          []loadRecord
	stopOnce      sync.Once
}

// startLoad starts workers sending to srv's gateway for model in
// production until the returned generator is stopped (at the latest when
// the test ends).
func startLoad(t *testing.T, srv *server, model string, workers int) *loadGen {
	t.Helper()
	rows := loadParity(t, "v1.json").Rows
	l := &loadGen{t: t, path: "/v2/models/" + model + "/infer", stop: make(chan struct{})}
	for i := range rows {
		l.bodies = append(l.bodies, inferBody(t, rows[i:i+1]))
	}
	addr := srv.gateway
	l.target.Store(&addr)
	tr := &http.Transport{MaxIdleConnsPerHost: workers * 2}
	l.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for w := range workers {
		l.wg.Go(func() { l.work(w) })
	}
	t.Cleanup(func() { l.halt(); tr.CloseIdleConnections() })
	return l
}

// retarget sends the next requests to another gateway address.
func (l *loadGen) retarget(addr string) { l.target.Store(&addr) }

func (l *loadGen) work(w int) {
	for i := w; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		rec := l.one(l.bodies[i%len(l.bodies)])
		l.total.Add(1)
		if rec.bad != "" {
			l.errors.Add(1)
		}
		if rec.status == 0 {
			// No server (killed, restarting): do not spin.
			time.Sleep(5 * time.Millisecond)
		}
		l.mu.Lock()
		l.recs = append(l.recs, rec)
		l.mu.Unlock()
	}
}

func (l *loadGen) one(body []byte) loadRecord {
	rec := loadRecord{start: time.Now()}
	defer func() { rec.end = time.Now() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+*l.target.Load()+l.path, bytes.NewReader(body))
	if err != nil {
		rec.bad = err.Error()
		return rec
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.hc.Do(req)
	if err != nil {
		rec.bad = err.Error()
		rec.end = time.Now()
		return rec
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	rec.end = time.Now()
	rec.status = resp.StatusCode
	rec.version = resp.Header.Get("X-Slipway-Version")
	rec.fallback = resp.Header.Get("X-Slipway-Fallback-From")
	var out inferAnswer
	switch {
	case err != nil:
		rec.bad = "reading the answer: " + err.Error()
	case resp.StatusCode != http.StatusOK:
		rec.bad = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	case json.Unmarshal(b, &out) != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 1:
		rec.bad = "a 200 that is no prediction: " + string(b)
	case out.ModelVersion != rec.version:
		rec.bad = fmt.Sprintf("model_version %q answered under X-Slipway-Version %q", out.ModelVersion, rec.version)
	}
	return rec
}

// halt stops the workers and waits for them.
func (l *loadGen) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// records returns a copy of every record so far.
func (l *loadGen) records() []loadRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// waitRequests waits until n more requests than now have been answered.
func (l *loadGen) waitRequests(n int64) {
	l.t.Helper()
	want := l.total.Load() + n
	poll(l.t, 60*time.Second, fmt.Sprintf("%d requests", want), func() (bool, string) {
		return l.total.Load() >= want, fmt.Sprintf("%d done", l.total.Load())
	})
}

// badOnes returns up to n client-visible errors of recs, described.
func badOnes(recs []loadRecord, n int) []string {
	var out []string
	for _, r := range recs {
		if r.bad != "" && len(out) < n {
			out = append(out, fmt.Sprintf("%s (+%s) version %q: %s", r.start.Format("15:04:05.000"), r.end.Sub(r.start).Round(time.Millisecond), r.version, r.bad))
		}
	}
	return out
}

// byVersion counts answers by the version that gave them.
func byVersion(recs []loadRecord) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		if r.status != 0 {
			m[r.version]++
		}
	}
	return m
}

// killableUpstream is a tiny Open Inference Protocol server on loopback
// whose kill closes its listener and every connection at once.
type killableUpstream struct {
	url string
	hs  *http.Server
}

func newKillableUpstream(t *testing.T) *killableUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/health/ready" {
			writeJSONBody(w, map[string]bool{"ready": true})
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		writeJSONBody(w, map[string]any{"model_name": "upstream", "model_version": "1", "outputs": []any{
			map[string]any{"name": "predict", "shape": []int{1}, "datatype": "FP64", "data": []float64{0.5}},
		}})
	})}
	go func() { _ = hs.Serve(ln) }()
	u := &killableUpstream{url: "http://" + ln.Addr().String(), hs: hs}
	t.Cleanup(u.kill)
	return u
}

func (u *killableUpstream) kill() { _ = u.hs.Close() }
