package e2e

import (
	"bufio"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
)

// TestVerifyDetectsCorruption changes stored blob bytes behind the
// server's back: verify must fail and name each damaged file, and pull
// must refuse to hand the damage out.
func TestVerifyDetectsCorruption(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "fraud")
	tree := map[string][]byte{
		"model.json":       []byte(`{"learner":{"gradient_booster":{}}}`),
		"sub/weights.bin":  pseudoRandom(2, 64<<10),
		"sub/deep/vocab.t": []byte("alpha\nbeta\ngamma\n"),
	}
	dir := filepath.Join(t.TempDir(), "artifact")
	writeTree(t, dir, tree)
	c.ok("version", "push", "fraud", dir, "--format", "process", "--set", serveCmd)
	c.ok("version", "verify", "fraud", "1")

	// Same length, one bit flipped: only a re-hash can tell.
	flipped := append([]byte(nil), tree["sub/weights.bin"]...)
	flipped[len(flipped)/2] ^= 0x01
	overwrite(t, blobPath(srv.dataDir, sha256Hex(tree["sub/weights.bin"])), flipped)
	r := c.run("version", "verify", "fraud", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "stored artifact does not match its digest") {
		t.Fatalf("verify after a flipped bit:\n%s", r)
	}
	assertLines(t, r.stdout, "PATH OK ERROR", "model.json true", "sub/deep/vocab.t true", "sub/weights.bin false blob sha256:"+sha256Hex(tree["sub/weights.bin"])+" is corrupt")

	// Shorter: caught by size before hashing.
	overwrite(t, blobPath(srv.dataDir, sha256Hex(tree["model.json"])), tree["model.json"][:10])
	r = c.run("version", "verify", "fraud", "1", "-o", "json")
	if r.code != 1 {
		t.Fatalf("verify -o json after truncation:\n%s", r)
	}
	var rep registry.VerifyReport
	decodeStrict(t, r.stdout, &rep)
	bad := map[string]string{}
	for _, f := range rep.Files {
		if !f.OK {
			bad[f.Path] = f.Error
		}
	}
	if rep.OK || len(rep.Files) != 3 || len(bad) != 2 || !strings.Contains(bad["model.json"], "stored blob has 10 bytes") ||
		!strings.Contains(bad["sub/weights.bin"], "corrupt") {
		t.Fatalf("verify report: %+v", rep)
	}

	// Pull checks every byte too, and leaves no damaged file under its name.
	dest := filepath.Join(t.TempDir(), "pulled")
	c.fail([]string{"version", "pull", "fraud", "1", "--dest", dest}, `artifact path "model.json"`, "manifest says 35")
	for p := range readTree(t, dest) {
		if p == "model.json" || p == "sub/weights.bin" {
			t.Errorf("pull left damaged file %s", p)
		}
	}
	c.ok("audit", "verify")
}

// TestCrashDuringUpload kills the server with SIGKILL while a large file
// streams in. The push fails, the restarted server shows no trace of it
// (no version, no leftover upload, no blob) and an intact audit log, and
// the same push then succeeds.
//
// The interrupted push goes through a proxy that lets only the first
// crashGate bytes through, so the upload is certainly unfinished when the
// server dies, whatever the machine's speed.
func TestCrashDuringUpload(t *testing.T) {
	t.Parallel()
	const size, crashGate = 256 << 20, 32 << 20
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	srv.admin().ok("model", "create", "big")
	path := filepath.Join(t.TempDir(), "weights.bin")
	digest := writeRandomFile(t, path, size)

	gated := srv.clientAt(startGatedProxy(t, srv.addr, crashGate), srv.token)
	push := gated.start("version", "push", "big", path, "--format", "process", "--set", serveCmd)
	waitForUpload(t, filepath.Join(dataDir, "artifacts", "tmp"), push)
	srv.kill()
	if r := push.wait(); r.code != 1 || !strings.Contains(r.stderr, `uploading "weights.bin"`) {
		t.Fatalf("push to a killed server:\n%s", r)
	}

	srv = startServer(t, dataDir)
	c := srv.admin()
	var versions api.List[domain.Version]
	c.json(&versions, "version", "list", "big")
	if len(versions.Items) != 0 {
		t.Fatalf("a version exists after the crash: %+v", versions.Items)
	}
	if left, err := os.ReadDir(filepath.Join(dataDir, "artifacts", "tmp")); err != nil || len(left) != 0 {
		t.Fatalf("upload folder after restart: %v, %v", left, err)
	}
	if _, err := os.Stat(blobPath(dataDir, digest)); !os.IsNotExist(err) {
		t.Fatalf("blob of the interrupted upload: %v", err)
	}
	var rep audit.Report
	c.json(&rep, "audit", "verify")
	if !rep.OK || rep.Entries != 2 {
		t.Fatalf("audit after the crash: %+v", rep)
	}

	var v domain.Version
	c.json(&v, "version", "push", "big", path, "--format", "process", "--set", serveCmd)
	if v.Number != 1 || v.ArtifactSize != size {
		t.Fatalf("push after restart: %+v", v)
	}
	if fi, err := os.Stat(blobPath(dataDir, digest)); err != nil || fi.Size() != size {
		t.Fatalf("blob after the complete push: %v, %v", fi, err)
	}
	c.ok("version", "verify", "big", "1")
	c.ok("audit", "verify")
}

// writeRandomFile writes n pseudo-random bytes to path and returns their
// sha256 in hex.
func writeRandomFile(t *testing.T, path string, n int) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(n))
	rng := rand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 4<<20)
	w := bufio.NewWriterSize(f, len(buf))
	for left := n; left > 0; left -= len(buf) {
		chunk := buf[:min(left, len(buf))]
		_, _ = rng.Read(chunk)
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// waitForUpload polls the server's upload folder until a file in it holds
// some bytes. The push must still be running: if it ended first, the test
// cannot crash the server mid-upload and says so.
func waitForUpload(t *testing.T, tmpDir string, push *background) {
	t.Helper()
	for {
		entries, err := os.ReadDir(tmpDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Size() > 0 {
				return
			}
		}
		if push.exited() {
			t.Fatalf("push ended before an upload showed in %s:\n%s", tmpDir, push.wait())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestGracefulShutdown stops the server with SIGTERM: it exits 0 after
// logging that it stopped, and a restart on the same data dir serves the
// same state with the same admin token.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	c := srv.admin()
	c.ok("model", "create", "fraud", "--owner", "risk")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"model.json": []byte(`{"learner":{}}`)})
	c.ok("version", "push", "fraud", filepath.Join(src, "model.json"), "--format", "process", "--set", serveCmd)
	c.ok("alias", "set", "fraud", "champion", "1")
	var before audit.Report
	c.json(&before, "audit", "verify")

	if code := srv.stop(); code != 0 {
		t.Fatalf("server exited %d after SIGTERM:\n%s", code, srv.log)
	}
	msgs := logMessages(srv.log)
	if len(msgs) < 2 || msgs[len(msgs)-1] != "stopped" || msgs[len(msgs)-2] != "shutting down: finishing in-flight requests" {
		t.Fatalf("last log messages: %q", msgs[max(0, len(msgs)-3):])
	}
	if _, err := os.Stat(filepath.Join(dataDir, "admin.token")); err != nil {
		t.Fatal(err)
	}

	again := startServer(t, dataDir)
	if again.token != srv.token {
		t.Fatal("the admin token changed across a restart")
	}
	for _, m := range logMessages(again.log) {
		if strings.Contains(m, "admin token") {
			t.Fatalf("a restart minted a new admin token: %q", m)
		}
	}
	c = again.admin()
	var m domain.Model
	c.json(&m, "model", "get", "fraud")
	if m.Owner != "risk" {
		t.Fatalf("model after restart: %+v", m)
	}
	var v domain.Version
	c.json(&v, "version", "get", "fraud", "@champion")
	if v.Number != 1 {
		t.Fatalf("alias after restart: %+v", v)
	}
	c.ok("version", "verify", "fraud", "1")
	var after audit.Report
	c.json(&after, "audit", "verify")
	if !after.OK || after.Entries != before.Entries || after.Head != before.Head {
		t.Fatalf("audit before stop %+v, after restart %+v", before, after)
	}
	if code := again.stop(); code != 0 {
		t.Fatalf("second server exited %d", code)
	}
}

func logMessages(l *logBuffer) []string {
	var out []string
	for _, r := range l.records() {
		out = append(out, r.Msg)
	}
	return out
}

// TestAuditTamperDetected edits one audit row directly in the SQLite file
// while the server is down, dropping the append-only trigger the way a
// deliberate attacker would and putting it back; the restarted server's
// verify names that entry.
func TestAuditTamperDetected(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	c := srv.admin()
	c.ok("model", "create", "fraud")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"model.json": []byte(`{"learner":{}}`)})
	c.ok("version", "push", "fraud", filepath.Join(src, "model.json"), "--format", "process", "--set", serveCmd)
	c.ok("alias", "set", "fraud", "champion", "1")
	var rep audit.Report
	c.json(&rep, "audit", "verify")
	if !rep.OK || rep.Entries != 4 {
		t.Fatalf("audit before tampering: %+v", rep)
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("server exited %d", code)
	}

	tamper(t, filepath.Join(dataDir, "slipway.db"))

	srv = startServer(t, dataDir)
	c = srv.admin()
	var entries api.List[audit.Entry]
	c.json(&entries, "audit", "list")
	if len(entries.Items) != 4 || entries.Items[1].Seq != 2 || entries.Items[1].Actor != "mallory" {
		t.Fatalf("audit list after tampering: %+v", entries.Items)
	}
	c.fail([]string{"audit", "verify"}, "audit log broken at entry 2", "edited")
	r := c.run("audit", "verify", "-o", "json")
	if r.code != 1 {
		t.Fatalf("audit verify -o json:\n%s", r)
	}
	decodeStrict(t, r.stdout, &rep)
	if rep.OK || rep.FirstBadIndex != 2 {
		t.Fatalf("audit verify report: %+v", rep)
	}
}

// tamper rewrites the actor of audit entry 2.
func tamper(t *testing.T, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	var actor, trigger string
	if err := db.QueryRowContext(ctx, `SELECT actor FROM audit_entries WHERE seq = 2`).Scan(&actor); err != nil || actor != "admin" {
		t.Fatalf("audit entry 2 before tampering: actor %q, %v", actor, err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2`); err == nil ||
		!strings.Contains(err.Error(), "append-only") {
		t.Fatalf("an UPDATE with the trigger in place: %v", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_entries_no_update'`).Scan(&trigger); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TRIGGER audit_entries_no_update`,
		`UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2`,
		trigger,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.QueryRowContext(ctx, `SELECT actor FROM audit_entries WHERE seq = 2`).Scan(&actor); err != nil || actor != "mallory" {
		t.Fatalf("audit entry 2 after tampering: actor %q, %v", actor, err)
	}
}

// overwrite replaces a file's content in place.
func overwrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
