package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slipwayBin is the binary under test, built once by TestMain.
var slipwayBin string

// Safety nets, not assertions: a server that never comes up or a command
// that hangs fails the test instead of stalling the whole run.
const (
	startDeadline   = 60 * time.Second
	stopDeadline    = 60 * time.Second
	commandDeadline = 3 * time.Minute
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "slipway-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if slipwayBin, err = buildSlipway(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// buildSlipway builds ./cmd/slipway of the module this package lives in.
// It is built without -race even when the tests run with it: on a loaded
// two-core machine a race-enabled binary took over a second per CLI call
// (a plain one well under 0.1 s), which across a hundred calls per test
// blows the suite's budget. The server's races are the unit tests' job.
func buildSlipway(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the slipway module")
	}
	bin := filepath.Join(dir, "slipway")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/slipway")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/slipway: %w\n%s", err, out)
	}
	return bin, nil
}

// baseEnv is the test's environment without any SLIPWAY_ variable, so a
// developer's own settings never leak into a test.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLIPWAY_") {
			env = append(env, kv)
		}
	}
	return env
}

// server is one running `slipway server` process.
type server struct {
	t       *testing.T
	dataDir string
	addr    string
	// gateway is the inference gateway's address.
	gateway string
	// token is the first admin token, read from <data-dir>/admin.token.
	token  string
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan struct{}
}

// startServer starts a server on a loopback port the kernel picks (the
// server logs the address it bound, so no port is guessed and raced for),
// waits for it to log that it listens and for /readyz to answer 200, and
// kills it when the test ends. flags are added to the server's command
// line.
func startServer(t *testing.T, dataDir string, flags ...string) *server {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	s := &server{t: t, dataDir: dataDir, log: newLogBuffer(), exited: make(chan struct{})}
	s.cmd = exec.Command(slipwayBin, append([]string{"server", "--addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0", "--data-dir", dataDir, "--shutdown-timeout", "20s"}, flags...)...)
	s.cmd.Env = baseEnv()
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting slipway server: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if s.running() {
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("log of the server on %s (last %d lines):\n%s", dataDir, logTail, s.log.tail(logTail))
		}
	})

	deadline := time.NewTimer(startDeadline)
	defer deadline.Stop()
	select {
	case rec := <-s.log.listening:
		s.addr, s.gateway = rec.Addr, rec.GatewayAddr
	case <-s.exited:
		t.Fatalf("slipway server exited before listening (code %d):\n%s", s.cmd.ProcessState.ExitCode(), s.log)
	case <-deadline.C:
		t.Fatalf("slipway server did not log that it listens within %s:\n%s", startDeadline, s.log)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("reading the admin token: %v", err)
	}
	s.token = strings.TrimSpace(string(tok))
	s.waitReady(deadline.C)
	return s
}

// waitReady polls /readyz with a growing pause until it answers 200.
func (s *server) waitReady(deadline <-chan time.Time) {
	s.t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	pause := 5 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(s.t.Context(), http.MethodGet, "http://"+s.addr+"/readyz", nil)
		if err != nil {
			s.t.Fatal(err)
		}
		var last string
		if resp, err := hc.Do(req); err != nil {
			last = err.Error()
		} else {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		}
		select {
		case <-s.exited:
			s.t.Fatalf("slipway server exited while starting (code %d):\n%s", s.cmd.ProcessState.ExitCode(), s.log)
		case <-deadline:
			s.t.Fatalf("slipway server on %s never became ready (last answer: %s):\n%s", s.addr, last, s.log)
		case <-time.After(pause):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

func (s *server) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and returns the exit code once the server is gone.
func (s *server) stop() int {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	return s.wait()
}

// kill sends SIGKILL: the server gets no chance to clean up.
func (s *server) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		s.t.Fatalf("SIGKILL: %v", err)
	}
	s.wait()
}

func (s *server) wait() int {
	s.t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(stopDeadline):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Fatalf("slipway server did not exit within %s:\n%s", stopDeadline, s.log)
		return -1
	}
}

// logBuffer collects a server's output and spots the JSON line saying it
// listens.
type logBuffer struct {
	mu        sync.Mutex
	all       bytes.Buffer
	partial   []byte
	listening chan logRecord
	announced bool
}

func newLogBuffer() *logBuffer { return &logBuffer{listening: make(chan logRecord, 1)} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var rec logRecord
		if json.Unmarshal(l.partial[:i], &rec) == nil && rec.Msg == "slipway server listening" && !l.announced {
			l.announced = true
			l.listening <- rec
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// logTail is how many server log lines a failed test shows.
const logTail = 40

// tail returns the last n lines of the log.
func (l *logBuffer) tail(n int) string {
	lines := strings.SplitAfter(l.String(), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// waitFor reports whether every one of wants shows up in the log within
// a generous bound: the server writes a request's access-log line after
// the answer left, so a client may read the answer first.
func (l *logBuffer) waitFor(wants ...string) bool {
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, all := l.String(), true
		for _, w := range wants {
			all = all && strings.Contains(s, w)
		}
		if all || time.Now().After(deadline) {
			return all
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

type logRecord struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Addr  string `json:"addr"`
	// GatewayAddr is in the "listening" line.
	GatewayAddr string `json:"gateway_addr"`
}

// records returns every JSON log line; other lines are skipped.
func (l *logBuffer) records() []logRecord {
	var out []logRecord
	for line := range strings.Lines(l.String()) {
		var rec logRecord
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// cli runs the slipway binary as a client of one server with one token.
type cli struct {
	t   *testing.T
	env []string
	// dir is the working directory: an empty folder, so the CLI never
	// finds a ./.slipway/admin.token of its own.
	dir string
}

// client returns a CLI that talks to s with token ("" for none).
func (s *server) client(token string) *cli { return s.clientAt(s.addr, token) }

// clientAt returns a CLI that reaches s through addr, a proxy in front of it.
func (s *server) clientAt(addr, token string) *cli {
	env := []string{"SLIPWAY_ADDR=" + addr}
	if token != "" {
		env = append(env, "SLIPWAY_TOKEN="+token)
	}
	return &cli{t: s.t, env: env, dir: s.t.TempDir()}
}

// admin returns a CLI holding the first admin token.
func (s *server) admin() *cli { return s.client(s.token) }

// in returns the same CLI reporting to t, for use in a subtest.
func (c *cli) in(t *testing.T) *cli { return &cli{t: t, env: c.env, dir: c.dir} }

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func (c *cli) command(ctx context.Context, args []string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, slipwayBin, args...)
	cmd.Env = append(baseEnv(), c.env...)
	cmd.Dir = c.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// run runs one command to its end.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), commandDeadline)
	defer cancel()
	cmd, stdout, stderr := c.command(ctx, args)
	err := cmd.Run()
	return c.result(args, err, stdout, stderr)
}

func (c *cli) result(args []string, err error, stdout, stderr *bytes.Buffer) result {
	c.t.Helper()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		c.t.Fatalf("slipway %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	return r
}

// background is a command started with start and not yet waited for.
type background struct {
	c      *cli
	args   []string
	cmd    *exec.Cmd
	stdout *bytes.Buffer
	stderr *bytes.Buffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// start starts a command and returns without waiting for it; the test's
// cleanup kills it if nobody waited.
func (c *cli) start(args ...string) *background {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandDeadline)
	b := &background{c: c, args: args, cancel: cancel, done: make(chan struct{})}
	b.cmd, b.stdout, b.stderr = c.command(ctx, args)
	if err := b.cmd.Start(); err != nil {
		cancel()
		c.t.Fatalf("slipway %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	c.t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

// exited reports whether the command has ended.
func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// wait waits for the command to end and returns its result.
func (b *background) wait() result {
	b.c.t.Helper()
	<-b.done
	b.cancel()
	return b.c.result(b.args, b.err, b.stdout, b.stderr)
}

// ok runs a command that must succeed and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("slipway %s: want exit 0, got %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// fail runs a command that must fail with exit code 1 and an "error:" line
// on stderr that contains every one of wants.
func (c *cli) fail(args []string, wants ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 1 {
		c.t.Fatalf("slipway %s: want exit 1, got %s", strings.Join(args, " "), r)
	}
	if !strings.Contains(r.stderr, "error: ") {
		c.t.Errorf("slipway %s: stderr has no \"error: \" line:\n%s", strings.Join(args, " "), r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			c.t.Errorf("slipway %s: stderr does not mention %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	return r
}

// json runs a command with -o json that must succeed and decodes its
// output into out, refusing fields out does not know.
func (c *cli) json(out any, args ...string) {
	c.t.Helper()
	stdout := c.ok(append(args, "-o", "json")...)
	decodeStrict(c.t, stdout, out)
}

func decodeStrict(t *testing.T, s string, out any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("decoding %T: %v\n%s", out, err, s)
	}
	if dec.More() {
		t.Fatalf("decoding %T: more than one JSON value:\n%s", out, s)
	}
}

// writeTree creates files (slash paths relative to dir) with their parents.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree returns every regular file under dir by slash path; anything
// else (a symlink, a leftover partial file's special mode) fails the test.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// blobs returns the hex names of every blob stored under a data dir.
func blobs(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dataDir, "artifacts", "blobs", "sha256", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range paths {
		out[filepath.Base(p)] = true
	}
	return out
}

// blobPath is where the local artifact store keeps the blob of hexsum.
func blobPath(dataDir, hexsum string) string {
	return filepath.Join(dataDir, "artifacts", "blobs", "sha256", hexsum[:2], hexsum)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pseudoRandom returns n reproducible bytes that do not compress.
func pseudoRandom(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// serveCmd is the runtime option of the process versions the tests push:
// valid at push (the server never runs it here, nothing is deployed).
const serveCmd = "command=model-server --port {port} --dir {artifact_dir}"
