package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

const breastCancer = "../../examples/breast-cancer/"

// sklearnReference is examples/breast-cancer/evaluation.json: metrics
// computed once by evaluate.py with Debian's python3-sklearn on XGBoost's
// own predictions.
type sklearnReference struct {
	Models map[string]struct {
		Metrics  map[string]float64 `json:"metrics"`
		Segments map[string]struct {
			Rows    int                `json:"rows"`
			Metrics map[string]float64 `json:"metrics"`
		} `json:"segments"`
	} `json:"models"`
}

func readReference(t *testing.T) sklearnReference {
	t.Helper()
	b, err := os.ReadFile(breastCancer + "evaluation.json")
	if err != nil {
		t.Fatal(err)
	}
	var r sklearnReference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// sameAsScikitLearn fails unless every metric of the evaluation, overall and
// per segment, equals scikit-learn's for that model.
func sameAsScikitLearn(t *testing.T, ref sklearnReference, model string, e domain.Evaluation) {
	t.Helper()
	want := ref.Models[model]
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	if e.Status != domain.EvaluationSucceeded || e.Rows != 143 {
		t.Fatalf("%s: evaluation %+v", model, e)
	}
	for k, w := range want.Metrics {
		if g, ok := e.Metrics[k]; !ok || !near(g, w) {
			t.Errorf("%s %s = %.17g (present %v), scikit-learn %.17g", model, k, g, ok, w)
		}
	}
	for _, k := range []string{domain.MetricLatencyP50MS, domain.MetricLatencyP99MS} {
		if e.Metrics[k] <= 0 {
			t.Errorf("%s %s = %v", model, k, e.Metrics[k])
		}
	}
	if len(e.Segments) != len(want.Segments) {
		t.Fatalf("%s: %d segments, want %d", model, len(e.Segments), len(want.Segments))
	}
	for _, s := range e.Segments {
		w := want.Segments[s.Column+"="+s.Value]
		if s.Rows != w.Rows || len(s.Metrics) != len(w.Metrics) {
			t.Errorf("%s segment %s=%s: %d rows %v, want %+v", model, s.Column, s.Value, s.Rows, s.Metrics, w)
		}
		for k, v := range w.Metrics {
			if !near(s.Metrics[k], v) {
				t.Errorf("%s segment %s=%s %s = %.17g, scikit-learn %.17g", model, s.Column, s.Value, k, s.Metrics[k], v)
			}
		}
	}
}

// TestEvaluationEndToEnd: the committed breast-cancer models and their
// evaluation dataset through the real binary — the dataset is pushed (and
// pushing it again stores nothing), v1 is evaluated and v2 against the
// champion, every metric equals scikit-learn's, refusals record nothing,
// and the audit log verifies.
func TestEvaluationEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	examples, err := filepath.Abs(breastCancer)
	if err != nil {
		t.Fatal(err)
	}
	c.ok("model", "create", "breast-cancer")
	for _, v := range []string{"v1", "v2", "v3"} {
		c.ok("version", "push", "breast-cancer", filepath.Join(examples, v+".json"), "--format", "xgboost-json")
	}
	c.ok("alias", "set", "breast-cancer", "champion", "1")

	holdout := filepath.Join(examples, "holdout-eval.csv")
	push := []string{"dataset", "push", "bc-holdout", holdout, "--label", "label", "--segment", "size_band", "--sensitive", "age_band"}
	var pushed api.DatasetPushResponse
	c.json(&pushed, push...)
	if !pushed.Created || pushed.Dataset.Ref() != "bc-holdout@1" || pushed.Dataset.Rows != 143 || pushed.Dataset.Task != domain.TaskClassification {
		t.Fatalf("dataset push: %+v", pushed)
	}
	again := c.run(push...)
	if again.code != 0 || !strings.Contains(again.stderr, "already holds this content") || !strings.Contains(again.stdout, "bc-holdout@1") {
		t.Fatalf("pushing the same dataset again: %s", again)
	}
	var list api.List[domain.Dataset]
	c.json(&list, "dataset", "list")
	if len(list.Items) != 1 {
		t.Fatalf("datasets after two identical pushes: %+v", list.Items)
	}
	if out := c.ok("dataset", "get", "bc-holdout@1"); !strings.Contains(out, "age_band") || !strings.Contains(out, "sensitive") {
		t.Errorf("dataset get:\n%s", out)
	}

	ref := readReference(t)
	var one api.EvaluationResponse
	c.json(&one, "evaluate", "breast-cancer", "1", "--dataset", "bc-holdout")
	sameAsScikitLearn(t, ref, "v1", one.Evaluation)
	if one.Baseline != nil || one.Evaluation.DatasetDigest != pushed.Dataset.Digest {
		t.Errorf("evaluation of v1: %+v", one)
	}

	var vs api.EvaluationResponse
	c.json(&vs, "evaluate", "breast-cancer", "2", "--dataset", "bc-holdout@1", "--against", "@champion")
	sameAsScikitLearn(t, ref, "v2", vs.Evaluation)
	if vs.Baseline == nil {
		t.Fatal("no baseline evaluation")
	}
	sameAsScikitLearn(t, ref, "v1", *vs.Baseline)
	if vs.Baseline.Version != 1 || vs.Evaluation.Baseline != vs.Baseline.ID {
		t.Errorf("baseline %d of version %d; candidate records %d", vs.Baseline.ID, vs.Baseline.Version, vs.Evaluation.Baseline)
	}
	// The table a person reads: both columns and the difference.
	table := c.ok("evaluate", "breast-cancer", "3", "--dataset", "bc-holdout", "--against", "@champion")
	for _, want := range []string{"BASELINE (VERSION 1)", "DIFFERENCE", "roc_auc", "size_band=small", "largest gaps over age_band"} {
		if !strings.Contains(table, want) {
			t.Errorf("evaluate table does not show %q:\n%s", want, table)
		}
	}
	var evals api.List[domain.Evaluation]
	c.json(&evals, "evaluation", "list", "--model", "breast-cancer")
	recorded := len(evals.Items)
	if recorded != 5 {
		t.Fatalf("%d evaluations recorded, want 5", recorded)
	}

	// Refusals: nothing stored, the reason named.
	dir := t.TempDir()
	nan := filepath.Join(dir, "nan.csv")
	if err := os.WriteFile(nan, []byte("a,label\n1,0\n2,1\n3,NaN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.fail([]string{"dataset", "push", "bad", nan, "--label", "label"}, "row 3 (line 4) is NaN")
	b, err := os.ReadFile(holdout)
	if err != nil {
		t.Fatal(err)
	}
	renamed := filepath.Join(dir, "renamed.csv")
	if err := os.WriteFile(renamed, []byte(strings.Replace(string(b), "worst_area", "area_worst", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("dataset", "push", "renamed", renamed, "--label", "label", "--segment", "size_band", "--sensitive", "age_band")
	c.fail([]string{"evaluate", "breast-cancer", "1", "--dataset", "renamed"}, `missing columns ["worst_area"]`, `extra columns ["area_worst"]`)
	c.fail([]string{"evaluate", "breast-cancer", "@nope", "--dataset", "bc-holdout"}, "nope")
	viewer := strings.TrimSpace(c.ok("token", "create", "--name", "looker", "--role", "viewer", "-o", "json"))
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(viewer), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token create -o json: %q, %v", viewer, err)
	}
	srv.client(tok.Token).fail([]string{"evaluate", "breast-cancer", "1", "--dataset", "bc-holdout"}, "role")
	c.json(&evals, "evaluation", "list")
	if len(evals.Items) != recorded {
		t.Errorf("refused evaluations were recorded: %d, want %d", len(evals.Items), recorded)
	}
	c.json(&list, "dataset", "list")
	if len(list.Items) != 2 {
		t.Errorf("datasets after a refused push: %d, want 2", len(list.Items))
	}
	if out := c.ok("audit", "list", "--subject", "model/breast-cancer/version/2/evaluation"); !strings.Contains(out, "evaluation.finish") {
		t.Errorf("audit of version 2's evaluations:\n%s", out)
	}
	c.ok("audit", "verify")
}

// TestEvaluationInterruptedByRestart: the server is killed (SIGKILL) while
// an evaluation waits on its model; after the restart the evaluation is
// failed, saying why, never half-recorded, and the audit log verifies.
func TestEvaluationInterruptedByRestart(t *testing.T) {
	t.Parallel()
	bin := oipServerBin(t)
	data := t.TempDir()
	srv := startServer(t, data)
	c := srv.admin()
	c.ok("model", "create", "adder")
	// Every prediction waits for a file that never appears.
	never := filepath.Join(t.TempDir(), "never")
	c.ok("version", "push", "adder", "--format", "process", "--set", fmt.Sprintf("command='%s' --port {port} --hold '%s'", bin, never))
	file := filepath.Join(t.TempDir(), "sums.csv")
	if err := os.WriteFile(file, []byte("a,b,y\n1,2,3\n2,2,4\n5,1,6.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("dataset", "push", "sums", file, "--label", "y")

	run := c.start("evaluate", "adder", "1", "--dataset", "sums")
	var running api.List[domain.Evaluation]
	poll(t, 60*time.Second, "the evaluation to be running", func() (bool, string) {
		c.json(&running, "evaluation", "list", "--status", "running")
		return len(running.Items) == 1, fmt.Sprintf("%+v", running.Items)
	})
	srv.kill()
	if r := run.wait(); r.code == 0 {
		t.Fatalf("evaluate succeeded although its server was killed: %s", r)
	}

	srv = startServer(t, data)
	c = srv.admin()
	var e domain.Evaluation
	c.json(&e, "evaluation", "get", fmt.Sprint(running.Items[0].ID))
	if e.Status != domain.EvaluationFailed || e.Error != "interrupted by a server restart" || e.FinishedAt == nil || e.Metrics != nil {
		t.Fatalf("after the restart: %+v", e)
	}
	c.json(&running, "evaluation", "list", "--status", "running")
	if len(running.Items) != 0 {
		t.Fatalf("still running after the restart: %+v", running.Items)
	}
	if out := c.ok("audit", "list", "--subject", "model/adder/version/1/evaluation"); !strings.Contains(out, "evaluation.start") || !strings.Contains(out, "evaluation.finish") {
		t.Errorf("audit of the interrupted evaluation:\n%s", out)
	}
	c.ok("audit", "verify")
}

// TestEvaluationOfARemoteModel: a model served by a child process over HTTP
// (the test server answers the sum of a row's inputs) evaluated on a
// regression dataset. It declares no feature names or width, so the
// columns without a role go in file order, unchecked, and the evaluation
// says so; a JSON Lines dataset, which has no column order, is refused.
func TestEvaluationOfARemoteModel(t *testing.T) {
	t.Parallel()
	bin := oipServerBin(t)
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "adder")
	c.ok("version", "push", "adder", "--format", "process", "--set", fmt.Sprintf("command='%s' --port {port}", bin))
	dir := t.TempDir()
	rows := [][3]float64{{1, 2, 3.5}, {2, 2, 4}, {5, 1, 5}, {0.5, 0.25, 1}}
	groups := []string{"x", "x", "y", ""}
	csv := "a,g,b,y\n"
	for i, r := range rows {
		csv += fmt.Sprintf("%g,%s,%g,%g\n", r[0], groups[i], r[1], r[2])
	}
	file := filepath.Join(dir, "sums.csv")
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	var pushed api.DatasetPushResponse
	c.json(&pushed, "dataset", "push", "sums", file, "--label", "y", "--segment", "g")
	if pushed.Dataset.Task != domain.TaskRegression {
		t.Fatalf("dataset %+v", pushed.Dataset)
	}
	var got api.EvaluationResponse
	c.json(&got, "evaluate", "adder", "1", "--dataset", "sums")
	e := got.Evaluation
	if e.Status != domain.EvaluationSucceeded || e.Task != domain.TaskRegression || e.Rows != len(rows) ||
		e.Features == nil || e.Features.Rule != domain.MatchUnchecked || strings.Join(e.Features.Columns, ",") != "a,b" {
		t.Fatalf("evaluation %+v (features %+v)", e, e.Features)
	}
	// The server answers a+b; the metrics of those predictions.
	var abs, sq, mean, tot float64
	for _, r := range rows {
		d := r[0] + r[1] - r[2]
		abs, sq, mean = abs+math.Abs(d), sq+d*d, mean+r[2]
	}
	n := float64(len(rows))
	mean /= n
	for _, r := range rows {
		tot += (r[2] - mean) * (r[2] - mean)
	}
	want := map[string]float64{"mae": abs / n, "rmse": math.Sqrt(sq / n), "r2": 1 - sq/tot}
	for k, w := range want {
		if math.Abs(e.Metrics[k]-w) > 1e-12 {
			t.Errorf("%s = %v, want %v", k, e.Metrics[k], w)
		}
	}
	if e.Metrics[domain.MetricLatencyP99MS] <= 0 || len(e.Segments) != 3 || e.Segments[0].Value != "(missing)" || e.Segments[1].Rows != 2 {
		t.Errorf("latency %v, segments %+v", e.Metrics[domain.MetricLatencyP99MS], e.Segments)
	}

	jsonl := filepath.Join(dir, "sums.jsonl")
	if err := os.WriteFile(jsonl, []byte(`{"a": 1, "b": 2, "y": 3}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("dataset", "push", "sums-jsonl", jsonl, "--label", "y")
	c.fail([]string{"evaluate", "adder", "1", "--dataset", "sums-jsonl"}, "no column order")
}
