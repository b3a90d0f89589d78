package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/logbuf"
)

// ServerOptions is what `slipway server` parsed from its flags.
type ServerOptions struct {
	DataDir         string
	Addr            string
	GatewayAddr     string
	EgressAllow     string
	MaxBodyBytes    int64
	MaxBlobBytes    int64
	ShutdownTimeout time.Duration
	Log             *slog.Logger
	// AccessLog is the writer under Log's JSON handler: the gateway
	// writes its access-log lines there directly, in the same form.
	AccessLog io.Writer
	// Resilience holds the gateway's --gateway-* retry, breaker, fallback
	// and size flags (server_resilience.go).
	Resilience GatewayResilience
	// Limits holds the gateway's authentication, rate, response-size
	// and idempotency flags (server_limits.go).
	Limits GatewayLimits
	// OTLPEndpoint is the OTLP/HTTP collector traces are exported to;
	// empty turns tracing off.
	OTLPEndpoint string
	// FaultInjectionEnvs lists, comma-separated, the environments where
	// versions may carry injected faults (server_faults.go).
	FaultInjectionEnvs string
	// Rollouts holds the rollout controller's flags (server_rollouts.go).
	Rollouts ServerRollouts
	// Ready, when not nil, is told the addresses the API and the gateway
	// bound, once they accept connections (slipway demo binds port 0).
	Ready func(api, gateway string)
}

// RunServer starts the control plane and blocks until ctx ends. The CLI
// does not build servers itself: cmd/slipway passes app.Run in, so this
// package depends on nothing below the API client.
type RunServer func(ctx context.Context, o ServerOptions) error

func newServerCmd(g *globals) *cobra.Command {
	var c ServerOptions
	var level string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the slipway control plane (SQLite state and a local artifact folder by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level %q must be debug, info, warn or error", level)
			}
			// Info lines (one per inference request) are written out in
			// batches at least every 100 ms; warnings and errors at once.
			logs := logbuf.New(os.Stderr, 64<<10, 100*time.Millisecond)
			defer logs.Close()
			c.Log = slog.New(logbuf.Handler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: lv}), logs))
			c.AccessLog = logs
			if c.MaxBodyBytes <= 0 || c.MaxBlobBytes <= 0 {
				return fmt.Errorf("--max-body-bytes and --max-artifact-file-bytes must be positive")
			}
			if err := c.Resilience.validate(); err != nil {
				return err
			}
			if err := c.Limits.validate(); err != nil {
				return err
			}
			if err := c.Rollouts.validate(); err != nil {
				return err
			}
			c.Limits = c.Limits.normalized()
			if g.runServer == nil {
				return fmt.Errorf("this build of slipway has no server")
			}
			return g.runServer(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.DataDir, "data-dir", envOr("SLIPWAY_DATA_DIR", ".slipway"), "folder for state, artifacts and the first admin token (env SLIPWAY_DATA_DIR)")
	f.StringVar(&c.Addr, "addr", envOr("SLIPWAY_LISTEN", "127.0.0.1:8700"), "API listen address (env SLIPWAY_LISTEN)")
	f.StringVar(&c.GatewayAddr, "gateway-addr", envOr("SLIPWAY_GATEWAY_LISTEN", "127.0.0.1:8080"), "inference gateway listen address: Open Inference Protocol v2 and OpenAI (env SLIPWAY_GATEWAY_LISTEN)")
	f.StringVar(&c.EgressAllow, "egress-allow", os.Getenv("SLIPWAY_EGRESS_ALLOW"), "networks external and openai model servers may be reached on, comma-separated CIDRs (default loopback only; metadata and link-local addresses are always refused) (env SLIPWAY_EGRESS_ALLOW)")
	f.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "largest JSON request body accepted")
	f.Int64Var(&c.MaxBlobBytes, "max-artifact-file-bytes", 64<<30, "largest single artifact file accepted")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may finish after SIGTERM")
	f.StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	addGatewayResilienceFlags(f, &c.Resilience)
	addGatewayLimitFlags(f, &c.Limits)
	addFaultFlags(f, &c.FaultInjectionEnvs)
	addRolloutFlags(f, &c.Rollouts)
	f.StringVar(&c.OTLPEndpoint, "otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "OTLP/HTTP collector to export traces to, such as http://127.0.0.1:4318 (spans go to its /v1/traces); off when empty (env OTEL_EXPORTER_OTLP_ENDPOINT)")
	// The server's own --addr shadows the client flag of the same name.
	return cmd
}
