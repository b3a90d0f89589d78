package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// A multi-class label is refused unless the task says the numbers are
// quantities; the task given is stored, and pushing the same bytes with
// another task makes another version.
func TestDatasetPushTask(t *testing.T) {
	h := newHarness(t)
	classes := "x,y\n1,0\n2,1\n3,2\n4,1\n"
	before := h.fingerprint()
	r := h.call(http.MethodPost, datasetPath("iris", "format=csv&label=y"), h.admin, classes)
	if r.status != http.StatusBadRequest || !strings.Contains(r.problem.Detail, "multi-class") || !strings.Contains(r.problem.Detail, "--task regression") {
		t.Fatalf("three classes inferred: %d %s", r.status, r.body)
	}
	r = h.call(http.MethodPost, datasetPath("iris", "format=csv&label=y&task=classification"), h.admin, classes)
	if r.status != http.StatusBadRequest || !strings.Contains(r.problem.Detail, "a classification label is 0, 1") {
		t.Fatalf("three classes as classification: %d %s", r.status, r.body)
	}
	r = h.call(http.MethodPost, datasetPath("iris", "format=csv&label=y&task=ranking"), h.admin, classes)
	if r.status != http.StatusBadRequest || !strings.Contains(r.problem.Detail, `task "ranking"`) {
		t.Fatalf("unknown task: %d %s", r.status, r.body)
	}
	if !h.fingerprint().equal(before) {
		t.Fatal("refused pushes changed stored state")
	}
	r = h.mustCall(http.MethodPost, datasetPath("counts", "format=csv&label=y&task=regression"), h.admin, classes, http.StatusCreated)
	if !strings.Contains(string(r.body), `"task":"regression"`) {
		t.Fatalf("counts: %s", r.body)
	}
	binary := "x,y\n1,0\n2,1\n"
	h.mustCall(http.MethodPost, datasetPath("b", "format=csv&label=y"), h.admin, binary, http.StatusCreated)
	r = h.mustCall(http.MethodPost, datasetPath("b", "format=csv&label=y&task=regression"), h.admin, binary, http.StatusCreated)
	if !strings.Contains(string(r.body), `"version":2`) || !strings.Contains(string(r.body), `"task":"regression"`) {
		t.Fatalf("same bytes as regression: %s", r.body)
	}
}
