// Package cli is slipway's command line: cobra commands, noun then verb,
// one file per noun. Every command except `server` is a client of the HTTP
// API through apiclient; none touches a store directly.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/apiclient"
)

// Version is the binary's version, set at build time with -ldflags.
var Version = "dev"

type globals struct {
	addr   string
	token  string
	output string
	stdout io.Writer
	stderr io.Writer

	runServer RunServer
}

// Main runs the CLI with args and returns the process exit code. serve
// runs `slipway server`.
func Main(args []string, stdout, stderr io.Writer, serve RunServer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr, serve)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

func newRoot(stdout, stderr io.Writer, serve RunServer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr, runServer: serve}
	root := &cobra.Command{
		Use:   "slipway",
		Short: "Ship machine-learning models to production safely",
		Long: `slipway keeps a registry of immutable, versioned model artifacts with
lineage, moves aliases atomically, and records every change in a
tamper-evident audit log.

Commands other than "server" talk to a slipway server: set SLIPWAY_ADDR
(default 127.0.0.1:8700) and SLIPWAY_TOKEN, or pass --addr and --token.
Without a token, the CLI reads ./.slipway/admin.token when it exists.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Refuse a bad -o before the command runs: checked only when
		// printing, a mutation would happen and still exit 1.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Lookup("output") == nil {
				return nil
			}
			return g.checkOutput()
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.addr, "addr", envOr("SLIPWAY_ADDR", "127.0.0.1:8700"), "server address (env SLIPWAY_ADDR)")
	// The token is read from the environment when the client is built, not
	// made the flag's default: a default is printed by every --help.
	pf.StringVar(&g.token, "token", "", "API token (env SLIPWAY_TOKEN)")
	root.AddCommand(
		newServerCmd(g),
		newModelCmd(g),
		newVersionCmd(g),
		newAliasCmd(g),
		newDeployCmd(g),
		newTrafficCmd(g),
		newDeploymentCmd(g),
		newRoutingCmd(g),
		newDatasetCmd(g),
		newEvaluateCmd(g),
		newEvaluationCmd(g),
		newApplyCmd(g),
		newPolicyCmd(g),
		newPromoteCmd(g),
		newDecideCmd(g, true),
		newDecideCmd(g, false),
		newPromotionCmd(g),
		newRolloutCmd(g),
		newAuditCmd(g),
		newTokenCmd(g),
		newWebhookCmd(g),
		newDemoCmd(g),
	)
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// client builds an API client, falling back to the local admin token file
// of the default data dir when no token was given.
func (g *globals) client() (*apiclient.Client, error) {
	tok := strings.TrimSpace(g.token)
	if tok == "" {
		tok = strings.TrimSpace(os.Getenv("SLIPWAY_TOKEN"))
	}
	if tok == "" && isLoopback(g.addr) {
		// Only a server on this machine can have written this file; never
		// send it anywhere else.
		if b, err := os.ReadFile(filepath.Join(".slipway", "admin.token")); err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	if tok == "" {
		return nil, errors.New("no API token: set SLIPWAY_TOKEN or --token (the server wrote the first admin token to <data-dir>/admin.token)")
	}
	return apiclient.New(g.addr, tok)
}

// addOutput registers -o on a command that prints records.
func (g *globals) addOutput(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
}

// isLoopback reports whether a server address names this machine.
func isLoopback(addr string) bool {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
