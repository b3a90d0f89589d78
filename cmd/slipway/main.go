// Command slipway ships machine-learning models to production safely. It
// only connects the CLI to the application wiring.
package main

import (
	"context"
	"os"

	"github.com/slipway-ml/slipway/internal/app"
	"github.com/slipway-ml/slipway/internal/cli"
)

func main() {
	serve := func(ctx context.Context, o cli.ServerOptions) error {
		var ready func(app.Addrs)
		if o.Ready != nil {
			ready = func(a app.Addrs) { o.Ready(a.API, a.Gateway) }
		}
		return app.Run(ctx, app.Config{
			DataDir: o.DataDir, Addr: o.Addr, GatewayAddr: o.GatewayAddr, EgressAllow: o.EgressAllow, Version: cli.Version, MaxBodyBytes: o.MaxBodyBytes,
			MaxBlobBytes: o.MaxBlobBytes, ShutdownTimeout: o.ShutdownTimeout, Log: o.Log, AccessLog: o.AccessLog,
			Gateway: app.GatewayResilience(o.Resilience), Limits: app.GatewayLimits(o.Limits), OTLPEndpoint: o.OTLPEndpoint,
			FaultInjectionEnvs: o.FaultInjectionEnvs, Rollouts: app.Rollouts(o.Rollouts),
		}, ready)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, serve))
}
