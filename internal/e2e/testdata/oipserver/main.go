// Command oipserver is a tiny Open Inference Protocol v2 model server for
// slipway's end-to-end tests: the process runtime starts it as a real child
// process. It serves GET /v2/health/ready, GET /v2/models/{name}[/ready]
// and POST /v2/models/{name}/infer, which answers the sum of every input
// element as one FP64 output named "sum", and its own pid in the answer's
// parameters so a test can tell one child from its restarted successor.
//
// A request whose parameters name a file in "wait_for" is held until that
// file exists (or the caller goes away): a request in flight for as long as
// a test needs.
//
// With --hold PATH every infer request is held until PATH exists (or the
// caller goes away): a model that never finishes a run, for as long as a
// test needs.
//
// With --fail it prints the message to stderr and exits 3 at once: a model
// server that cannot load its weights.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	port := flag.Int("port", 0, "loopback port to listen on")
	fail := flag.String("fail", "", "print this to stderr and exit 3 instead of serving")
	flag.StringVar(&holdAll, "hold", "", "hold every infer request until this file exists")
	flag.Parse()
	if *fail != "" {
		fmt.Fprintln(os.Stderr, *fail)
		os.Exit(3)
	}
	if *port <= 0 {
		fmt.Fprintln(os.Stderr, "oipserver: --port is required")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "oipserver:", err)
		os.Exit(1)
	}
	fmt.Printf("oipserver pid %d listening on %s\n", os.Getpid(), ln.Addr())
	if err := http.Serve(ln, http.HandlerFunc(serve)); err != nil {
		fmt.Fprintln(os.Stderr, "oipserver:", err)
		os.Exit(1)
	}
}

type tensor struct {
	Name     string          `json:"name"`
	Shape    []int64         `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data"`
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/health/ready" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/models/")
	if !ok || rest == "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no endpoint " + r.URL.Path})
		return
	}
	name, suffix, _ := strings.Cut(rest, "/")
	switch {
	case suffix == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"name": name, "versions": []string{"upstream-7"}, "platform": "oipserver",
			"inputs":  []map[string]any{{"name": "x", "datatype": "FP64", "shape": []int{-1}}},
			"outputs": []map[string]any{{"name": "sum", "datatype": "FP64", "shape": []int{1}}},
		})
	case suffix == "ready" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "ready": true})
	case suffix == "infer" && r.Method == http.MethodPost:
		infer(w, r, name)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)})
	}
}

// holdAll is --hold: set once in main before serving.
var holdAll string

func infer(w http.ResponseWriter, r *http.Request, name string) {
	var req struct {
		ID         string `json:"id"`
		Parameters struct {
			WaitFor string `json:"wait_for"`
		} `json:"parameters"`
		Inputs []tensor `json:"inputs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "infer request: " + err.Error()})
		return
	}
	if len(req.Inputs) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "infer request has no inputs"})
		return
	}
	p := req.Parameters.WaitFor
	if p == "" {
		p = holdAll
	}
	if p != "" {
		fmt.Printf("oipserver pid %d holds request %q until %s exists\n", os.Getpid(), req.ID, p)
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	sum := 0.0
	for _, in := range req.Inputs {
		var data []float64
		if err := json.Unmarshal(in.Data, &data); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("input %q: %v", in.Name, err)})
			return
		}
		for _, v := range data {
			sum += v
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		// The upstream's own names: the gateway puts slipway's in.
		"model_name": name, "model_version": "upstream-7", "id": req.ID,
		"parameters": map[string]any{"pid": os.Getpid()},
		"outputs":    []map[string]any{{"name": "sum", "shape": []int{1}, "datatype": "FP64", "data": []float64{sum}}},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
