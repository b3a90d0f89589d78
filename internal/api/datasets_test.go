package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

const smallCSV = "x,seg,y\n1.5,a,1\n2,b,0\n,a,1\n"

// datasetPath is the push URL of a dataset with roles in the query.
func datasetPath(name, query string) string { return "/api/v1/datasets/" + name + "?" + query }

func TestDatasetPushListGet(t *testing.T) {
	h := newHarness(t)
	r := h.mustCall(http.MethodPost, datasetPath("small", "format=csv&label=y&segment=seg"), h.admin, []byte(smallCSV), http.StatusCreated)
	var pushed api.DatasetPushResponse
	if err := json.Unmarshal(r.body, &pushed); err != nil {
		t.Fatal(err)
	}
	d := pushed.Dataset
	if !pushed.Created || d.Ref() != "small@1" || d.Rows != 3 || d.Task != domain.TaskClassification || d.Label != "y" ||
		len(d.Segments) != 1 || d.Columns[0].Missing != 1 || !strings.HasPrefix(d.Digest, "sha256:") || d.CreatedBy != "admin" {
		t.Fatalf("pushed %+v", pushed)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/datasets/small@1" {
		t.Errorf("Location %q", loc)
	}
	// The same bytes and roles again: the existing version, 200.
	r = h.mustCall(http.MethodPost, datasetPath("small", "format=csv&label=y&segment=seg"), h.admin, smallCSV, http.StatusOK)
	if !strings.Contains(string(r.body), `"created":false`) || !strings.Contains(string(r.body), `"version":1`) {
		t.Errorf("identical push: %s", r.body)
	}
	// The content type says the format; other roles make a new version.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+datasetPath("small", "label=y"), strings.NewReader(smallCSV))
	req.Header.Set("Authorization", "Bearer "+h.admin)
	req.Header.Set("Content-Type", "text/csv; charset=utf-8")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push as text/csv without segments: %d", resp.StatusCode)
	}
	jsonl := `{"a": 1.5, "y": 2.5}` + "\n" + `{"a": 2, "y": -1}` + "\n"
	h.mustCall(http.MethodPost, datasetPath("reg", "format=jsonl&label=y"), h.admin, jsonl, http.StatusCreated)

	var latest domain.Dataset
	r = h.mustCall(http.MethodGet, "/api/v1/datasets/small", h.admin, nil, http.StatusOK)
	_ = json.Unmarshal(r.body, &latest)
	if latest.Number != 2 || len(latest.Segments) != 0 {
		t.Errorf("latest of small: %+v", latest)
	}
	r = h.mustCall(http.MethodGet, "/api/v1/datasets/reg@1", h.admin, nil, http.StatusOK)
	if !strings.Contains(string(r.body), `"task":"regression"`) {
		t.Errorf("reg@1: %s", r.body)
	}
	h.mustCall(http.MethodGet, "/api/v1/datasets/small@3", h.admin, nil, http.StatusNotFound)
	h.mustCall(http.MethodGet, "/api/v1/datasets/small@x", h.admin, nil, http.StatusBadRequest)

	// Cursor pagination over (name, version).
	var refs []string
	cursor := ""
	for range 5 {
		var page api.List[domain.Dataset]
		r = h.mustCall(http.MethodGet, "/api/v1/datasets?limit=2&cursor="+cursor, h.admin, nil, http.StatusOK)
		_ = json.Unmarshal(r.body, &page)
		for _, d := range page.Items {
			refs = append(refs, d.Ref())
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(refs, " ") != "reg@1 small@1 small@2" {
		t.Errorf("paged datasets: %v", refs)
	}
	r = h.mustCall(http.MethodGet, "/api/v1/datasets?name=small", h.admin, nil, http.StatusOK)
	if strings.Count(string(r.body), `"name":"small"`) != 2 {
		t.Errorf("datasets named small: %s", r.body)
	}
	// A segment column is a grouping, not an identifier.
	ids := "id,y\n"
	for i := range 101 {
		ids += fmt.Sprintf("%d,0\n", i)
	}
	r = h.mustCall(http.MethodPost, datasetPath("ids", "format=csv&label=y&segment=id"), h.admin, ids, http.StatusBadRequest)
	if !strings.Contains(r.problem.Detail, `column "id" has more than 100 distinct values`) {
		t.Errorf("identifier as a segment: %+v", r.problem)
	}
	h.mustCall(http.MethodGet, "/api/v1/datasets/ids", h.admin, nil, http.StatusNotFound)
	// Fairness is for classification: a regression dataset's sensitive
	// column would silently measure nothing.
	r = h.mustCall(http.MethodPost, datasetPath("reg-fair", "format=csv&label=y&sensitive=g"), h.admin, "x,g,y\n1,a,2.5\n2,b,7\n", http.StatusBadRequest)
	if !strings.Contains(r.problem.Detail, `sensitive column "g": fairness gaps`) || !strings.Contains(r.problem.Detail, "--segment g") {
		t.Errorf("sensitive column of a regression dataset: %+v", r.problem)
	}
	h.mustCall(http.MethodGet, "/api/v1/datasets/reg-fair", h.admin, nil, http.StatusNotFound)

	// Pushes are audited.
	r = h.mustCall(http.MethodGet, "/api/v1/audit?subject=dataset/small", h.admin, nil, http.StatusOK)
	if strings.Count(string(r.body), `"action":"dataset.create"`) != 2 {
		t.Errorf("audit of dataset/small: %s", r.body)
	}
}

// TestDatasetBadInputStoresNothing: every refused push answers a problem
// naming the cause and leaves no dataset, no audit entry and no blob.
func TestDatasetBadInputStoresNothing(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.MaxDatasetBytes = 64 })
	viewer := h.token("viewer", domain.RoleViewer)
	big := "x,y\n" + strings.Repeat("1,0\n", 40)
	for _, c := range []struct {
		name, path, token, body string
		status                  int
		detail                  string
	}{
		{"NaN label", datasetPath("d", "format=csv&label=y"), h.admin, "x,y\n1,0\n2,NaN\n", 400, "row 2 (line 3) is NaN"},
		{"missing label", datasetPath("d", "format=csv&label=y"), h.admin, "x,y\n1,0\n2,\n", 400, "missing in 1 rows (the first at row 2)"},
		{"no label column", datasetPath("d", "format=csv&label=z"), h.admin, "x,y\n1,0\n", 400, `label column "z" is not in the dataset`},
		{"no label given", datasetPath("d", "format=csv"), h.admin, "x,y\n1,0\n", 400, "name the label column"},
		{"unknown segment", datasetPath("d", "format=csv&label=y&segment=nope"), h.admin, "x,y\n1,0\n", 400, `segment column "nope"`},
		{"ragged CSV", datasetPath("d", "format=csv&label=y"), h.admin, "x,y\n1,0,3\n", 400, "wrong number of fields"},
		{"not JSON Lines", datasetPath("d", "format=jsonl&label=y"), h.admin, "{\"y\":1}\nnope\n", 400, "line 2 is not a JSON object"},
		{"unknown format", datasetPath("d", "format=parquet&label=y"), h.admin, "x", 400, "not csv or jsonl"},
		{"no format", datasetPath("d", "label=y"), h.admin, "x,y\n1,0\n", 400, "?format=csv"},
		{"unknown parameter", datasetPath("d", "format=csv&label=y&lable=y"), h.admin, "x,y\n1,0\n", 400, `"lable"`},
		{"bad name", datasetPath("Bad_Name", "format=csv&label=y"), h.admin, "x,y\n1,0\n", 400, "dataset name"},
		{"empty", datasetPath("d", "format=csv&label=y"), h.admin, "", 400, "empty"},
		{"too large", datasetPath("d", "format=csv&label=y"), h.admin, big, 413, "limit of 64"},
		{"viewer", datasetPath("d", "format=csv&label=y"), viewer, "x,y\n1,0\n", 403, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.call(http.MethodPost, c.path, c.token, []byte(c.body))
			if r.status != c.status || r.problem.Status != c.status || !strings.Contains(r.problem.Detail, c.detail) {
				t.Fatalf("status %d, problem %+v; want %d mentioning %q", r.status, r.problem, c.status, c.detail)
			}
		})
	}
	// A body of unknown length is cut at the limit too.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+datasetPath("d", "format=csv&label=y"), io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+h.admin)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "limit of 64 bytes") {
		t.Errorf("chunked oversized push: %d %s", resp.StatusCode, body)
	}
	r := h.mustCall(http.MethodGet, "/api/v1/datasets", h.admin, nil, http.StatusOK)
	if string(r.body) != "{\"items\":[]}\n" {
		t.Errorf("datasets after refusals: %s", r.body)
	}
	r = h.mustCall(http.MethodGet, "/api/v1/audit?subject=dataset", h.admin, nil, http.StatusOK)
	if strings.Contains(string(r.body), "dataset.create") {
		t.Errorf("audit after refusals: %s", r.body)
	}
	blobs, _ := filepath.Glob(filepath.Join(h.blobDir, "blobs", "sha256", "*", "*"))
	tmp, _ := os.ReadDir(filepath.Join(h.blobDir, "tmp"))
	if len(blobs) != 0 || len(tmp) != 0 {
		t.Errorf("blobs left behind: %v, tmp %d", blobs, len(tmp))
	}
}

// TestIdenticalPushesAtOnceMakeOneVersion: the same bytes pushed from many
// clients at once make one version; every other push gets it back.
func TestIdenticalPushesAtOnceMakeOneVersion(t *testing.T) {
	h := newHarness(t)
	const n = 8
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+datasetPath("same", "format=csv&label=y"), strings.NewReader(smallCSV))
			req.Header.Set("Authorization", "Bearer "+h.admin)
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusOK] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 200", count, n-1)
	}
	r := h.mustCall(http.MethodGet, "/api/v1/datasets?name=same", h.admin, nil, http.StatusOK)
	if strings.Count(string(r.body), `"name":"same"`) != 1 {
		t.Errorf("versions of same: %s", r.body)
	}
}
