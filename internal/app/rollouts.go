package app

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/analysis/promprov"
)

// Rollouts is how the rollout controller judges and how often.
type Rollouts struct {
	// PrometheusURL is the Prometheus server the analysis rules'
	// prometheus queries go to; empty leaves those rules without data
	// (Error: the rollout waits and pauses at its progress deadline).
	PrometheusURL string
	// PrometheusTokenFile holds a bearer token for it (trailing
	// whitespace trimmed); empty sends none.
	PrometheusTokenFile string
	// Interval is how often a judged rollout looks at the live counters;
	// zero takes the controller's 20 ms.
	Interval time.Duration
	// PrometheusScrape is how often that Prometheus scrapes slipway;
	// zero takes 15 s.
	PrometheusScrape time.Duration
}

// prometheus builds the provider the flags describe, or nil.
func (r Rollouts) prometheus() (analysis.Provider, error) {
	if strings.TrimSpace(r.PrometheusURL) == "" {
		if r.PrometheusTokenFile != "" {
			return nil, fmt.Errorf("--prometheus-token-file needs --prometheus-url")
		}
		return nil, nil
	}
	cfg := promprov.Config{URL: strings.TrimSpace(r.PrometheusURL)}
	if r.PrometheusTokenFile != "" {
		b, err := os.ReadFile(r.PrometheusTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--prometheus-token-file: %w", err)
		}
		if cfg.BearerToken = strings.TrimSpace(string(b)); cfg.BearerToken == "" {
			return nil, fmt.Errorf("--prometheus-token-file %s is empty", r.PrometheusTokenFile)
		}
	}
	p, err := promprov.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--prometheus-url: %w", err)
	}
	return p, nil
}
