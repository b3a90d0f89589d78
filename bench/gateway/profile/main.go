// Command profile serves slipway's inference gateway in process, wired as
// `slipway server` wires it (metrics recorder on a Prometheus registry, a
// JSON access log, the egress-checked transport of external runtimes, the
// same http.Server settings), in front of two upstreams with a 90/10
// split, and records a CPU profile while bench/gateway/run.sh loads it
// with wrk. The server has no pprof endpoint; this is how the benchmark
// sees where the gateway's time goes.
//
// It serves two models: -oip-model over the Open Inference Protocol and
// -openai-model over the OpenAI API, both split 90/10 between -upstream-a
// (version 1) and -upstream-b (version 2). It prints its bound address as
// the first line of standard output, profiles from then until SIGTERM or
// SIGINT (when -cpuprofile is set), writes the profiles and exits.
//
// Two other -mode values measure floors instead of slipway, each with the
// 90/10 split drawn at random and nothing else (no routing table, metrics,
// log, request ID or body inspection):
//   - httputil: a bare httputil.ReverseProxy per upstream, built once —
//     where a Go gateway on the standard library starts from;
//   - direct: net/http's server with a hand-rolled HTTP/1.1 client (see
//     direct.go) — what a custom proxy path can get to in Go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/gateway"
	"github.com/slipway-ml/slipway/internal/logbuf"
	"github.com/slipway-ml/slipway/internal/metrics"
	slipruntime "github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

// config is what the command was asked to do.
type config struct {
	addr, upstreamA, upstreamB string
	oipModel, openaiModel      string
	cpuProfile, memProfile     string
	logLevel                   string
	mode                       string
	server                     string
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:0", "listen address")
	flag.StringVar(&c.upstreamA, "upstream-a", "", "host:port of version 1 (90 %)")
	flag.StringVar(&c.upstreamB, "upstream-b", "", "host:port of version 2 (10 %)")
	flag.StringVar(&c.oipModel, "oip-model", "bench", "model served over the Open Inference Protocol")
	flag.StringVar(&c.openaiModel, "openai-model", "chat", "model served over the OpenAI API")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "CPU profile output (no profiling when empty)")
	flag.StringVar(&c.memProfile, "memprofile", "", "allocation profile output, written at exit (none when empty)")
	flag.StringVar(&c.logLevel, "log-level", "info", "access log level, as slipway server's --log-level")
	flag.StringVar(&c.mode, "mode", "slipway", "what to serve: slipway (its gateway), httputil (a bare httputil.ReverseProxy) or direct (a hand-rolled proxy)")
	flag.StringVar(&c.server, "server", "own", "HTTP server: own (the gateway's own HTTP/1.1 server, gateway.Server) or nethttp (net/http's, as slipway server used before)")
	flag.Parse()
	if c.upstreamA == "" || c.upstreamB == "" {
		log.Fatal("profile: -upstream-a and -upstream-b are required")
	}
	if err := run(c); err != nil {
		log.Fatal("profile: ", err)
	}
}

func run(c config) error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: %w", c.logLevel, err)
	}
	// As slipway server does: info lines batched, warnings written at once.
	logs := logbuf.New(os.Stderr, 64<<10, 100*time.Millisecond)
	defer logs.Close()
	logger := slog.New(logbuf.Handler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: lv}), logs))
	policy := egress.Default()
	a, err := endpoint(policy, c.upstreamA)
	if err != nil {
		return err
	}
	b, err := endpoint(policy, c.upstreamB)
	if err != nil {
		return err
	}
	var handler http.Handler
	switch c.mode {
	case "slipway":
		handler = slipwayGateway(c, logger, logs, a, b)
	case "httputil":
		handler = plainProxy(a, b)
	case "direct":
		handler = newDirectProxy(c.upstreamA, c.upstreamB)
	default:
		return fmt.Errorf("-mode %q: want slipway, httputil or direct", c.mode)
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	var srv server
	switch c.server {
	case "own":
		srv = gateway.NewServer(handler, gateway.ServerConfig{
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, Log: logger,
		})
	case "nethttp":
		srv = &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	default:
		return fmt.Errorf("-server %q: want own or nethttp", c.server)
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	fmt.Println(ln.Addr().String())
	_ = os.Stdout.Sync()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err = <-serveErr:
	case <-ctx.Done():
	}
	if c.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	_ = srv.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if c.memProfile != "" {
		m, err := os.Create(c.memProfile)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := pprof.Lookup("allocs").WriteTo(m, 0); err != nil {
			return err
		}
	}
	return nil
}

// server is what serves the handler: gateway.Server or net/http's.
type server interface {
	Serve(net.Listener) error
	Close() error
}

// slipwayGateway is the gateway as `slipway server` builds it, with one
// fixed routing table.
func slipwayGateway(c config, logger *slog.Logger, access io.Writer, a, b slipruntime.Endpoint) http.Handler {
	split := func(model string, proto slipruntime.Protocol) *deployment.Route {
		ea, eb := a, b
		ea.Protocol, eb.Protocol = proto, proto
		return &deployment.Route{Model: model, Environment: "production", Revision: 1, Stable: 1, Versions: []deployment.RouteVersion{
			{Version: 1, Weight: 90, Endpoint: ea},
			{Version: 2, Weight: 10, Endpoint: eb},
		}}
	}
	routes := &tableSource{t: deployment.NewTable(
		split(c.oipModel, slipruntime.ProtocolOIP),
		split(c.openaiModel, slipruntime.ProtocolOpenAI),
	)}
	return gateway.New(gateway.Config{
		Routes:        routes,
		Metrics:       metrics.New(prometheus.NewRegistry(), clock.Real{}),
		Log:           logger,
		AccessLog:     access,
		ServerVersion: "bench",
	})
}

// plainProxy is the standard library's reverse proxy with a weighted
// split and nothing else.
func plainProxy(a, b slipruntime.Endpoint) http.Handler {
	proxy := func(ep slipruntime.Endpoint) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(ep.URL)
				pr.Out.Host = ""
			},
			Transport: ep.Transport,
		}
	}
	pa, pb := proxy(a), proxy(b)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mrand.IntN(100) < 90 {
			pa.ServeHTTP(w, r)
			return
		}
		pb.ServeHTTP(w, r)
	})
}

// endpoint builds a remote endpoint as the external runtime does: the
// egress policy's transport with the default upstream timeout on headers.
func endpoint(policy *egress.Policy, hostport string) (slipruntime.Endpoint, error) {
	u, err := url.Parse("http://" + hostport)
	if err != nil {
		return slipruntime.Endpoint{}, err
	}
	tr := policy.Transport()
	tr.ResponseHeaderTimeout = slipruntime.DefaultTimeout
	return slipruntime.Endpoint{URL: u, Transport: tr}, nil
}

// tableSource publishes one fixed routing table.
type tableSource struct{ t *deployment.Table }

func (s *tableSource) Routes() *deployment.Table { return s.t }
