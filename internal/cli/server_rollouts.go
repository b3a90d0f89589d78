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
	PrometheusScrape    time.Duration
}

// addRolloutFlags declares --prometheus-url, --prometheus-token-file and
// --rollout-interval.
func addRolloutFlags(f *pflag.FlagSet, r *ServerRollouts) {
	f.StringVar(&r.PrometheusURL, "prometheus-url", os.Getenv("SLIPWAY_PROMETHEUS_URL"),
		"Prometheus server for rollout rules with a prometheus query, such as http://127.0.0.1:9090 (env SLIPWAY_PROMETHEUS_URL); without it those rules have no data and the rollout waits")
	f.StringVar(&r.PrometheusTokenFile, "prometheus-token-file", "", "file holding a bearer token for --prometheus-url")
	f.DurationVar(&r.Interval, "rollout-interval", 20*time.Millisecond,
		"how often a judged rollout looks at the gateway's live per-version counters (from 1ms to 10s)")
	f.DurationVar(&r.PrometheusScrape, "prometheus-scrape-interval", 15*time.Second,
		"how often --prometheus-url scrapes slipway's /metrics: a prometheus rule passes only on an answer read two scrapes after its analysis run began (from 1s to 10m)")
}

func (r ServerRollouts) validate() error {
	if r.Interval < time.Millisecond || r.Interval > 10*time.Second {
		return fmt.Errorf("--rollout-interval %s must be from 1ms to 10s", r.Interval)
	}
	if r.PrometheusScrape < time.Second || r.PrometheusScrape > 10*time.Minute {
		return fmt.Errorf("--prometheus-scrape-interval %s must be from 1s to 10m", r.PrometheusScrape)
	}
	return nil
}
