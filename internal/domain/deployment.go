package domain

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// DefaultEnvironments are the environments every slipway has.
var DefaultEnvironments = []string{"dev", "staging", "production"}

// Deployment is what one environment serves for one model: the versions
// and the share of traffic each gets. Weights are percentages summing to
// 100; a version with weight 0 is kept running (warm) but gets no traffic.
type Deployment struct {
	Model       string          `json:"model"`
	Environment string          `json:"environment"`
	Versions    []ServedVersion `json:"versions"`
	// Stable is the served version the gateway falls back to when another
	// version's circuit breaker is open or its call failed: the one known
	// to be good. Zero means not chosen yet (DefaultStable applies).
	Stable int `json:"stable,omitempty"`
	// Routing is the policy beyond the weighted split: sticky keys, match
	// rules, a shadow version, limits.
	Routing Routing `json:"routing"`
	// Revision counts changes, starting at 1; a change may name the
	// revision it expects, as alias moves do.
	Revision  int64     `json:"revision"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ServedVersion is one version of a deployment.
type ServedVersion struct {
	Version int `json:"version"`
	Weight  int `json:"weight"`
	// Price is what the version's tokens cost, for the gateway's cost
	// metrics (OpenAI-protocol versions); zero when not set.
	Price *Price `json:"price,omitempty"`
	// Fault, when set, is injected into the version's requests by the
	// gateway (fault.go); nil for none.
	Fault *Fault `json:"fault,omitempty"`
}

// Price is a cost per million tokens, in whatever currency the operator
// reads it in.
type Price struct {
	PerMTokPrompt     float64 `json:"per_mtok_prompt"`
	PerMTokCompletion float64 `json:"per_mtok_completion"`
}

// Validate refuses negative or non-finite prices.
func (p Price) Validate() error {
	for _, v := range []float64{p.PerMTokPrompt, p.PerMTokCompletion} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("price %v per million tokens must be a finite number from 0: %w", v, ErrInvalid)
		}
	}
	return nil
}

// MaxServedVersions bounds how many versions one deployment may serve.
const MaxServedVersions = 16

// Validate checks the traffic split: at least one version, no duplicates,
// weights from 0 to 100 summing to 100. Versions are sorted by number.
func (d *Deployment) Validate() error {
	if err := ValidateName("model", d.Model); err != nil {
		return err
	}
	if err := ValidateName("environment", d.Environment); err != nil {
		return err
	}
	if len(d.Versions) == 0 {
		return fmt.Errorf("deployment of %q in %s serves no version: %w", d.Model, d.Environment, ErrInvalid)
	}
	if len(d.Versions) > MaxServedVersions {
		return fmt.Errorf("deployment serves %d versions, at most %d allowed: %w", len(d.Versions), MaxServedVersions, ErrInvalid)
	}
	sort.Slice(d.Versions, func(i, j int) bool { return d.Versions[i].Version < d.Versions[j].Version })
	sum := 0
	for i, v := range d.Versions {
		if v.Version < 1 {
			return fmt.Errorf("version %d is not a version number: %w", v.Version, ErrInvalid)
		}
		if i > 0 && d.Versions[i-1].Version == v.Version {
			return fmt.Errorf("version %d is listed twice: %w", v.Version, ErrInvalid)
		}
		if v.Price != nil {
			if err := v.Price.Validate(); err != nil {
				return fmt.Errorf("version %d: %w", v.Version, err)
			}
		}
		if v.Fault != nil {
			if err := v.Fault.Validate(); err != nil {
				return fmt.Errorf("version %d: %w", v.Version, err)
			}
		}
		if v.Weight < 0 || v.Weight > 100 {
			return fmt.Errorf("version %d has weight %d; weights are percentages from 0 to 100: %w", v.Version, v.Weight, ErrInvalid)
		}
		sum += v.Weight
	}
	if sum != 100 {
		return fmt.Errorf("traffic weights sum to %d, not 100: %w", sum, ErrInvalid)
	}
	if d.Stable != 0 && !d.Serves(d.Stable) {
		return fmt.Errorf("stable version %d is not one of the served versions: %w", d.Stable, ErrInvalid)
	}
	return d.Routing.Validate(*d)
}

// DefaultStable is the version a deployment falls back to when none was
// chosen: the one with the highest weight, the lowest number on a tie; 0
// when the deployment serves nothing.
func (d Deployment) DefaultStable() int {
	best, bestW := 0, -1
	for _, v := range d.Versions {
		if v.Weight > bestW || v.Weight == bestW && v.Version < best {
			best, bestW = v.Version, v.Weight
		}
	}
	return best
}

// StableVersion is Stable when it is served, else DefaultStable: what
// the gateway falls back to, also for deployments stored before the
// stable version existed.
func (d Deployment) StableVersion() int {
	if d.Stable != 0 && d.Serves(d.Stable) {
		return d.Stable
	}
	return d.DefaultStable()
}

// Serves reports whether the deployment lists version n (at any weight).
func (d Deployment) Serves(n int) bool {
	for _, v := range d.Versions {
		if v.Version == n {
			return true
		}
	}
	return false
}
