// Command upstream is the model server behind bench/gateway/run.sh: it
// answers the Open Inference Protocol v2 (health, readiness, metadata,
// infer) and the OpenAI API (POST /v1/chat/completions, GET /v1/models)
// with constant small answers, so a benchmark measures the proxy in front
// of it, not a model. It imports nothing of slipway.
//
// It listens on -addr (port 0: the kernel picks one) and prints the bound
// address as the first line of its standard output. With -free-port it
// only prints a free loopback port and exits, for programs that must be
// told a port (nginx, Portkey).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Answers are built once; every request gets the same bytes.
var (
	live   = []byte(`{"live":true}` + "\n")
	ready  = []byte(`{"ready":true}` + "\n")
	infer  = []byte(`{"model_name":"upstream","model_version":"7","id":"","outputs":[{"name":"p","shape":[1],"datatype":"FP64","data":[0.5]}]}` + "\n")
	chat   = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"stub","choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}` + "\n")
	meta   = []byte(`{"name":"upstream","versions":["7"],"platform":"bench","inputs":[{"name":"x","datatype":"FP32","shape":[-1,3]}],"outputs":[{"name":"p","datatype":"FP64","shape":[-1]}]}` + "\n")
	models = []byte(`{"object":"list","data":[{"id":"stub","object":"model","created":1700000000,"owned_by":"bench"}]}` + "\n")
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback; port 0 picks a free one)")
	freePort := flag.Bool("free-port", false, "print a free loopback port and exit")
	flag.Parse()

	if *freePort {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		_ = ln.Close()
		return
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	_ = os.Stdout.Sync()
	srv := &http.Server{
		Handler:           http.HandlerFunc(serve),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Fatal(srv.Serve(ln))
}

func serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	p := r.URL.Path
	switch {
	case p == "/v2/health/live":
		answer(w, live)
	case p == "/v2/health/ready":
		answer(w, ready)
	case strings.HasPrefix(p, "/v2/models/") && strings.HasSuffix(p, "/infer") && r.Method == http.MethodPost:
		answer(w, infer)
	case strings.HasPrefix(p, "/v2/models/") && strings.HasSuffix(p, "/ready"):
		answer(w, ready)
	case strings.HasPrefix(p, "/v2/models/"):
		answer(w, meta)
	case strings.HasSuffix(p, "/chat/completions") && r.Method == http.MethodPost:
		answer(w, chat)
	case strings.HasSuffix(p, "/models") && r.Method == http.MethodGet:
		answer(w, models)
	default:
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
	}
}

func answer(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	_, _ = w.Write(body)
}
