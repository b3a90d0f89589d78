package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
)

// snapshot is what a refused command must leave as it was. Every mutation
// appends to the audit log in its own transaction, so the log's length and
// head stand for the models, aliases and tokens too.
type snapshot struct {
	versions, audit int
	auditHead       string
	blobs           int
}

func takeSnapshot(t *testing.T, srv *server, c *cli) snapshot {
	t.Helper()
	var s snapshot
	var vs api.List[domain.Version]
	c.json(&vs, "version", "list", "fraud")
	s.versions = len(vs.Items)
	var es api.List[audit.Entry]
	c.json(&es, "audit", "list")
	s.audit = len(es.Items)
	s.auditHead = es.Items[len(es.Items)-1].Hash
	s.blobs = len(blobs(t, srv.dataDir))
	return s
}

// TestBadInputLeavesStateUnchanged runs commands that must be refused and
// checks each one's message and that nothing changed: no model, version,
// alias, audit entry or stored blob appeared.
func TestBadInputLeavesStateUnchanged(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "fraud")
	src := t.TempDir()
	file := filepath.Join(src, "model.json")
	writeTree(t, src, map[string][]byte{"model.json": []byte(`{"learner":{}}`)})
	c.ok("version", "push", "fraud", file, "--format", "process", "--set", serveCmd)
	c.ok("alias", "set", "fraud", "champion", "1")

	// A directory whose symlink points outside it.
	outside := filepath.Join(t.TempDir(), "secret.txt")
	writeTree(t, filepath.Dir(outside), map[string][]byte{"secret.txt": []byte("not part of the model")})
	escaping := filepath.Join(t.TempDir(), "artifact")
	writeTree(t, escaping, map[string][]byte{"model.json": []byte(`{"learner":{}}`), "sub/ok.txt": []byte("ok")})
	if err := os.Symlink(outside, filepath.Join(escaping, "sub", "leak.txt")); err != nil {
		t.Fatal(err)
	}
	// A directory whose symlink points at a folder inside it.
	dirLink := filepath.Join(t.TempDir(), "artifact")
	writeTree(t, dirLink, map[string][]byte{"model.json": []byte(`{"learner":{}}`), "sub/ok.txt": []byte("ok")})
	if err := os.Symlink("sub", filepath.Join(dirLink, "alsosub")); err != nil {
		t.Fatal(err)
	}
	push := func(extra ...string) []string {
		return append([]string{"version", "push", "fraud", file, "--format", "process", "--set", serveCmd}, extra...)
	}

	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"invalid model name", []string{"model", "create", "Fraud Model"}, []string{`model name "Fraud Model" must match`}},
		{"name too long", []string{"model", "create", strings.Repeat("a", 64)}, []string{"must match"}},
		{"duplicate model", []string{"model", "create", "fraud"}, []string{`model "fraud" already exists`}},
		{"bad tag", []string{"model", "create", "churn", "--tag", "team"}, []string{`--tag "team" must be key=value`}},
		{"unknown model", []string{"model", "get", "nope"}, []string{`model "nope"`, "not found"}},
		{"versions of unknown model", []string{"version", "list", "nope"}, []string{`model "nope"`, "not found"}},
		{"unknown version", []string{"version", "get", "fraud", "7"}, []string{"version 7", "not found"}},
		{"unknown alias ref", []string{"version", "get", "fraud", "@nope"}, []string{`alias "nope"`, "not found"}},
		{"unknown alias", []string{"alias", "get", "fraud", "nope"}, []string{`alias "nope"`, "not found"}},
		{"alias to unknown version", []string{"alias", "set", "fraud", "champion", "7"}, []string{"version 7", "not found"}},
		{"alias rm unknown", []string{"alias", "rm", "fraud", "nope"}, []string{`alias "nope"`, "not found"}},
		{"alias rm wrong expect", []string{"alias", "rm", "fraud", "champion", "--expect", "2"}, []string{"expected 2"}},
		{"negative expect", []string{"alias", "set", "fraud", "champion", "1", "--expect", "-1"}, []string{"--expect"}},
		{"unknown format", push("--format", "bogus"), []string{`format "bogus" is not one of`}},
		{"missing path", []string{"version", "push", "fraud", "--format", "process", "--set", serveCmd}, []string{"has no artifact"}},
		{"xgboost without a path", []string{"version", "push", "fraud", "--format", "xgboost-json"}, []string{"needs an artifact"}},
		{"xgboost model that is not XGBoost", []string{"version", "push", "fraud", file, "--format", "xgboost-json"}, []string{"version cannot run", "model file"}},
		{"process without a port", []string{"version", "push", "fraud", file, "--format", "process", "--set", "command=serve"}, []string{"{port}"}},
		{"external url to cloud metadata", []string{"version", "push", "fraud", "--format", "external", "--set", "url=http://169.254.169.254/", "--set", "protocol=oip-v2"}, []string{"169.254.169.254"}},
		{"unknown runtime option", []string{"version", "push", "fraud", file, "--format", "process", "--set", serveCmd, "--set", "colour=red"}, []string{"colour"}},
		{"metric not a number", push("--metric", "x=notanumber"), []string{`"notanumber" is not a number`}},
		{"metric infinite", push("--metric", "x=Inf"), []string{"finite"}},
		{"metric NaN", push("--metric", "x=NaN"), []string{"finite"}},
		{"bad dataset sha", push("--dataset", "s3://d", "--dataset-sha256", "abc"), []string{"64 lower-case hex"}},
		{"dataset sha without uri", push("--dataset-sha256", datasetSHA), []string{"without a dataset URI"}},
		{"bad commit", push("--commit", "not-hex"), []string{"code commit"}},
		{"unknown parent", push("--parent", "9"), []string{"parent version 9", "not found"}},
		{"push to unknown model", []string{"version", "push", "nope", file, "--format", "process", "--set", serveCmd}, []string{`model "nope"`, "not found"}},
		{"nonexistent path", []string{"version", "push", "fraud", filepath.Join(src, "missing.json"), "--format", "process", "--set", serveCmd},
			[]string{filepath.Join(src, "missing.json"), "no such file"}},
		{"symlink out of the artifact", []string{"version", "push", "fraud", escaping, "--format", "process", "--set", serveCmd},
			[]string{`"sub/leak.txt"`, "outside the artifact"}},
		{"symlink to a directory", []string{"version", "push", "fraud", dirLink, "--format", "process", "--set", serveCmd},
			[]string{`"alsosub"`}},
		{"illegal state", []string{"version", "set-state", "fraud", "1", "retired"}, []string{`state "retired" is not one of`}},
		{"illegal transition", []string{"version", "set-state", "fraud", "1", "archived"}, []string{`alias "champion"`}},
		{"bad label argument", []string{"version", "label", "fraud", "1", "=x"}, []string{"must be key=value"}},
		{"bad output format", []string{"model", "create", "churn", "-o", "bogus"}, []string{`output format "bogus"`}},
		{"bad output format on push", push("-o", "xml"), []string{`output format "xml"`}},
		{"bad role", []string{"token", "create", "--name", "x", "--role", "root"}, []string{`role "root" is not one of`}},
	}
	before := takeSnapshot(t, srv, c)
	if before.versions != 1 || before.audit != 4 {
		t.Fatalf("setup: %+v", before)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			c.fail(tc.args, tc.wants...)
			if after := takeSnapshot(t, srv, c); after != before {
				t.Fatalf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	var ms api.List[domain.Model]
	c.json(&ms, "model", "list")
	var as api.List[domain.Alias]
	c.json(&as, "alias", "list", "fraud")
	var v domain.Version
	c.json(&v, "version", "get", "fraud", "1")
	if len(ms.Items) != 1 || len(as.Items) != 1 || as.Items[0].Version != 1 || v.State != domain.StateRegistered || len(v.Labels) != 0 {
		t.Fatalf("state changed: models %+v, aliases %+v, version 1 %+v", ms.Items, as.Items, v)
	}
	c.ok("audit", "verify")
}
