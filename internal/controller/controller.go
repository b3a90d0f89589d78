// Package controller runs rollouts: for each active rollout a loop reads
// the stored state, asks the pure rollout.Step what to do with what it
// observed (the judge's verdict over the gateway's live per-version
// counters and Prometheus, smoke results, people's commands), stores the
// new state with compare-and-swap before acting on it (write-ahead, ADR
// 009), then carries it out through the deployment service's atomic route
// swap and the registry's aliases, and marks it in effect.
//
// The loop reacts continuously: while a rollout is judged it looks at the
// live counters every Interval (20 ms by default) — an in-memory read —
// so a failing candidate is back at 0 % within one interval of the
// evidence being there, plus one store write and one route swap. After a
// restart, Run resumes every active rollout and every stored state not
// yet in effect from the store alone.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/store"
)

// Deployments is what the controller needs of the deployment service.
type Deployments interface {
	ApplySplit(ctx context.Context, actor, model, env string, s deployment.Split) (domain.Deployment, error)
	Routes() *deployment.Table
	Environments() []string
}

// Versions resolves a version reference (a number or @alias).
type Versions interface {
	GetVersion(ctx context.Context, model string, ref registry.Ref) (domain.Version, error)
}

// Metrics reads a version's live counters since its series began.
type Metrics interface {
	Totals(k metrics.Key) (metrics.Totals, bool)
}

// Config wires a Controller.
type Config struct {
	Store       store.Store
	Deployments Deployments
	Versions    Versions
	Metrics     Metrics
	// Prometheus answers the analysis rules' Prometheus queries; nil
	// makes those rules come out Error (the rollout then waits, and
	// pauses at its progress deadline), never Pass.
	Prometheus analysis.Provider
	// PrometheusScrape is how often Prometheus scrapes the gateway's
	// metrics (default 15 s, Prometheus' own default): an answer counts
	// towards a Pass only when asked for two scrapes after the analysis
	// run began.
	PrometheusScrape time.Duration
	// PrometheusEvery is how often a judged rollout's queries are asked
	// again (default the scrape interval, from 1 s to 5 s).
	PrometheusEvery time.Duration
	// Interval is how often a judged rollout looks at the live counters
	// (default 20 ms).
	Interval time.Duration
	// SmokeTimeout bounds one smoke request (default 10 s).
	SmokeTimeout time.Duration
	Clock        clock.Clock
	Log          *slog.Logger
}

// Actor is who asks: a token's name and role.
type Actor struct {
	Name string
	Role domain.Role
}

// Controller owns the loops of the active rollouts of this process.
type Controller struct {
	cfg Config

	mu      sync.Mutex
	runners map[int64]*runner
	ctx     context.Context // set by Run; nil before
	wg      sync.WaitGroup
}

// New returns a controller; Run starts its loops.
func New(cfg Config) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 20 * time.Millisecond
	}
	if cfg.PrometheusScrape <= 0 {
		cfg.PrometheusScrape = 15 * time.Second
	}
	if cfg.PrometheusEvery <= 0 {
		cfg.PrometheusEvery = min(max(cfg.PrometheusScrape, time.Second), 5*time.Second)
	}
	if cfg.SmokeTimeout <= 0 {
		cfg.SmokeTimeout = 10 * time.Second
	}
	return &Controller{cfg: cfg, runners: map[int64]*runner{}}
}

// Run resumes every rollout the store says is active or not yet in
// effect, runs the loops of those and of rollouts started later, and
// returns when ctx ends and every loop has stopped. A loop stopped
// mid-action leaves a stored state that the next Run carries out again.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.ctx != nil {
		c.mu.Unlock()
		return errors.New("the rollout controller is already running")
	}
	c.ctx = ctx
	c.mu.Unlock()
	err := c.resume(ctx)
	<-ctx.Done()
	c.wg.Wait()
	return err
}

// resume starts a loop for each stored rollout that needs one.
func (c *Controller) resume(ctx context.Context) error {
	seen := map[int64]bool{}
	for _, f := range []store.RolloutFilter{{Active: true}, {NotInEffect: true}} {
		p := store.Page{Limit: store.MaxLimit}
		for {
			rs, next, err := c.cfg.Store.ListRollouts(ctx, f, p)
			if err != nil {
				return fmt.Errorf("resuming rollouts: %w", err)
			}
			for _, r := range rs {
				if !seen[r.ID] {
					seen[r.ID] = true
					c.cfg.Log.Info("resuming a rollout", "rollout", r.ID, "model", r.Model, "environment", r.Environment,
						"phase", string(r.Phase), "in_effect", r.InEffect)
					c.ensure(r.ID)
				}
			}
			if next == "" {
				break
			}
			p.Cursor = next
		}
	}
	return nil
}

// ensure returns rollout id's runner, starting its loop when the
// controller runs and it has none.
func (c *Controller) ensure(id int64) *runner {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rn := c.runners[id]; rn != nil {
		return rn
	}
	rn := newRunner(c, id)
	if c.ctx == nil || c.ctx.Err() != nil {
		// Not running (tests, or shutting down): commands still tick it.
		return rn
	}
	c.runners[id] = rn
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		rn.loop(c.ctx)
		c.mu.Lock()
		if c.runners[id] == rn {
			delete(c.runners, id)
		}
		c.mu.Unlock()
	}()
	return rn
}

// lookup returns rollout id's running loop, or nil.
func (c *Controller) lookup(id int64) *runner {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runners[id]
}

// actorName is how the controller signs what it does for a rollout.
func actorName(id int64) string { return fmt.Sprintf("slipway:rollout/%d", id) }
