package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
)

// ServerRollouts is how `slipway server`'s rollout controller judges
// (docs/rollouts.md: Analysis).
type ServerRollouts struct {
	PrometheusURL       string
	PrometheusTokenFile string
	Interval            time.Duration
}

// addRolloutFlags declares --prometheus-url, --prometheus-token-file and
// --rollout-interval.
func addRolloutFlags(f *pflag.FlagSet, r *ServerRollouts) {
	f.StringVar(&r.PrometheusURL, "prometheus-url", os.Getenv("SLIPWAY_PROMETHEUS_URL"),
		"Prometheus server for rollout rules with a prometheus query, such as http://127.0.0.1:9090 (env SLIPWAY_PROMETHEUS_URL); without it those rules have no data and the rollout waits")
	f.StringVar(&r.PrometheusTokenFile, "prometheus-token-file", "", "file holding a bearer token for --prometheus-url")
	f.DurationVar(&r.Interval, "rollout-interval", 20*time.Millisecond,
		"how often a judged rollout looks at the gateway's live per-version counters (from 1ms to 10s)")
}

func (r ServerRollouts) validate() error {
	if r.Interval < time.Millisecond || r.Interval > 10*time.Second {
		return fmt.Errorf("--rollout-interval %s must be from 1ms to 10s", r.Interval)
	}
	return nil
}
