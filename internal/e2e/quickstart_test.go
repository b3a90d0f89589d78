package e2e

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
)

const datasetSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// TestQuickstart walks the README's path: a model, versions from a file
// and from a directory tree, aliases, lifecycle, labels, pull, verify and
// the audit trail they leave.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()

	// Models, in every output format.
	var m domain.Model
	c.json(&m, "model", "create", "fraud", "--owner", "risk-team", "--tag", "team=risk", "--tag", "tier=1",
		"--description", "card fraud scorer")
	if m.Name != "fraud" || m.Owner != "risk-team" || m.Description != "card fraud scorer" || m.CreatedBy != "admin" ||
		m.Tags["team"] != "risk" || m.Tags["tier"] != "1" || len(m.Tags) != 2 || m.CreatedAt.IsZero() {
		t.Fatalf("model create: %+v", m)
	}
	c.ok("model", "create", "churn")
	table := c.ok("model", "list")
	assertLines(t, table, "NAME", "fraud  risk-team  team=risk,tier=1", "churn")
	var models api.List[domain.Model]
	c.json(&models, "model", "list")
	if names := modelNames(models.Items); !slices.Equal(names, []string{"churn", "fraud"}) && !slices.Equal(names, []string{"fraud", "churn"}) {
		t.Fatalf("model list: %v", names)
	}
	var got domain.Model
	c.json(&got, "model", "get", "fraud")
	if !got.CreatedAt.Equal(m.CreatedAt) || got.Owner != m.Owner || len(got.Tags) != 2 {
		t.Fatalf("model get = %+v, created %+v", got, m)
	}
	var fromYAML domain.Model
	if err := yaml.UnmarshalStrict([]byte(c.ok("model", "get", "fraud", "-o", "yaml")), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if fromYAML.Name != "fraud" || fromYAML.Owner != "risk-team" || fromYAML.Tags["tier"] != "1" {
		t.Fatalf("model get -o yaml: %+v", fromYAML)
	}
	var listYAML api.List[domain.Model]
	if err := yaml.UnmarshalStrict([]byte(c.ok("model", "list", "-o", "yaml")), &listYAML); err != nil || len(listYAML.Items) != 2 {
		t.Fatalf("model list -o yaml: %+v, %v", listYAML, err)
	}
	assertLines(t, c.ok("model", "get", "fraud"), "NAME", "fraud  risk-team")

	// Version 1: one file, with every kind of metadata.
	src := t.TempDir()
	single := []byte(`{"learner":{"gradient_booster":{"name":"gbtree"}},"version":[2,0,3]}`)
	writeTree(t, src, map[string][]byte{"model.json": single})
	var v1 domain.Version
	c.json(&v1, "version", "push", "fraud", filepath.Join(src, "model.json"), "--format", "process", "--set", serveCmd,
		"--metric", "auc=0.91", "--metric", "logloss=0.25", "--label", "team=risk",
		"--commit", "abcdef1234", "--dataset", "s3://data/train.parquet", "--dataset-sha256", datasetSHA,
		"--param", "max_depth=6", "--param", "eta=0.1", "--set", "env.THREADS=2", "--framework", "xgboost==2.0.3")
	if v1.Model != "fraud" || v1.Number != 1 || v1.Format != domain.FormatProcess || v1.State != domain.StateRegistered ||
		v1.ArtifactFiles != 1 || v1.ArtifactSize != int64(len(single)) || !strings.HasPrefix(v1.ArtifactDigest, "sha256:") ||
		v1.Metrics["auc"] != 0.91 || v1.Metrics["logloss"] != 0.25 || v1.Labels["team"] != "risk" ||
		v1.RuntimeConfig["env.THREADS"] != "2" || v1.CreatedBy != "admin" {
		t.Fatalf("push of a file: %+v", v1)
	}
	wantLineage := domain.Lineage{DatasetURI: "s3://data/train.parquet", DatasetSHA256: datasetSHA, CodeCommit: "abcdef1234",
		Framework: "xgboost==2.0.3", Params: map[string]string{"max_depth": "6", "eta": "0.1"}}
	if !lineageEqual(v1.Lineage, wantLineage) {
		t.Fatalf("lineage = %+v, want %+v", v1.Lineage, wantLineage)
	}

	// Version 2: a directory tree, derived from version 1. model.json is
	// the same content as version 1's file, so its blob is shared.
	tree := map[string][]byte{
		"model.json":               single,
		"config/params.yaml":       []byte("max_depth: 6\n"),
		"config/deep/er/vocab.txt": pseudoRandom(1, 300<<10),
		"empty.bin":                {},
	}
	treeDir := filepath.Join(t.TempDir(), "artifact")
	writeTree(t, treeDir, tree)
	var v2 domain.Version
	c.json(&v2, "version", "push", "fraud", treeDir, "--format", "process", "--set", serveCmd, "--parent", "1",
		"--label", "team=risk", "--label", "stage=candidate", "--metric", "auc=0.93")
	if v2.Number != 2 || v2.ArtifactFiles != len(tree) || v2.ArtifactSize != treeSize(tree) || v2.Lineage.ParentVersion != 1 ||
		v2.ArtifactDigest == v1.ArtifactDigest {
		t.Fatalf("push of a tree: %+v", v2)
	}
	assertLines(t, c.ok("version", "get", "fraud", "2"), "artifact digest  "+v2.ArtifactDigest, "parent version   1", "labels           stage=candidate,team=risk")

	// Filters.
	assertVersions(t, c, []int{2}, "fraud", "--label", "stage=candidate")
	assertVersions(t, c, []int{1, 2}, "fraud", "--label", "team=risk")
	assertVersions(t, c, nil, "fraud", "--label", "team=risk", "--label", "stage=gone")
	assertVersions(t, c, []int{1, 2}, "fraud", "--state", "registered")
	assertVersions(t, c, nil, "fraud", "--state", "production")

	// Aliases.
	var a domain.Alias
	c.json(&a, "alias", "set", "fraud", "champion", "1", "--expect", "0")
	if a.Model != "fraud" || a.Name != "champion" || a.Version != 1 || a.UpdatedBy != "admin" {
		t.Fatalf("alias set: %+v", a)
	}
	assertVersions(t, c, []int{1}, "fraud", "--alias", "champion")
	var byAlias domain.Version
	c.json(&byAlias, "version", "get", "fraud", "@champion")
	if byAlias.Number != 1 || !slices.Equal(byAlias.Aliases, []string{"champion"}) {
		t.Fatalf("version get @champion: %+v", byAlias)
	}
	c.json(&a, "alias", "set", "fraud", "champion", "2", "--expect", "1")
	if a.Version != 2 {
		t.Fatalf("alias set --expect 1: %+v", a)
	}
	c.fail([]string{"alias", "set", "fraud", "champion", "1", "--expect", "1"}, "expected", "points at version 2")
	c.fail([]string{"alias", "set", "fraud", "champion", "1", "--expect", "0"}, "expected")
	c.json(&a, "alias", "get", "fraud", "champion")
	if a.Version != 2 {
		t.Fatalf("a refused alias move changed it: %+v", a)
	}
	c.json(&a, "alias", "set", "fraud", "challenger", "@champion")
	if a.Version != 2 {
		t.Fatalf("alias set @champion: %+v", a)
	}
	var aliases api.List[domain.Alias]
	c.json(&aliases, "alias", "list", "fraud")
	if len(aliases.Items) != 2 {
		t.Fatalf("alias list: %+v", aliases)
	}
	assertLines(t, c.ok("alias", "list", "fraud"), "MODEL", "fraud  challenger  2", "fraud  champion    2")
	if out := c.ok("alias", "rm", "fraud", "challenger"); !strings.Contains(out, "removed alias challenger") {
		t.Fatalf("alias rm: %q", out)
	}
	c.json(&aliases, "alias", "list", "fraud")
	if len(aliases.Items) != 1 || aliases.Items[0].Name != "champion" {
		t.Fatalf("alias list after rm: %+v", aliases)
	}
	c.fail([]string{"alias", "get", "fraud", "challenger"}, "not found")

	// Lifecycle.
	var v domain.Version
	c.json(&v, "version", "set-state", "fraud", "1", "staging")
	if v.State != domain.StateStaging {
		t.Fatalf("set-state staging: %+v", v)
	}
	c.json(&v, "version", "set-state", "fraud", "1", "production")
	if v.State != domain.StateProduction {
		t.Fatalf("set-state production: %+v", v)
	}
	c.fail([]string{"version", "set-state", "fraud", "1", "registered"}, "cannot move a version from production to registered")
	c.fail([]string{"version", "set-state", "fraud", "@champion", "archived"}, "alias \"champion\"")
	assertVersions(t, c, []int{1}, "fraud", "--state", "production")
	assertVersions(t, c, []int{2}, "fraud", "--state", "registered")

	// Labels.
	c.json(&v, "version", "label", "fraud", "@champion", "owner=alice", "stage-")
	if v.Labels["owner"] != "alice" || v.Labels["team"] != "risk" || len(v.Labels) != 2 {
		t.Fatalf("version label: %+v", v.Labels)
	}
	assertVersions(t, c, nil, "fraud", "--label", "stage=candidate")

	// Pull: byte-identical, verified, refusing a folder with files in it.
	pulled := filepath.Join(t.TempDir(), "pulled")
	if out := c.ok("version", "pull", "fraud", "@champion", "--dest", pulled); !strings.Contains(out, "every digest verified") {
		t.Fatalf("pull: %q", out)
	}
	assertTree(t, readTree(t, pulled), tree)
	pulled1 := filepath.Join(t.TempDir(), "pulled1")
	c.ok("version", "pull", "fraud", "1", "-d", pulled1)
	assertTree(t, readTree(t, pulled1), map[string][]byte{"model.json": single})
	c.fail([]string{"version", "pull", "fraud", "1", "--dest", pulled}, "not empty")
	assertTree(t, readTree(t, pulled), tree)

	// Verify.
	var rep registry.VerifyReport
	c.json(&rep, "version", "verify", "fraud", "2")
	if !rep.OK || rep.Version != 2 || rep.Digest != v2.ArtifactDigest || len(rep.Files) != len(tree) {
		t.Fatalf("verify: %+v", rep)
	}
	c.ok("version", "verify", "fraud", "@champion")

	// Content addressing: pushing the same artifacts again stores nothing new.
	before := blobs(t, srv.dataDir)
	want := map[string]bool{digestHex(t, v1.ArtifactDigest): true, digestHex(t, v2.ArtifactDigest): true}
	for _, b := range tree {
		want[sha256Hex(b)] = true
	}
	assertBlobs(t, before, want)
	var v3, v4 domain.Version
	c.json(&v3, "version", "push", "fraud", treeDir, "--format", "process", "--set", serveCmd)
	c.json(&v4, "version", "push", "fraud", filepath.Join(src, "model.json"), "--format", "process", "--set", serveCmd)
	if v3.Number != 3 || v3.ArtifactDigest != v2.ArtifactDigest || v4.Number != 4 || v4.ArtifactDigest != v1.ArtifactDigest {
		t.Fatalf("re-push: v3 %+v, v4 %+v", v3, v4)
	}
	assertBlobs(t, blobs(t, srv.dataDir), want)

	// The audit trail, in order.
	var entries api.List[audit.Entry]
	c.json(&entries, "audit", "list", "--subject", "model/fraud")
	wantActions := []string{
		"model.create fraud",
		"version.create fraud/version/1", "version.create fraud/version/2",
		"alias.set fraud/alias/champion", "alias.set fraud/alias/champion",
		"alias.set fraud/alias/challenger", "alias.delete fraud/alias/challenger",
		"version.state fraud/version/1", "version.state fraud/version/1",
		"version.labels fraud/version/2",
		"version.create fraud/version/3", "version.create fraud/version/4",
	}
	var gotActions []string
	for i, e := range entries.Items {
		gotActions = append(gotActions, e.Action+" "+strings.TrimPrefix(e.Subject, "model/"))
		if e.Actor != "admin" || (i > 0 && e.Seq <= entries.Items[i-1].Seq) {
			t.Errorf("audit entry %+v", e)
		}
	}
	if !slices.Equal(gotActions, wantActions) {
		t.Fatalf("audit list --subject model/fraud:\n got %q\nwant %q", gotActions, wantActions)
	}
	c.json(&entries, "audit", "list", "--subject", "model/fraud/alias/champion")
	if len(entries.Items) != 2 {
		t.Fatalf("audit list of one alias: %+v", entries.Items)
	}
	var all api.List[audit.Entry]
	c.json(&all, "audit", "list")
	var verified audit.Report
	c.json(&verified, "audit", "verify")
	if !verified.OK || verified.Entries != int64(len(all.Items)) || verified.Head != all.Items[len(all.Items)-1].Hash {
		t.Fatalf("audit verify: %+v (log has %d entries)", verified, len(all.Items))
	}
	if out := c.ok("audit", "verify"); !strings.Contains(out, "audit log intact") {
		t.Fatalf("audit verify: %q", out)
	}
}

// assertVersions lists a model's versions with filter flags and compares
// the version numbers.
func assertVersions(t *testing.T, c *cli, want []int, model string, filter ...string) {
	t.Helper()
	var l api.List[domain.Version]
	c.json(&l, append([]string{"version", "list", model}, filter...)...)
	var got []int
	for _, v := range l.Items {
		got = append(got, v.Number)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("version list %s %v = %v, want %v", model, filter, got, want)
	}
}

// assertLines checks that a table has a line starting with each of wants,
// after collapsing runs of spaces in both.
func assertLines(t *testing.T, table string, wants ...string) {
	t.Helper()
	var lines []string
	for l := range strings.Lines(table) {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, w := range wants {
		w = strings.Join(strings.Fields(w), " ")
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("no line starts with %q in:\n%s", w, table)
		}
	}
}

func assertTree(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("tree has %d files %v, want %d", len(got), keys(got), len(want))
	}
	for p, b := range want {
		g, ok := got[p]
		if !ok {
			t.Fatalf("file %s missing (have %v)", p, keys(got))
		}
		if string(g) != string(b) {
			t.Fatalf("file %s differs: %d bytes, want %d", p, len(g), len(b))
		}
	}
}

func assertBlobs(t *testing.T, got, want map[string]bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("data dir holds %d blobs, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for h := range want {
		if !got[h] {
			t.Fatalf("blob %s is missing; have %v", h, got)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func digestHex(t *testing.T, digest string) string {
	t.Helper()
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !domain.IsHexSHA256(h) {
		t.Fatalf("digest %q is not sha256:<hex>", digest)
	}
	return h
}

func treeSize(tree map[string][]byte) int64 {
	var n int64
	for _, b := range tree {
		n += int64(len(b))
	}
	return n
}

func modelNames(ms []domain.Model) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func lineageEqual(a, b domain.Lineage) bool {
	return a.DatasetURI == b.DatasetURI && a.DatasetSHA256 == b.DatasetSHA256 && a.CodeCommit == b.CodeCommit &&
		a.Framework == b.Framework && a.ParentVersion == b.ParentVersion && maps.Equal(a.Params, b.Params) &&
		maps.Equal(a.Dependencies, b.Dependencies)
}
