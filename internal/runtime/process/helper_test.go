//go:build unix

package process

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv switches the test binary into a model server: the tests run
// os.Args[0] itself as the child process (the os/exec helper-process
// trick), so they need no other program.
const helperEnv = "SLIPWAY_PROCESS_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperMain is the child. Modes:
//
//	serve  OIP v2 health and an infer that doubles its input, on -port
//	exit   print an error and exit 3 at once
//	hang   print a line and never listen
//	sleep  do nothing until killed (a grandchild)
func helperMain(mode string, args []string) int {
	fs := flag.NewFlagSet("helper", flag.ContinueOnError)
	port := fs.Int("port", 0, "port to listen on")
	children := fs.Int("children", 0, "grandchildren to fork, each printing its pid")
	ignoreTerm := fs.Bool("ignore-term", false, "ignore SIGTERM")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fmt.Printf("helper pid=%d mode=%s args=%q\n", os.Getpid(), mode, args)
	fmt.Fprintf(os.Stderr, "helper env GREETING=%q TOKEN=%q\n", os.Getenv("GREETING"), os.Getenv("SLIPWAY_TEST_SECRET"))
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	for range *children {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=sleep")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "fork:", err)
			return 1
		}
		fmt.Printf("grandchild pid=%d\n", cmd.Process.Pid)
	}
	switch mode {
	case "exit":
		fmt.Fprintln(os.Stderr, "fatal: cannot load model.bin: no such file or directory")
		return 3
	case "hang", "sleep":
		fmt.Println("loading weights…")
		select {}
	case "serve":
		return serve(*port)
	}
	fmt.Fprintln(os.Stderr, "unknown mode", mode)
	return 2
}

func serve(port int) int {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /v2/models/{name}/infer", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Inputs []struct {
				Data []float64 `json:"data"`
			} `json:"inputs"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Inputs) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error": %q}`, fmt.Sprint("bad request: ", err))
			return
		}
		out := make([]float64, len(req.Inputs[0].Data))
		for i, v := range req.Inputs[0].Data {
			out[i] = 2 * v
		}
		json.NewEncoder(w).Encode(map[string]any{
			"model_name": r.PathValue("name"),
			"outputs":    []any{map[string]any{"name": "y", "datatype": "FP64", "shape": []int{len(out)}, "data": out}},
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	fmt.Println("serving on", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintln(os.Stderr, srv.Serve(ln))
	return 1
}

// helperCommand is a command line running the test binary in mode.
func helperCommand(extra ...string) string {
	return strings.Join(append([]string{shellQuote(os.Args[0]), "-port", "{port}"}, extra...), " ")
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// processGone reports whether pid no longer runs: absent, or a zombie
// waiting for a parent that is not us (an orphan reparented to init).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	// pid (comm) state …; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}
