package cli

import "github.com/spf13/pflag"

// DefaultFaultInjectionEnvs is where fault injection is allowed unless
// the operator says otherwise: the environments for testing, never
// production.
const DefaultFaultInjectionEnvs = "dev,staging"

// addFaultFlags declares --fault-injection-envs (docs/gateway.md: Fault
// injection). The app checks the names against the environments.
func addFaultFlags(f *pflag.FlagSet, envs *string) {
	f.StringVar(envs, "fault-injection-envs", DefaultFaultInjectionEnvs,
		`environments where served versions may carry injected faults (slipway deployment set-fault), comma-separated; "" allows none; production only when listed`)
}
